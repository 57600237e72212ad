# SPDX-License-Identifier: Apache-2.0
"""lasd and `cas las` against real lasd processes on simulated nodes (and on swtpm for tpm2)."""
import base64
import json
import os
import shutil
import socket
import stat
import struct
import threading
import time

import pytest

from harness import binary, las_request, read_frame, run, sha256_file

OP_QUOTE, OP_SEAL, OP_INFO = 1, 2, 3
BODY_SIZE = 155
# field offsets in the signed body
FIELDS = {"magic": (0, 16), "platform": (16, 49), "kind": (49, 50), "measurement": (50, 82),
          "tcb": (82, 86), "debug": (86, 87), "report_data": (87, 151), "uid": (151, 155)}


def quote(node, report_hex="00" * 64, *extra):
    r = run([binary("cas"), "las", "quote", "--las", node.socket, "--report-data", report_hex, *extra])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def verify(path, *args):
    return run([binary("cas"), "las", "verify", str(path), *args])


def test_two_nodes_different_stable_ids(nodes):
    a, b = nodes("n1").start(), nodes("n2").start()
    ida, idb = a.platform_id(), b.platform_id()
    assert ida != idb
    a.stop()
    a.start()
    assert a.log().count("LAS started") == 2
    assert a.platform_id() == ida
    info = json.loads(run([binary("cas"), "las", "info", "--las", a.socket], check=True).stdout)
    assert info == {"platform_id": ida, "platform_kind": "sim", "tcb": 1}


def test_log_line_format_and_honest_platform_statement(nodes):
    n = nodes("n1").start()
    line = [l for l in n.log().splitlines() if "public key" in l][-1]
    assert __import__("re").fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO: LAS started, public key: 0[23][0-9A-F]{64}", line)
    assert "NOT against root on this one" in n.log()


def test_socket_permissions(nodes):
    n = nodes("n1").start()
    assert stat.S_IMODE(os.stat(n.socket).st_mode) == 0o666
    assert stat.S_IMODE(os.stat(os.path.dirname(n.socket)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(n.platform_dir, "machine-secret")).st_mode) == 0o600


def test_quote_verifies_and_measurement_is_sha256_of_caller(nodes, tmp_path):
    n = nodes("n1").start()
    q = quote(n, "ab" * 64)
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(q))
    r = verify(qf, "--platform", n.platform_id(), "--report-data", "ab" * 64)
    assert r.returncode == 0, r.stderr
    assert f"measurement: {sha256_file(binary('cas'))}" in r.stdout
    assert f"platform_id: {n.platform_id()}" in r.stdout
    assert "platform_kind: sim" in r.stdout
    # the measurement option accepts the right value and refuses another, quoting both
    assert verify(qf, "--platform", n.platform_id(), "--measurement", sha256_file(binary("cas"))).returncode == 0
    r = verify(qf, "--platform", n.platform_id(), "--measurement", "11" * 32)
    assert r.returncode == 1
    assert "measurement mismatch" in r.stderr and sha256_file(binary("cas")) in r.stderr and "11" * 32 in r.stderr


def test_sim_quote_needs_allowed_platform_or_trust_any(nodes, tmp_path):
    a, b = nodes("n1").start(), nodes("n2").start()
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(quote(a)))
    r = verify(qf)
    assert r.returncode == 1 and "unknown platform" in r.stderr and a.platform_id() in r.stderr
    r = verify(qf, "--platform", b.platform_id())
    assert r.returncode == 1 and "unknown platform" in r.stderr and b.platform_id() in r.stderr
    r = verify(qf, "--only_for_testing-trust-any")
    assert r.returncode == 0 and "not checked" in r.stdout


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_tampered_field_is_refused(nodes, tmp_path, field):
    n = nodes("n1").start()
    q = quote(n)
    body = bytearray(base64.b64decode(q["body"]))
    assert len(body) == BODY_SIZE
    lo, hi = FIELDS[field]
    for off in {lo, (lo + hi) // 2, hi - 1}:
        t = bytearray(body)
        t[off] ^= 0x01
        qf = tmp_path / f"q-{off}.json"
        qf.write_text(json.dumps(dict(q, body=base64.b64encode(bytes(t)).decode())))
        r = verify(qf, "--only_for_testing-trust-any", "--only_for_testing-debug")
        assert r.returncode == 1, (field, off, r.stdout)
        assert "quote refused: bad signature" in r.stderr or "malformed quote" in r.stderr, r.stderr


def test_tampered_signature_and_malformed_input_refused(nodes, tmp_path):
    n = nodes("n1").start()
    q = quote(n)
    sig = bytearray(base64.b64decode(q["signature"]))
    sig[10] ^= 0x40
    cases = {
        "sig": (json.dumps(dict(q, signature=base64.b64encode(bytes(sig)).decode())), "bad signature"),
        "notjson": ("{", "invalid JSON"),
        "missing": (json.dumps({"format": q["format"], "body": q["body"]}), "malformed quote"),
        "extra": (json.dumps(dict(q, extra=1)), "malformed quote"),
        "format": (json.dumps(dict(q, format="x")), "unknown format"),
        "b64": (json.dumps(dict(q, body="!!!!")), "'body' is not valid base64"),
        "short": (json.dumps(dict(q, body=base64.b64encode(b"x" * 10).decode())), "body is 10 bytes"),
    }
    for name, (text, msg) in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_text(text)
        r = verify(f, "--only_for_testing-trust-any")
        assert r.returncode == 1 and msg in r.stderr, (name, r.stderr)


def test_debug_and_tcb(nodes, tmp_path):
    n = nodes("n1", extra=["--debug-mode", "--sim-tcb", "7"]).start()
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(quote(n)))
    r = verify(qf, "--platform", n.platform_id())
    assert r.returncode == 1 and "debug mode" in r.stderr
    assert verify(qf, "--platform", n.platform_id(), "--only_for_testing-debug").returncode == 0
    r = verify(qf, "--platform", n.platform_id(), "--only_for_testing-debug", "--min-tcb", "8")
    assert r.returncode == 1 and "TCB too old: quote has TCB 7, at least 8 required" in r.stderr


