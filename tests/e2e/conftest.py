"""Fixtures for the end-to-end suite: real `vista serve` processes over the real model pack."""

import datetime
import http.server
import ipaddress
import io
import os
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VISTA_BIN = os.environ.get("VISTA_BIN", os.path.join(ROOT, "target", "release", "vista"))
MODELS = os.environ.get("VISTA_MODELS", os.path.join(ROOT, "models"))
DATA = os.path.join(ROOT, "tests", ".data")
KEYS = ("test-key-primary", "test-key-secondary")
# The Google and AWS surfaces' own credentials (an Azure key opens neither).
GOOGLE_KEY = "google-test-key"
AWS_PAIR = ("AKIDVISTATEST", "aws-test-secret")
CLOUD_ENV = {"VISTA_GOOGLE_API_KEYS": GOOGLE_KEY, "VISTA_AWS_CREDENTIALS": ":".join(AWS_PAIR)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `vista serve`; `stop()` sends SIGTERM and returns the exit code."""

    def __init__(self, *args, keys=KEYS, env=None, models=MODELS, tls=None):
        """`tls`: (certificate, key) PEM paths to serve HTTPS with; `verify` is then the certificate."""
        self.port = free_port()
        # Each server keeps its Read operations in a directory of its own unless the test names one.
        data_dir = [] if "--data-dir" in args else ["--data-dir", tempfile.mkdtemp(prefix="vista-data-")]
        if tls:
            args = (*args, "--tls-cert", tls[0], "--tls-key", tls[1])
        self.verify = tls[0] if tls else True
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        environment = {**os.environ, "VISTA_API_KEYS": ",".join(keys), "VISTA_LOG": "info", **(env or {})}
        self.process = subprocess.Popen(
            [VISTA_BIN, "serve", "--addr", f"127.0.0.1:{self.port}", "--models", models, *data_dir, *args],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = []
        self.reader = threading.Thread(target=lambda: self.log.extend(self.process.stdout), daemon=True)
        self.reader.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                # The process is gone; let the reader collect what it wrote before quoting it.
                self.reader.join(timeout=10)
                raise RuntimeError(f"vista serve exited early: {''.join(self.log)}")
            try:
                if requests.get(self.url + "/ready", timeout=1, verify=self.verify).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("vista serve did not become ready in 60 s")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


@pytest.fixture(scope="session")
def server():
    s = Server("--allow-private-urls")
    yield s
    assert s.stop() == 0, "graceful shutdown exits 0"


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    """A server with all three surfaces' credentials and a Cloud Storage root holding bucket 'vista-in'."""
    root = tmp_path_factory.mktemp("gcs")
    (root / "vista-in").mkdir()
    with Server("--google-storage-root", str(root), env=CLOUD_ENV) as s:
        s.storage = root
        yield s


@pytest.fixture(scope="session")
def client(server):
    from azure.ai.vision.imageanalysis import ImageAnalysisClient
    from azure.core.credentials import AzureKeyCredential
    return ImageAnalysisClient(endpoint=server.url, credential=AzureKeyCredential(KEYS[0]))


def pack_without(tmp_path, excluded):
    """A models directory beside `tmp_path` with every file of the real pack linked in except those
    for which `excluded(name)` is true."""
    pack = tmp_path / "models"
    pack.mkdir()
    for name in os.listdir(MODELS):
        if not excluded(name):
            os.symlink(os.path.join(MODELS, name), pack / name)
    return pack


def photo(name):
    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run scripts/test.sh, which fetches the test photos")
    with open(path, "rb") as f:
        return f.read()


def encoded(name, fmt, **save_args):
    """A test photo re-encoded in another format."""
    image = Image.open(io.BytesIO(photo(name)))
    out = io.BytesIO()
    image.convert("RGBA" if fmt == "ICO" else "RGB").save(out, fmt, **save_args)
    return out.getvalue()


@pytest.fixture(scope="session")
def file_server():
    """Serves tests/.data on a loopback port, for URL input."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=DATA, **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def start_redis():
    """A redis-server from the test data on a free loopback port, without persistence: (process, port)."""
    binary = os.path.join(DATA, "redis", "redis-server")
    if not os.path.exists(binary):
        pytest.fail(f"{binary} is missing: run scripts/test.sh, which fetches it")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        env={**os.environ, "LD_LIBRARY_PATH": os.path.join(DATA, "redis", "lib")},
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return process, port
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)


def self_signed_certificate(folder):
    """A certificate for 127.0.0.1 and its key, written to `folder`: (certificate path, key path)."""
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
    return str(cert_path), str(key_path)
