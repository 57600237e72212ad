# SPDX-License-Identifier: Apache-2.0
"""`cas provision` against a fake CAS (an adversary with its own TLS key on 127.0.0.x): the CLI must
stop before it sends the token when the quote does not bind the key the server presents, or is
tampered with. A positive control shows that a POST to the fake would be seen."""
import base64
import hashlib
import http.server
import json
import ssl
import subprocess
import threading
import urllib.parse

import pytest

from harness import OWNER_TOML, Cli, free_port, https, las_request

FAKE_IP = "127.0.0.9"
QUOTE_BODY_SIZE = 155


def report_data(key_hash_hex, nonce):
    return bytes.fromhex(key_hash_hex) + hashlib.sha256(b"custos-attestation-v1" + nonce).digest()


def lasd_quote(las, rd):
    """A genuine quote from lasd over the report data: (155-byte body, DER signature)."""
    assert len(rd) == 64
    status, answer = las_request(las.socket, b"\x01" + rd)
    assert status == 0, answer
    return answer[:QUOTE_BODY_SIZE], answer[QUOTE_BODY_SIZE:]


class FakeCas:
    """An HTTPS server with its own key and certificate that records every request it gets."""

    def __init__(self, tmp_path, attestation):
        self.key, self.cert = tmp_path / "fake-key.pem", tmp_path / "fake-cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-subj", "/CN=cas",
                        "-days", "1"], check=True, capture_output=True)
        spki = subprocess.run(["openssl", "pkey", "-in", str(self.key), "-pubout", "-outform", "DER"],
                              check=True, capture_output=True).stdout
        self.key_hash = hashlib.sha256(spki).hexdigest()
        self.cert_pem = self.cert.read_text()
        self.attestation = attestation  # fn(fake, nonce bytes) -> answer object
        self.requests = []  # (method, path, body)
        self.errors = []
        self.port = free_port(FAKE_IP)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _any(self):
                body = self._body()
                fake.requests.append((self.command, self.path, body))
                url = urllib.parse.urlsplit(self.path)
                if self.command == "GET" and url.path == "/v1/attestation":
                    try:
                        nonce = bytes.fromhex(urllib.parse.parse_qs(url.query)["nonce"][0])
                        self._answer(200, fake.attestation(fake, nonce))
                    except Exception as e:  # noqa: BLE001 - reported by the test
                        fake.errors.append(repr(e))
                        self._answer(500, {"error": {"code": "fake", "message": repr(e)}})
                elif self.command == "POST" and url.path == "/v1/provision":
                    self._answer(403, {"error": {"code": "provisioning_refused",
                                                 "message": "fake CAS: refused after seeing the token"}})
                else:
                    self._answer(404, {"error": {"code": "not_found", "message": "fake"}})

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        self.server = http.server.ThreadingHTTPServer((FAKE_IP, self.port), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return f"{FAKE_IP}:{self.port}"

    def answer(self, quote_body, signature):
        """An attestation answer in casd's shape, for the fake's own key and certificate."""
        return {
            "quote": {"format": "custos-quote-v1", "body": base64.b64encode(quote_body).decode(),
                      "signature": base64.b64encode(signature).decode()},
            "key_hash": self.key_hash, "certificate": self.cert_pem,
            "platform_id": quote_body[16:49].hex().upper(), "platform_kind": "sim",
            "tcb": int.from_bytes(quote_body[82:86], "big"), "measurement": quote_body[50:82].hex(),
            "provisioned": False,
        }

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_cas(tmp_path):
    made = []

    def make(attestation):
        f = FakeCas(tmp_path, attestation)
        made.append(f)
        return f

    try:
        yield make
    finally:
        for f in made:
            f.stop()


@pytest.fixture
def real_cas(cas_nodes):
    return cas_nodes("n1", "127.0.0.2").start()


def provision_fake(tmp_path, fake, token):
    toml = tmp_path / "owner.toml"
    toml.write_text(OWNER_TOML.format(ip=FAKE_IP))
    return Cli(tmp_path / "cli" / "config.json").run(
        "provision", fake.addr, "-c", fake.key_hash, "--token", token, "--config-file", str(toml),
        "with-attestation", "--only_for_testing-ignore-signer", "--only_for_testing-trust-any")


def assert_stopped_before_token(fake, r, problem):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert problem in r.stderr and "NOT trustworthy" in r.stderr, r.stderr
    assert "is trustworthy" not in r.stdout, r.stdout
    assert not fake.errors, fake.errors
    methods = [(m, p.split("?")[0]) for m, p, _ in fake.requests]
    assert ("GET", "/v1/attestation") in methods, f"the fake was never asked: {fake.requests}"
    assert all(m == "GET" for m, _ in methods), f"the CLI sent more than GETs to the fake: {methods}"


def test_relayed_quote_of_the_real_cas_is_refused(tmp_path, fake_cas, real_cas):
    """(a) A genuine answer of the real CAS (its quote binds the real CAS's key) behind the fake's key."""
    def relay(fake, nonce):
        st, body = https(real_cas.addr, "GET", "/v1/attestation?nonce=" + nonce.hex())
        assert st == 200, body
        att = json.loads(body)
        att["certificate"], att["key_hash"] = fake.cert_pem, fake.key_hash
        return att

    fake = fake_cas(relay)
    token = real_cas.token()
    r = provision_fake(tmp_path, fake, token)
    assert_stopped_before_token(fake, r, "report data mismatch")
    assert token not in json.dumps([b.decode(errors="replace") for _, _, b in fake.requests])
    assert "provisioned; owner" not in real_cas.log()
    # the real CAS's token is still good
    toml = tmp_path / "real.toml"
    toml.write_text(OWNER_TOML.format(ip=real_cas.ip))
    Cli(tmp_path / "owner" / "config.json").provision(real_cas, toml)


@pytest.mark.parametrize("offset", [50, 81, 85, 86, 87, 118, 150],
                         ids=["measurement0", "measurement31", "tcb", "debug", "key-hash0", "key-hash31",
                              "nonce-hash31"])
def test_tampered_quote_is_refused(tmp_path, fake_cas, real_cas, offset):
    """(b) A genuine lasd quote over the fake's own key hash and the nonce, with one body byte flipped."""
    flips = []

    def tampered(fake, nonce):
        body, sig = lasd_quote(real_cas.las, report_data(fake.key_hash, nonce))
        bad = bytearray(body)
        bad[offset] ^= 0x01
        flips.append((body[offset], bad[offset]))
        return fake.answer(bytes(bad), sig)

    fake = fake_cas(tampered)
    r = provision_fake(tmp_path, fake, "ab" * 32)
    assert flips, "the fake was never asked for a quote"
    assert_stopped_before_token(fake, r, "bad signature")


def test_untampered_quote_for_the_fake_key_reaches_the_post(tmp_path, fake_cas, real_cas):
    """(c) Positive control: a genuine quote over the fake's key hash passes attestation (trust-any,
    ignore-signer), and the CLI then posts the token, which the fake sees."""
    def genuine(fake, nonce):
        return fake.answer(*lasd_quote(real_cas.las, report_data(fake.key_hash, nonce)))

    fake = fake_cas(genuine)
    token = "cd" * 32
    r = provision_fake(tmp_path, fake, token)
    assert r.returncode == 1 and "CAS refused the provisioning (status 403)" in r.stderr, r.stderr
    assert "is trustworthy" in r.stdout
    posts = [(p, b) for m, p, b in fake.requests if m == "POST"]
    assert len(posts) == 1 and posts[0][0] == "/v1/provision", fake.requests
    assert json.loads(posts[0][1])["token"] == token
