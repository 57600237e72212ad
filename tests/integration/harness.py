# SPDX-License-Identifier: Apache-2.0
"""Shared harness for the integration tests: real processes (swtpm, lasd, casd) on loopback
addresses and private directories. Every process started here is killed at exit, even on failure."""
import atexit
import hashlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

BUILD = os.path.abspath(os.environ.get("CUSTOS_BUILD",
                                       os.path.join(os.path.dirname(__file__), "..", "..", "build")))


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (set CUSTOS_BUILD to the meson build directory)")
    return path

_started = []  # every swtpm Popen this module started; all are killed, even on failure


def _kill_all():
    for p in _started:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all)


def _port_pair_free(port):
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Swtpm:
    def __init__(self, state_dir, log_dir):
        self.state_dir = str(state_dir)
        self.log_dir = str(log_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.proc = None
        self.port = None

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self):
        assert self.proc is None
        last = ""
        for _ in range(20):
            port = random.randrange(20000, 60000, 2)
            if not _port_pair_free(port):
                continue
            log = os.path.join(self.log_dir, f"swtpm-{port}.log")
            with open(log, "wb") as logf:
                proc = subprocess.Popen(
                    ["swtpm", "socket", "--tpm2",
                     "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                     "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                     "--tpmstate", f"dir={self.state_dir}",
                     "--flags", "not-need-init,startup-clear"],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
            _started.append(proc)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                # only the control port is probed: it takes many connections, the server port one
                if _connectable(port + 1):
                    self.proc, self.port = proc, port
                    return self
                time.sleep(0.05)
            _stop(proc)
            with open(log, "rb") as f:
                last = f.read().decode(errors="replace")
        pytest.fail(f"could not start swtpm on a free port; last log:\n{last}")

    def stop(self):
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()


def _stop(proc, timeout=5):
    """SIGTERM, then SIGKILL after timeout seconds. True when the process ended on its own or on
    SIGTERM, False when it had to be killed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            return False
    return True


# What AddressSanitizer, LeakSanitizer and UBSan print when they find something (with
# ASAN_OPTIONS=abort_on_error=0 the process exits 1 after the report, UBSan halts on the first error).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(text):
    """The sanitizer reports in a process's output, each with a few lines of context; [] when none."""
    lines = text.splitlines()
    return ["\n".join(lines[i:i + 12]) for i, line in enumerate(lines)
            if any(m in line for m in SANITIZER_MARKERS)]


def check_sanitizers(text, what):
    reports = sanitizer_reports(text)
    if reports:
        pytest.fail(f"{what}: {len(reports)} sanitizer report(s):\n" + "\n---\n".join(reports[:3]),
                    pytrace=False)



class Daemon:
    """A process of ours that logs to a file and says in its log when it is ready."""

    ready_marker = ""
    label = "process"
    stop_status = 0  # the exit status stop() expects; a test that wants another says so explicitly

    def args(self):
        raise NotImplementedError

    def start(self, expect_fail=False, timeout=15):
        """Starts and waits for ready_marker in the new part of the log. With expect_fail, waits for
        the process to exit instead and returns its status."""
        assert self.proc is None
        before = len(self.log())
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT)
        _started.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                if expect_fail:  # the caller expects a refusal, and judges rc itself
                    self.check_log()
                    return rc
                pytest.fail(f"{self.label} exited with {rc}:\n{self.log()[before:]}")
            if self.ready_marker in self.log()[before:]:
                if expect_fail:
                    pytest.fail(f"{self.label} started but should have refused:\n{self.log()[before:]}")
                return self
            time.sleep(0.02)
        pytest.fail(f"{self.label} did not start in {timeout}s:\n{self.log()[before:]}")

    def stop(self, expect_status=None):
        """SIGTERM and wait: the process must exit with expect_status (default self.stop_status, 0: a
        clean stop) and its log must hold no sanitizer report; a process that already exited by
        itself is judged the same."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            clean = _stop(proc, timeout=20)
            assert clean, f"{self.label} did not stop within 20 s of SIGTERM (killed); log {self.log_path}"
            self.check_exit(proc.returncode, self.stop_status if expect_status is None else expect_status)

    def kill(self):
        """SIGKILL on purpose: no exit status to judge, but the log must still hold no sanitizer report."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        self.check_log()

    def check_exit(self, rc, expect_status=0):
        """Fails the test when rc is not the expected status or the log holds a sanitizer report."""
        self.check_log()
        if rc != expect_status:
            pytest.fail(f"{self.label} exited with status {rc}, expected {expect_status}; log {self.log_path}:\n"
                        + self.log()[-3000:], pytrace=False)

    def check_log(self):
        check_sanitizers(self.log(), f"{self.label}, log {self.log_path}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def stop_all(daemons):
    """Stops every daemon (all of them, even when one fails its exit check), then reports the
    failures together."""
    problems = []
    for d in daemons:
        try:
            d.stop()
        except (AssertionError, pytest.fail.Exception) as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


class LasNode(Daemon):
    """One simulated node's lasd: a platform directory and a socket in a private directory."""

    def __init__(self, root, name, platform="sim", extra=()):
        self.root = str(root)
        self.name = name
        self.platform_dir = os.path.join(self.root, name, "platform")
        self.socket = os.path.join(self.root, name, "run", "las.sock")
        self.log_path = os.path.join(self.root, name, "lasd.log")
        self.platform = platform
        self.extra = list(extra)
        self.proc = None
        self.ready_marker = "LAS listening"
        self.label = f"lasd {name}"
        os.makedirs(os.path.join(self.root, name), exist_ok=True)

    def args(self):
        return [binary("lasd"), "--socket", self.socket, "--platform", self.platform,
                "--platform-dir", self.platform_dir] + self.extra

    def platform_id(self):
        """The platform ID as the reference extracts it: grep 'public key' | awk '{print $8}'."""
        out = subprocess.run(f"grep 'public key' {self.log_path} | tail -n 1 | awk '{{print $8}}'",
                             shell=True, capture_output=True, text=True, check=True).stdout.strip()
        assert re.fullmatch(r"0[23][0-9A-F]{64}", out), out
        return out


def las_request(sock_path, payload, timeout=10):
    """Sends one framed request to lasd and returns (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(struct.pack(">I", len(payload)) + payload)
        return read_frame(s)


def read_frame(s):
    hdr = recv_exact(s, 4)
    n = struct.unpack(">I", hdr)[0]
    body = recv_exact(s, n)
    return body[0], body[1:]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(args, check=False, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 60),
                       check=check, **kw)
    check_sanitizers(r.stderr or "", os.path.basename(str(args[0])))
    return r


def free_port(ip):
    for _ in range(100):
        port = random.randrange(20000, 60000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.fail(f"no free port on {ip}")


class CasNode(Daemon):
    """casd on a simulated node: its lasd, a 127.0.0.x address and a database directory."""

    def __init__(self, las, ip, db=None, extra=()):
        self.las = las
        self.ip = ip
        self.port = free_port(ip)
        self.db = db or os.path.join(las.root, las.name, "cas-db")
        self.log_path = os.path.join(las.root, las.name, "casd.log")
        self.extra = list(extra)
        self.proc = None
        self.ready_marker = "CAS listening"
        self.label = f"casd on {las.name}"
        self.binary = binary("casd")

    @property
    def addr(self):
        return f"{self.ip}:{self.port}"

    def args(self):
        return [self.binary, "--db", self.db, "--las", self.las.socket, "--listen", self.addr,
                "--node-name", self.las.name] + self.extra

    def _field7(self, what):
        """The last field of the newest log line containing `what`, as the quick start reads it."""
        out = subprocess.run(f"grep '{what}' {self.log_path} | tail -n 1 | awk ' {{ print $7 }} '",
                             shell=True, capture_output=True, text=True, check=True).stdout.strip()
        return out

    def key_hash(self):
        return self._field7("CAS key hash")

    def token(self):
        return self._field7("CAS provisioning token")


class BackupCas(CasNode):
    """casd --backup on a simulated node: one registration, then it exits."""

    def __init__(self, las, ip, extra=()):
        super().__init__(las, ip, extra=extra)
        self.log_path = os.path.join(las.root, las.name, f"backup-{self.port}.log")
        self.ready_marker = "ready on https://"

    def args(self):
        return [self.binary, "--backup", "--las", self.las.socket, "--listen", self.addr, "--node-name",
                self.las.name] + self.extra

    def expect_no_registration(self):
        """Says that this backup will be refused (or never asked): stopped before any registration,
        casd --backup logs 'stopped before any registration' and exits 1, which stop() then expects."""
        self.stop_status = 1
        return self

    def wait_exit(self, timeout=10):
        """Waits for the exit and returns the status (the caller asserts it); the log must hold no
        sanitizer report."""
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        self.check_log()
        return rc


class Cli:
    """The cas CLI with its own configuration file (one identity)."""

    def __init__(self, path):
        self.config = str(path)

    def run(self, *args, input=None, check=False):
        env = dict(os.environ, SCONE_CLI_CONFIG=self.config)
        env.pop("CAS_CLI_CONFIG", None)
        r = subprocess.run([binary("cas"), *args], capture_output=True, text=True, env=env, input=input,
                           timeout=60)
        check_sanitizers(r.stderr, f"cas {' '.join(args[:2])}")
        if check:
            assert r.returncode == 0, f"cas {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r

    def provision(self, cas, config_file, *extra, token=None, key_hash=None, check=True):
        return self.run("provision", cas.addr, "-c", key_hash or cas.key_hash(), "--token",
                        token or cas.token(), "--config-file", str(config_file), *extra,
                        "with-attestation", "--only_for_testing-ignore-signer",
                        "--only_for_testing-trust-any", check=check)

    def identity_files(self, directory):
        """Writes the identity of this CLI to PEM files (for raw HTTPS requests in tests)."""
        import json as _json
        with open(self.config) as f:
            ident = _json.load(f)["identity"]
        cert, key = os.path.join(directory, "id-cert.pem"), os.path.join(directory, "id-key.pem")
        with open(cert, "w") as f:
            f.write(ident["certificate"])
        with open(key, "w") as f:
            f.write(ident["private_key"])
        os.chmod(key, 0o600)
        return cert, key


def provision_owner(cas, tmp_path):
    """An owner CLI (its own configuration under tmp_path/owner) that has provisioned cas with the
    test owner configuration (quick-start trust flags)."""
    owner = Cli(os.path.join(str(tmp_path), "owner", "config.json"))
    toml = os.path.join(str(tmp_path), "owner.toml")
    with open(toml, "w") as f:
        f.write(OWNER_TOML.format(ip=cas.ip))
    owner.provision(cas, toml)
    return owner


def https(addr, method, path, body=None, cert=None, timeout=15):
    """A raw HTTPS request to casd (no server verification: tests talk to their own process)."""
    conn = https_connection(addr, cert=cert, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else body.encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


OWNER_TOML = """[api_identity]
common_name = "mycas"
alt_names = ["mycas", "cas", "cas.default", "localhost", "{ip}"]

[dcap]
subscription_key = "00000000000000000000000000000000"
"""


def rsa_identity(directory):
    """The quick start's owner identity: openssl genrsa + openssl pkcs8."""
    d = os.path.join(directory, "identity")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "genrsa", "-out", f"{d}/keypair.pem", "2048"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-inform", "PEM", "-outform", "PEM", "-nocrypt", "-in",
                    f"{d}/keypair.pem", "-out", f"{d}/pkcs8.key"], check=True, capture_output=True)
    return f"{d}/pkcs8.key"


