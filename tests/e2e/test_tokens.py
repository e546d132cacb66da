"""Bearer tokens (`--token-issuer`, `--token-jwks`): the unmodified Azure SDK with a TokenCredential, as
Microsoft's Entra ID samples use it, against tokens an issuer made up by the test signs; and every way a
token must be refused. The SDK sends bearer tokens over HTTPS only, so the server serves TLS."""

import base64
import hashlib
import hmac
import json
import os
import signal
import time

import jwt
import pytest
import requests
from azure.ai.vision.imageanalysis import ImageAnalysisClient
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import KEYS, Server, photo, self_signed_certificate

ISSUER = "https://login.test.example/tenant-1/v2.0"
AUDIENCE = "https://cognitiveservices.azure.com"
ROLE = "Vision.Analyze"
ANALYZE = "/computervision/imageanalysis:analyze?api-version=2023-10-01&features=tags"


def jwk_of(private_key, kid):
    """The public JWK of a private key."""
    public = jwt.algorithms.RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    key = json.loads(public.to_jwk(private_key.public_key()))
    key.update({"kid": kid, "use": "sig"})
    return key


class Issuer:
    """A made-up OIDC issuer: its signing keys and the JWKS file vista reads."""

    def __init__(self, folder):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.jwks = folder / "jwks.json"
        self.publish({"rsa-1": self.rsa, "ec-1": self.ec})

    def publish(self, keys):
        document = {"keys": [jwk_of(key, kid) for kid, key in keys.items()]}
        self.jwks.write_text(json.dumps(document))

    def token(self, key=None, kid="rsa-1", algorithm="RS256", **overrides):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 10, "exp": now + 600,
                  "sub": "app-1", "roles": [ROLE]}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.rsa, algorithm=algorithm, headers={"kid": kid})


class StaticTokenCredential:
    """A TokenCredential that hands out one token and remembers the scopes asked for."""

    def __init__(self, token):
        self.token, self.scopes = token, []

    def get_token(self, *scopes, **kwargs):
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 600)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    return Issuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="module")
def token_server(issuer, tmp_path_factory):
    tls = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    with Server("--token-issuer", ISSUER, "--token-jwks", str(issuer.jwks), "--token-required-role", ROLE,
                "--token-leeway", "5", tls=tls) as server:
        yield server


def call(server, token):
    return requests.post(server.url + ANALYZE, data=photo("sample.jpg"), verify=server.verify,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})


def test_the_sdk_with_a_token_credential_works_as_in_the_entra_id_samples(token_server, issuer):
    for token in (issuer.token(), issuer.token(issuer.ec, kid="ec-1", algorithm="ES256")):
        credential = StaticTokenCredential(token)
        client = ImageAnalysisClient(endpoint=token_server.url, credential=credential,
                                     connection_verify=token_server.verify)
        result = client.analyze(image_data=photo("sample.jpg"), visual_features=[VisualFeatures.TAGS])
        assert result.tags.list, "tags came back"
        assert credential.scopes == ["https://cognitiveservices.azure.com/.default"]


def test_keys_keep_working_beside_tokens(token_server):
    client = ImageAnalysisClient(endpoint=token_server.url, credential=AzureKeyCredential(KEYS[0]),
                                 connection_verify=token_server.verify)
    assert client.analyze(image_data=photo("sample.jpg"), visual_features=[VisualFeatures.TAGS]).tags.list


