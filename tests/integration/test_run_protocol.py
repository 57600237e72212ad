# SPDX-License-Identifier: Apache-2.0
"""POST /v1/run spoken by an independent implementation (Python, `cryptography`), with quotes signed
by a sim node's platform key (fakepeer.FakeBackup knows the node's machine secret, as root on that
node would): what cas-run cannot be made to send. The checks that bind a request to its quote, its
time and its CAS refuse on their own; a replayed request gets an answer that only the key that made
it can open; malformed requests are answered 400 naming the field."""
import base64
import hashlib
import json
import time

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fakepeer import FakeBackup
from harness import binary, https, provision_owner, sha256_file

PROGRAM = "ab" * 32


@pytest.fixture
def env(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text(f'name: s\nversion: "0.3"\nservices:\n  - name: app\n    mrenclaves: ["{PROGRAM}"]\n'
                    '    command: ["prog", "@@1"]\n    environment:\n      A: x\n      PW: "$$CAS::pw$$"\n'
                    'secrets:\n  - name: pw\n    size: 24\n')
    owner.run("session", "create", str(spec), check=True)

    class E:
        pass
    e = E()
    e.cas, e.fake = cas, FakeBackup(cas.las)
    e.launcher = bytes.fromhex(sha256_file(binary("cas-run")))
    return e


def canonical(r):
    return json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make(env, tamper=None, **fields):
    """A request as cas-run makes it, its quote signed with the node's platform key; tamper(R) edits
    R after the quote was made. Returns (body, private key, salt)."""
    priv = X25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    r = {"time": int(time.time()), "key": base64.b64encode(pub).decode(), "cas_key_hash": env.cas.key_hash(),
         "program": PROGRAM, "argv": ["prog", "anything"], "files": []}
    r.update(fields)
    text = canonical(r)
    rd = hashlib.sha256(b"custos-run-v1\0" + text).digest() + bytes(32)
    body, sig = env.fake.quote(rd, measurement=env.launcher)
    if tamper:
        tamper(r)
    quote = {"format": "custos-quote-v1", "body": base64.b64encode(body).decode(),
             "signature": base64.b64encode(sig).decode()}
    return {"service": "s/app", "request": r, "quote": quote}, priv, hashlib.sha256(canonical(r)).digest()


def post(env, body):
    status, data = https(env.cas.addr, "POST", "/v1/run", json.dumps(body))
    return status, json.loads(data)


def open_answer(answer, priv, salt):
    peer = X25519PublicKey.from_public_bytes(base64.b64decode(answer["key"]))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"custos-run-config-v1").derive(
        priv.exchange(peer))
    plain = AESGCM(key).decrypt(base64.b64decode(answer["nonce"]), base64.b64decode(answer["config"]), salt)
    return json.loads(plain)


def refusal(status, answer):
    assert status == 403, answer
    assert answer["error"]["code"] == "attestation_failed"
    return answer["error"]["errors"]


def test_a_request_made_as_specified_gets_its_configuration(env):
    body, priv, salt = make(env)
    status, answer = post(env, body)
    assert status == 200, answer
    config = open_answer(answer, priv, salt)
    assert config["argv"] == ["prog", "anything"] and config["pwd"] == "/"
    env_ = {e["name"]: e["value"] for e in config["env"]}
    assert env_["A"] == "x" and len(env_["PW"]) == 24 and env_["PW"].isalnum()
    assert config["session_hash"] and config["files"] == []


def test_a_replayed_request_gets_an_answer_only_its_key_opens(env):
    body, priv, salt = make(env)
    first = post(env, body)[1]
    status, again = post(env, body)
    assert status == 200
    assert open_answer(again, priv, salt) == open_answer(first, priv, salt)
    with pytest.raises(InvalidTag):
        open_answer(again, X25519PrivateKey.generate(), salt)  # whoever replays it holds another key


def test_a_request_changed_after_its_quote_is_refused(env):
    def tamper(r):
        r["argv"] = ["prog", "other"]
    errors = refusal(*post(env, make(env, tamper)[0]))
    assert errors == ["The quote does not bind this request (report data differs)"]


def test_an_old_request_is_refused(env):
    old = int(time.time()) - 601
    errors = refusal(*post(env, make(env, time=old)[0]))
    assert len(errors) == 1 and errors[0].startswith(f"Request time {old} is more than 600 s away"), errors
    assert post(env, make(env, time=int(time.time()) - 500)[0])[0] == 200


def test_a_request_for_another_cas_is_refused(env):
    errors = refusal(*post(env, make(env, cas_key_hash="cd" * 32)[0]))
    assert errors == [f"The request is for CAS {'cd' * 32} - this CAS is {env.cas.key_hash()}"]


def test_a_launcher_measurement_other_than_cas_run_is_refused(env):
    env.launcher = bytes.fromhex("ef" * 32)
    errors = refusal(*post(env, make(env)[0]))
    assert len(errors) == 1 and errors[0].startswith(f"Unexpected launcher measurement (cas-run, {'ef' * 32})")


def test_a_bad_signature_is_400(env):
    body = make(env)[0]
    sig = bytearray(base64.b64decode(body["quote"]["signature"]))
    sig[-1] ^= 1
    body["quote"]["signature"] = base64.b64encode(bytes(sig)).decode()
    status, answer = post(env, body)
    assert status == 400 and answer["error"]["code"] == "bad_quote", answer


@pytest.mark.parametrize("edit,field", [
    (lambda b: b.pop("quote"), "quote"),
    (lambda b: b.update(service="no-slash"), "service"),
    (lambda b: b.update(extra=1), "extra"),
    (lambda b: b["request"].update(program="xyz"), "request.program"),
    (lambda b: b["request"].update(cas_key_hash="AB"), "request.cas_key_hash"),
    (lambda b: b["request"].update(key="AAAA"), "key"),
    (lambda b: b["request"].update(argv=[]), "request.argv"),
    (lambda b: b["request"].update(argv=["a"] * 65), "request.argv"),
    (lambda b: b["request"].update(files=[{"arg": 0, "sha256": "00" * 32}]), "request.files[0].arg"),
    (lambda b: b["request"].update(files=[{"arg": 1, "sha256": "00"}]), "request.files[0].sha256"),
    (lambda b: b["request"].update(time="now"), "time"),
])
def test_malformed_requests_are_400_naming_the_field(env, edit, field):
    body = make(env)[0]
    edit(body)
    status, answer = post(env, body)
    assert status == 400, answer
    assert field in answer["error"]["message"], answer


def test_unknown_session_or_service_is_404(env):
    body = make(env)[0]
    body["service"] = "s/other"
    status, answer = post(env, body)
    assert status == 404 and "no service s/other" in answer["error"]["message"]