def wait_for(cond, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


# ---- helpers for the casd crash / secrets / fake-CAS tests --------------------------------------

def https_connection(addr, cert=None, timeout=15):
    """A keep-alive HTTPS connection to casd (no server verification), optionally with a client cert."""
    import http.client
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=timeout)


def casd_measurement(path=None):
    """casd's measurement as lasd computes it: SHA-256 of the binary file (build/casd, or path)."""
    with open(path or binary("casd"), "rb") as f:
        return hashlib.sha256(f.read()).digest()


def keystore_aad(entry, prefix=None):
    """Additional data of a key-store entry's seal (casd/keystore.c build_aad_ex): the database key
    itself in a legacy entry, the node's X25519 private key in a node entry."""
    if prefix is None:
        prefix = b"custos-keystore-node-v2" if "public_key" in entry else b"custos-keystore-v1"
    return (prefix + entry["platform_id"].encode() + entry["kind"].encode() + b"\0" +
            entry["node"].encode() + b"\0" + struct.pack(">I", entry["tcb"]))


def seal_key(machine_secret, measurement, label=b"cas-db", uid=0):
    """HKDF-SHA256(secret, salt = measurement, info = "custos-seal-v1" || uid (4 bytes BE) || label)
    (platform/platform.c)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=measurement,
                info=b"custos-seal-v1" + struct.pack(">I", uid) + label).derive(machine_secret)


def open_entry(ks, e, key):
    """The database key from key-store entry e (of key-store ks, parsed JSON) with the node's seal
    key, derived independently of casd (keystore.h): raises InvalidTag when it does not open."""
    import base64
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    nonce, sealed = base64.b64decode(e["nonce"]), base64.b64decode(e["sealed"])
    assert len(nonce) == 12 and len(sealed) == 48
    plain = AESGCM(key).decrypt(nonce, sealed, keystore_aad(e))
    if "public_key" not in e:
        return plain
    pub, wrapped = base64.b64decode(e["public_key"]), base64.b64decode(e["wrapped"])
    shared = X25519PrivateKey.from_private_bytes(plain).exchange(X25519PublicKey.from_public_bytes(wrapped[:32]))
    wrap = HKDF(algorithm=hashes.SHA256(), length=32, salt=wrapped[:32] + pub,
                info=b"custos-keystore-wrap-v2").derive(shared)
    aad = (b"custos-keystore-wrap-v2" + bytes.fromhex(ks["database_id"]) + struct.pack(">Q", ks["generation"]) +
           keystore_aad(e, prefix=b""))
    return AESGCM(wrap).decrypt(wrapped[32:44], wrapped[44:], aad)


def unseal_dbkey(keystore_path, platform_dir, measurement=None, label=b"cas-db"):
    """Derives the database key independently of casd: raises cryptography's InvalidTag when the
    derivation (secret, measurement, label) is not the one the entry was sealed with."""
    import json
    with open(keystore_path) as f:
        ks = json.load(f)
    assert len(ks["entries"]) == 1, ks
    with open(os.path.join(platform_dir, "machine-secret"), "rb") as f:
        secret = f.read()
    key = seal_key(secret, casd_measurement() if measurement is None else measurement, label)
    dbkey = open_entry(ks, ks["entries"][0], key)
    assert len(dbkey) == 32
    return dbkey


def keystore_mac(keystore_path, dbkey):
    """(stored MAC, MAC recomputed with dbkey) of a key-store (casd/keystore.c compute_mac)."""
    import base64
    import hmac
    import json
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    with open(keystore_path) as f:
        ks = json.load(f)
    v = ks["version"]
    info = b"custos-keystore-mac-v%d" % v
    buf = info + struct.pack(">I", v)
    if v >= 2:
        buf += bytes.fromhex(ks["database_id"]) + struct.pack(">QB", ks["generation"], 1 if ks.get("creating") else 0)
    buf += struct.pack(">I", len(ks["entries"]))
    for e in ks["entries"]:
        buf += (e["platform_id"].encode() + bytes([len(e["kind"])]) + e["kind"].encode() +
                bytes([len(e["node"])]) + e["node"].encode() + struct.pack(">IQ", e["tcb"], e["time"]) +
                base64.b64decode(e["nonce"]) + base64.b64decode(e["sealed"]))
        if v >= 2:
            buf += bytes([1 if "public_key" in e else 0])
            if "public_key" in e:
                buf += base64.b64decode(e["public_key"]) + base64.b64decode(e["wrapped"])
        if v >= 3:  # the casd measurement the entry was sealed for ("" for any: a version 2 entry)
            m = e.get("measurement", "").encode()
            buf += bytes([len(m)]) + m
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(dbkey)
    return bytes.fromhex(ks["mac"]), hmac.new(key, buf, hashlib.sha256).digest()


def write_keystore(path, ks, dbkey):
    """Writes key-store ks (parsed JSON) with its MAC recomputed under dbkey (as casd would)."""
    import json
    tmp = path + ".test-tmp"
    with open(tmp, "w") as f:
        json.dump(dict(ks, mac="00" * 32), f)
    stored, mac = keystore_mac(tmp, dbkey)
    with open(tmp, "w") as f:
        json.dump(dict(ks, mac=mac.hex()), f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def db_meta(db_dir, dbkey):
    """The meta record of data.mdb (casd/db.h), authenticated with the records key derived from dbkey:
    (database ID hex, generation, name key). Raises InvalidTag with another key; None when absent."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    with open(os.path.join(db_dir, "data.mdb"), "rb") as f:
        data = f.read()
    from cryptography.exceptions import InvalidTag
    key = b"\0custos-db-meta"
    rk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"custos-db-records-v1").derive(dbkey)
    found, best, pos = False, None, data.find(key + b"CDBM\x02")
    while pos >= 0:  # freed pages may keep stale or partly overwritten copies: the newest that opens
        found = True
        v = data[pos + len(key):pos + len(key) + 89]
        db_id, gen = v[5:21], struct.unpack(">Q", v[21:29])[0]
        try:
            name_key = AESGCM(rk).decrypt(v[29:41], v[41:], b"custos-db-meta-v2" + db_id + struct.pack(">Q", gen))
            if best is None or gen > best[1]:
                best = (db_id.hex(), gen, name_key)
        except InvalidTag:
            pass
        pos = data.find(key + b"CDBM\x02", pos + 1)
    if found and best is None:
        raise InvalidTag()
    return best


def db_record_values(db_dir, dbkey, name):
    """Every copy of record `name` found in data.mdb (LMDB leaf nodes, inline values), decrypted with
    the keys derived from dbkey (casd/db.c): a list of plaintexts, [] when no copy is there."""
    import hmac
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def hkdf(info):
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(dbkey)
    lkey = hmac.new(hkdf(b"custos-db-names-v1"), name.encode(), hashlib.sha256).digest()
    aead = AESGCM(hkdf(b"custos-db-records-v1"))
    with open(os.path.join(db_dir, "data.mdb"), "rb") as f:
        data = f.read()
    out, pos = [], data.find(lkey)
    while pos >= 0:
        if pos >= 8:
            lo, hi, flags, ksize = struct.unpack("<HHHH", data[pos - 8:pos])
            size = lo | (hi << 16)
            rec = data[pos + 32:pos + 32 + size]
            if ksize == 32 and flags == 0 and len(rec) == size and size >= 29 and rec[0] == 1:
                try:
                    out.append(aead.decrypt(rec[1:13], rec[13:], lkey))
                except InvalidTag:
                    pass
        pos = data.find(lkey, pos + 1)
    return out
