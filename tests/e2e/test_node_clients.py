"""The unmodified Node clients, `@google-cloud/vision` (REST fallback) and `@aws-sdk/client-rekognition`,
pinned in tests/node/package.json and installed by scripts/test.sh, against vista."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import AWS_PAIR, DATA, GOOGLE_KEY, ROOT
from rendered_text import render

NODE = os.path.join(ROOT, "tests", "node")


def test_the_node_clients_of_google_and_aws_work_unmodified(cloud, tmp_path):
    if not os.path.isdir(os.path.join(NODE, "node_modules")) or not shutil.which("node"):
        pytest.fail("the Node clients are not installed: run scripts/test.sh (npm ci in tests/node)")
    text = tmp_path / "text.png"
    page, lines = render("latin")
    text.write_bytes(page)
    env = {**os.environ, "AWS_ENDPOINT_URL_REKOGNITION": cloud.url, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": AWS_PAIR[0], "AWS_SECRET_ACCESS_KEY": AWS_PAIR[1]}
    done = subprocess.run(["node", "clients.mjs", cloud.url, GOOGLE_KEY, *AWS_PAIR, os.path.join(DATA, "chelsea.png"),
                           os.path.join(DATA, "astronaut.png"), str(text)],
                          cwd=NODE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Cat" in out["googleLabels"]
    [face] = out["googleFaces"]
    assert face["landmarks"] == ["LEFT_EYE", "RIGHT_EYE", "NOSE_TIP", "MOUTH_LEFT", "MOUTH_RIGHT"]
    assert face["joy"] == "UNKNOWN", "no emotion model: the absent field reads as UNKNOWN"
    assert out["googleFaceError"]["code"] == 12
    assert out["googleText"] == "".join(line + "\n" for line in lines)
    assert out["googleWrongKey"] == 3, "INVALID_ARGUMENT (API_KEY_INVALID)"
    assert any(l["name"] == "Cat" and l["instances"] == 1 for l in out["awsLabels"])
    assert out["awsRequestId"]
    [aws_face] = out["awsFaces"]
    assert aws_face["landmarks"] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    assert set(aws_face["pose"]) == {"Roll", "Yaw", "Pitch"}
    assert out["awsLines"] == lines
    assert "nudity-only" in out["awsModeration"]
    assert out["awsBadImage"] == "InvalidImageFormatException"
    assert out["awsWrongSecret"] == "InvalidSignatureException"
    assert out["awsFromEnvironment"] == 1
