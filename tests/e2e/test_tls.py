"""vista's own HTTPS listener (`--tls-cert` / `--tls-key`), with a certificate the test makes itself."""

import socket
import time

import pytest
import requests

from conftest import KEYS, Server, self_signed_certificate
from rendered_text import cer, render


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    with Server(tls=self_signed_certificate(tmp_path_factory.mktemp("tls"))) as server:
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
