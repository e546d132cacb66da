"""vista's own HTTPS listener (`--tls-cert` / `--tls-key`), with a certificate the test makes itself."""

import datetime
import ipaddress
import socket
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import KEYS, Server
from rendered_text import cer, render


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vista test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    with Server(tls=(str(cert_path), str(key_path))) as server:
        yield server


def test_the_read_api_works_over_https_and_points_its_operations_at_https(tls_server):
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    image, expected = render("latin")
    response = requests.post(f"{tls_server.url}/vision/v3.2/read/analyze", data=image, headers=headers,
                             verify=tls_server.verify)
    assert response.status_code == 202
    location = response.headers["Operation-Location"]
    assert location.startswith(f"https://127.0.0.1:{tls_server.port}/vision/v3.2/read/analyzeResults/")
    for _ in range(100):
        result = requests.get(location, headers=headers, verify=tls_server.verify).json()
        if result["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    assert result["status"] == "succeeded"
    lines = [line["text"] for line in result["analyzeResult"]["readResults"][0]["lines"]]
    assert cer(expected, lines) <= 0.02


def test_plain_http_and_unverified_clients_get_no_answer(tls_server):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/ready", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.url}/ready", timeout=5)  # the system's CAs do not know the test's certificate


def test_a_client_that_never_finishes_its_handshake_does_not_block_others(tls_server):
    silent = socket.create_connection(("127.0.0.1", tls_server.port))
    try:
        assert requests.get(f"{tls_server.url}/ready", timeout=5, verify=tls_server.verify).status_code == 200
    finally:
        silent.close()