def test_platform_dir_refusals(nodes, tmp_path):
    n = nodes("n1").start()
    n.stop()
    secret = os.path.join(n.platform_dir, "machine-secret")
    os.chmod(secret, 0o640)
    assert n.start(expect_fail=True) != 0
    assert "readable by group or others" in n.log() and secret in n.log() and "chmod 600" in n.log()
    os.chmod(secret, 0o600)
    os.chown(secret, 65534, -1)
    assert n.start(expect_fail=True) != 0
    assert "owned by uid 65534" in n.log()
    os.chown(secret, 0, -1)
    data = open(secret, "rb").read()
    with open(secret, "ab") as f:
        f.write(b"x")
    assert n.start(expect_fail=True) != 0
    assert "has 33 bytes, expected 32" in n.log()
    os.unlink(secret)
    real = tmp_path / "elsewhere"
    real.write_bytes(data)
    os.chmod(real, 0o600)
    os.symlink(real, secret)
    assert n.start(expect_fail=True) != 0
    assert "is a symlink" in n.log()


def test_sgx_is_refused_clearly(nodes):
    n = nodes("n1", platform="sgx")
    assert n.start(expect_fail=True) != 0
    assert "platform 'sgx' is not built into this Custos" in n.log()


def test_seal_key_depends_on_label_platform_and_measurement(nodes, tmp_path):
    a, b = nodes("n1").start(), nodes("n2").start()

    def seal(node, label, exe=None):
        code = ("import socket,struct,sys\n"
                "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);p=bytes([2])+sys.argv[2].encode()\n"
                "s.sendall(struct.pack('>I',len(p))+p);n=struct.unpack('>I',s.recv(4))[0];r=s.recv(n)\n"
                "print(r[0], r[1:].hex())")
        out = run([exe or "/usr/bin/python3", "-c", code, node.socket, label], check=True).stdout.split()
        assert out[0] == "0", out
        return out[1]

    k1 = seal(a, "cas-db")
    assert seal(a, "cas-db") == k1
    assert seal(a, "other") != k1
    assert seal(b, "cas-db") != k1
    # a different program (a copy of python with one byte appended) gets a different key
    exe = tmp_path / "python-modified"
    shutil.copy("/usr/bin/python3", exe)
    with open(exe, "ab") as f:
        f.write(b"\0")
    assert seal(a, "cas-db", str(exe)) != k1
    # the key never appears in lasd's log
    assert k1 not in a.log() and k1.upper() not in a.log()


def test_200_concurrent_quotes(nodes):
    n = nodes("n1").start()
    results, errors = [], []

    def one(i):
        try:
            st, body = las_request(n.socket, bytes([OP_QUOTE]) + i.to_bytes(64, "big"))
            assert st == 0, body
            assert body[87:151] == i.to_bytes(64, "big")
            results.append(i)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert sorted(results) == list(range(200))


def test_silent_and_slow_clients_do_not_stall_others(nodes):
    n = nodes("n1", extra=["--request-timeout-ms", "5000"]).start()
    silent = []
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX)
        s.connect(n.socket)
        silent.append(s)
    # one that sends half a header and stops
    half = socket.socket(socket.AF_UNIX)
    half.connect(n.socket)
    half.sendall(b"\x00\x00")
    for _ in range(20):
        st, _ = las_request(n.socket, bytes([OP_QUOTE]) + bytes(64), timeout=2)
        assert st == 0
    # the quotes were answered while every silent client still held its connection (none was
    # closed yet to make room): nobody waited for them
    for s in silent + [half]:
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1)
    # the silent ones are closed after the request timeout
    silent[0].setblocking(True)
    silent[0].settimeout(15)
    assert silent[0].recv(1) == b""
    for s in silent + [half]:
        s.close()