def unsigned(header, claims, sign=None):
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731
    message = f"{encode(header)}.{encode(claims)}"
    signature = sign(message.encode()) if sign else b""
    return f"{message}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_every_bad_token_is_refused_in_azures_words_and_the_log_says_why(token_server, issuer):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "roles": [ROLE]}
    public_pem = issuer.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "wrong issuer": (issuer.token(iss="https://login.test.example/other/v2.0"), "the issuer is not accepted"),
        "wrong audience": (issuer.token(aud="https://management.azure.com"), "the audience"),
        "expired": (issuer.token(exp=now - 120), "expired"),
        "not yet valid": (issuer.token(nbf=now + 600), "not valid yet"),
        "no exp": (issuer.token(exp=None), "no 'exp' claim"),
        "wrong key": (issuer.token(other_key), "signature does not verify"),
        "unknown kid": (issuer.token(kid="rsa-9"), "no key of the JWKS"),
        "alg none": (unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims), "not a JWT"),
        "HS256 with the public key as secret": (
            unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims,
                     lambda m: hmac.new(public_pem, m, hashlib.sha256).digest()), "HS256"),
        "garbage": ("not.a.token", "not a JWT"),
    }
    for name, (token, reason) in cases.items():
        seen = len(token_server.log)
        response = call(token_server, token)
        assert response.status_code == 401, name
        error = response.json()["error"]
        assert error["code"] == "401", name
        assert "Access token is missing, invalid" in error["message"], name
        refused = lambda: [line for line in token_server.log[seen:] if "bearer token refused" in line]  # noqa: E731
        assert wait_for(refused, 5), f"{name}: a log line says the token was refused"
        assert reason in refused()[0], f"{name}: the log line names the failed check"
        assert token not in "".join(token_server.log), f"{name}: the token itself is never logged"
    # A valid token without the required role is known but not allowed.
    response = call(token_server, issuer.token(roles=["Other.Role"]))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PermissionDenied"
    assert call(token_server, issuer.token(roles=None, scp=f"openid {ROLE}")).status_code == 200
    # The SDK surfaces the refusal as an error with the status.
    client = ImageAnalysisClient(endpoint=token_server.url, credential=StaticTokenCredential(issuer.token(exp=now - 120)),
                                 connection_verify=token_server.verify)
    with pytest.raises(HttpResponseError) as refused:
        client.analyze(image_data=photo("sample.jpg"), visual_features=[VisualFeatures.TAGS])
    assert refused.value.status_code == 401


def wait_for(condition, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_rotated_jwks_is_picked_up_on_change_and_on_sighup_without_a_restart(issuer, tmp_path):
    rotating = Issuer(tmp_path)
    with Server("--token-issuer", ISSUER, "--token-jwks", str(rotating.jwks),
                tls=self_signed_certificate(tmp_path)) as server:
        old = rotating.token()
        assert call(server, old).status_code == 200
        # The issuer rolls its key: the new key's tokens work once the file changes, the old key's stop.
        new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rotating.publish({"rsa-2": new_key})
        new = rotating.token(new_key, kid="rsa-2")
        assert wait_for(lambda: call(server, new).status_code == 200), "the changed file is reloaded"
        assert call(server, old).status_code == 401
        # A broken file keeps the keys before and shows on /ready.
        rotating.jwks.write_text("{not json")
        assert wait_for(lambda: (requests.get(server.url + "/ready", verify=server.verify).json()
                                 ["tokens"]["jwksError"] or "").find("JWKS") >= 0)
        assert call(server, new).status_code == 200
        # SIGHUP reloads even when the file's time did not change.
        stamp = os.stat(rotating.jwks).st_mtime_ns
        rotating.publish({"rsa-1": rotating.rsa})
        os.utime(rotating.jwks, ns=(stamp, stamp))
        time.sleep(3)
        assert call(server, old).status_code == 401, "an unchanged time is not noticed by the poll"
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: call(server, old).status_code == 200), "SIGHUP reloads"
        ready = requests.get(server.url + "/ready", verify=server.verify).json()
        assert ready["tokens"] == {"keys": 1, "jwksError": None}


def test_tokens_alone_need_no_keys_and_a_missing_jwks_stops_the_start(issuer, tmp_path):
    with Server("--token-issuer", ISSUER, "--token-jwks", str(issuer.jwks), keys=(),
                tls=self_signed_certificate(tmp_path)) as server:
        assert call(server, issuer.token()).status_code == 200
        response = requests.post(server.url + ANALYZE, data=photo("sample.jpg"), verify=server.verify,
                                 headers={"Ocp-Apim-Subscription-Key": KEYS[0]})
        assert response.status_code == 401
    with pytest.raises(RuntimeError, match="reading"):
        Server("--token-issuer", ISSUER, "--token-jwks", str(tmp_path / "absent.json"))
