"""Where Read operations live: they survive a crash of the server that accepted them, replicas sharing
one Redis answer for each other's operations (sealed there, and expiring there), and a document that
cannot be read safely is refused when it is submitted."""

import io
import secrets
import socket

import pytest
import requests
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from msrest.authentication import CognitiveServicesCredentials

from conftest import KEYS, Server, start_redis
from rendered_text import cer, pdf_of_scans, pdf_with_text, render
from test_read import submit, wait_for

HEADERS = {"Ocp-Apim-Subscription-Key": KEYS[0]}


def sdk(server):
    return ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))


def status_of(server, operation):
    return requests.get(f"{server.url}/vision/v3.2/read/analyzeResults/{operation}", headers=HEADERS).json()["status"]


def test_operations_accepted_before_a_crash_are_processed_after_the_restart(tmp_path):
    data = str(tmp_path / "data")
    latin, expected = render("latin")
    document = pdf_of_scans([latin, render("accented")[0]] * 2)
    first = Server("--data-dir", data)
    operations = [submit(sdk(first), document) for _ in range(4)]
    # The last of four four-page scans is still waiting when the server dies without a goodbye.
    assert status_of(first, operations[-1]) == "notStarted"
    first.process.kill()
    first.process.wait()
    with Server("--data-dir", data) as second:
        results = [wait_for(sdk(second), operation) for operation in operations]
    assert [r.status for r in results] == ["succeeded"] * 4
    assert [len(r.analyze_result.read_results) for r in results] == [4] * 4
    assert cer(expected, [l.text for l in results[-1].analyze_result.read_results[0].lines]) <= 0.02


def resp(port, *command):
    """One Redis command over RESP, without a client library: the reply's bytes, integer or None."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"*{len(command)}\r\n".encode() + b"".join(
            f"${len(part)}\r\n{part}\r\n".encode() for part in command))
        reply = s.makefile("rb")
        head = reply.readline()
        if head.startswith(b":"):
            return int(head[1:])
        if head.startswith(b"$-1"):
            return None
        return reply.read(int(head[1:]) + 2)[:-2]


@pytest.fixture(scope="module")
def redis_port():
    process, port = start_redis()
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_replicas_sharing_a_redis_answer_for_each_others_operations(redis_port):
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = {"VISTA_STORE_KEY": secrets.token_hex(32)}
    image, expected = render("latin")
    with Server("--redis-url", url, "--read-ttl", "60", env=env) as a, \
            Server("--redis-url", url, "--read-ttl", "60", env=env) as b:
        from_a = submit(sdk(a), image)
        from_b = submit(sdk(b), render("cyrillic")[0])
        read_on_b = wait_for(sdk(b), from_a)
        read_on_a = wait_for(sdk(a), from_b)
    assert [l.text for l in read_on_b.analyze_result.read_results[0].lines] == expected
    assert read_on_a.status == "succeeded"
    # In Redis: the record sealed (no text in the clear), its document gone, and an expiry set.
    sealed = resp(redis_port, "GET", f"vista:read:records:{from_a}")
    assert sealed and expected[0].encode() not in sealed
    assert resp(redis_port, "EXISTS", f"vista:read:documents:{from_a}") == 0
    assert 0 < resp(redis_port, "PTTL", f"vista:read:records:{from_a}") <= 60_000


def test_a_replica_refuses_to_share_a_redis_without_the_shared_key(redis_port):
    with pytest.raises(RuntimeError, match="VISTA_STORE_KEY"):
        Server("--redis-url", f"redis://127.0.0.1:{redis_port}/0")


def test_an_encrypted_pdf_is_refused_when_submitted(server):
    from pypdf import PdfReader, PdfWriter
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf_with_text([["Confidential"]]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    response = requests.post(f"{server.url}/vision/v3.2/read/analyze", data=out.getvalue(),
                             headers={**HEADERS, "Content-Type": "application/pdf"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidImage" and "password" in error["message"].lower(), error