def test_oversize_and_garbage_answered_with_errors(nodes):
    n = nodes("n1").start()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(n.socket)
        s.sendall(struct.pack(">I", 1 << 20))
        st, msg = read_frame(s)
        assert st == 1 and b"exceeds the limit of 4096" in msg
    cases = [(bytes([99]), b"unknown request type 99"), (b"", b"empty request"),
             (bytes([OP_QUOTE]) + b"x" * 10, b"must carry 64 bytes of report data, got 10"),
             (bytes([OP_SEAL]), b"label must be 1..64 bytes"),
             (bytes([OP_SEAL]) + b"a b", b"printable ASCII"),
             (bytes([OP_SEAL]) + b"x" * 65, b"label must be 1..64 bytes")]
    for payload, msg in cases:
        st, body = las_request(n.socket, payload)
        assert st == 1 and msg in body, (payload, body)
    # still serving
    st, _ = las_request(n.socket, bytes([OP_INFO]))
    assert st == 0


def test_tpm2_backend_on_swtpm(nodes, swtpms, tmp_path):
    tpm_a, tpm_b = swtpms("a"), swtpms("b")
    a = nodes("a", platform="tpm2", extra=["--tpm-tcti", tpm_a.tcti]).start()
    ida = a.platform_id()
    assert "TPM 2.0" in a.log()
    a.stop()
    a.start()
    assert a.platform_id() == ida
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(quote(a)))
    r = verify(qf, "--platform", ida)
    assert r.returncode == 0 and "platform_kind: tpm2" in r.stdout, r.stderr
    b = nodes("b", platform="tpm2", extra=["--tpm-tcti", tpm_b.tcti]).start()
    assert b.platform_id() != ida
    # a's sealed blob used with b's TPM is refused, clearly
    a.stop()
    a.extra = ["--tpm-tcti", tpm_b.tcti]
    assert a.start(expect_fail=True) != 0
    assert "sealed by a different TPM" in a.log()


def _quote_rc(node, *prefix, env=None):
    return run([*prefix, binary("cas"), "las", "quote", "--las", node.socket, "--report-data", "00"], env=env)


def test_traced_caller_refused(nodes):
    n = nodes("n1").start()
    r = _quote_rc(n, "strace", "-f", "-o", "/dev/null")
    assert r.returncode == 1 and "is being traced (TracerPid" in r.stderr, r.stderr
    assert _quote_rc(n).returncode == 0


def test_loader_variables_refused(nodes):
    n = nodes("n1").start()
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    for var, value in (("LD_PRELOAD", libc), ("LD_LIBRARY_PATH", "/tmp"), ("LD_AUDIT", "x")):
        # (ASan builds insist on coming first in the library list; tell them not to check)
        env = dict(os.environ, ASAN_OPTIONS="verify_asan_link_order=0", **{var: value})
        r = _quote_rc(n, env=env)
        assert r.returncode == 1 and f"started with {var} set" in r.stderr, (var, r.stderr)


def test_uid_in_quote_and_seal_key(nodes, tmp_path):
    import tempfile
    shared = tempfile.mkdtemp(prefix="custos-uid-", dir="/tmp")  # reachable by another user
    os.chmod(shared, 0o755)
    n = nodes("n1")
    n.socket = os.path.join(shared, "las.sock")
    n.start()
    exe = os.path.join(shared, "cas")
    shutil.copy(binary("cas"), exe)
    os.chmod(exe, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for prefix, uid in (([], 0), (nobody, 65534)):
        r = run([*prefix, str(exe), "las", "quote", "--las", n.socket, "--report-data", "00"])
        assert r.returncode == 0, r.stderr
        body = base64.b64decode(json.loads(r.stdout)["body"])
        assert int.from_bytes(body[151:155], "big") == uid
    code = ("import socket,struct,sys\n"
            "s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);p=bytes([2])+b'cas-db'\n"
            "s.sendall(struct.pack('>I',len(p))+p);n=struct.unpack('>I',s.recv(4))[0];r=s.recv(n)\n"
            "print(r[0], r[1:].hex())")
    keys = {run([*prefix, "/usr/bin/python3", "-c", code, n.socket], check=True).stdout for prefix in ([], nobody)}
    assert len(keys) == 2  # the same program run by another user gets another seal key
    n.stop()
    shutil.rmtree(shared)


def test_socket_handed_to_another_process_refused(nodes):
    """A process that connects and hands the socket to another process: the other process's
    requests are refused (the sender must be the process that connected)."""
    n = nodes("n1").start()
    code = """
import os, socket, struct, sys
parent, child = socket.socketpair()
pid = os.fork()
if pid == 0:
    parent.close()
    msg, fds, _, _ = socket.recv_fds(child, 16, 1)
    s = socket.socket(fileno=fds[0])
    p = bytes([1]) + bytes(64)
    s.sendall(struct.pack('>I', len(p)) + p)
    n = struct.unpack('>I', s.recv(4))[0]
    r = s.recv(n)
    print(r[0], r[1:].decode(errors='replace'))
    os._exit(0)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
socket.send_fds(parent, [b'x'], [s.fileno()])
os.waitpid(pid, 0)
"""
    out = run(["/usr/bin/python3", "-c", code, n.socket], check=True).stdout
    assert out.startswith("1 ") and "must come from the process that connected" in out, out
