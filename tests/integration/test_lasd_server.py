# SPDX-License-Identifier: Apache-2.0
"""lasd as a server on a node: its socket (no take-over of a live one, no unlinking of another's),
signals, and connection limits under a flood from an unprivileged user."""
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from harness import CasNode, LasNode, https, las_request, wait_for

OP_QUOTE, OP_SEAL, OP_INFO = 1, 2, 3
PLATFORM_KEY = slice(16, 49)  # the platform public key in a quote body


def platform_key(node):
    st, body = las_request(node.socket, bytes([OP_QUOTE]) + bytes(64))
    assert st == 0, body
    return body[PLATFORM_KEY]


def second_on_same_socket(first, tmp_path, name):
    """Another lasd (its own platform, so its own key) told to use first's socket."""
    other = LasNode(tmp_path, name)
    other.socket = first.socket
    return other


def test_second_lasd_refuses_a_live_socket(nodes, tmp_path):
    a = nodes("a").start()
    key_a = platform_key(a)
    b = second_on_same_socket(a, tmp_path, "b")
    try:
        assert b.start(expect_fail=True) != 0
    finally:
        b.stop()
    assert "another lasd is serving on" in b.log() and a.socket in b.log(), b.log()
    # the first still serves, on the same socket, as itself
    assert stat.S_ISSOCK(os.lstat(a.socket).st_mode)
    assert platform_key(a) == key_a


def test_stale_socket_is_replaced(nodes):
    a = nodes("a").start()
    a.kill()  # SIGKILL: the socket stays behind, nobody listens
    assert stat.S_ISSOCK(os.lstat(a.socket).st_mode)
    a.start()
    assert "replacing the stale socket" in a.log()
    assert platform_key(a)


def test_exit_unlinks_only_its_own_socket(nodes, tmp_path):
    """An admin removes a's socket and starts b on the path; when a stops it must not delete b's."""
    a = nodes("a").start()
    os.unlink(a.socket)
    b = second_on_same_socket(a, tmp_path, "b")
    try:
        b.start()
        key_b = platform_key(b)
        a.stop()
        assert "LAS stopped" in a.log()
        assert os.path.exists(b.socket), a.log()
        assert platform_key(b) == key_b
        b.stop()
        assert not os.path.exists(b.socket)  # its own, it removes
    finally:
        b.stop()


def test_sighup_is_logged_and_ignored(nodes):
    a = nodes("a").start()
    key = platform_key(a)
    for _ in range(3):
        a.proc.send_signal(signal.SIGHUP)
        assert platform_key(a) == key  # answered after the signal: still alive
    assert a.proc.poll() is None
    assert os.path.exists(a.socket)
    # the log line may trail the answers by one worker wakeup; wait on the count, not a clock
    wait_for(lambda: a.log().count("SIGHUP") >= 1, what="SIGHUP log line")
    assert "SIGHUP" in a.log() and "carrying on" in a.log()


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Run as another user: holds argv[2] connections to lasd, then makes argv[3] more connections that
# it closes at once (each one a refused connection for lasd to report), prints what it got, and
# keeps the held ones open until its stdin closes.
FLOOD = r"""
import resource, socket, struct, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
for _ in range(int(sys.argv[3])):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sys.argv[1])
print("holding", len(held), flush=True)
sys.stdin.read()
"""

# Run as another user: opens argv[2] connections, asks for the LAS info on each (each answered
# connection is one lasd took), prints "<status> <answer>" per connection; holds them until stdin
# closes.
PER_CONN = r"""
import socket, struct, sys
held = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(sys.argv[1])
    held.append(s)
    try:
        try:
            s.sendall(struct.pack('>I', 1) + bytes([3]))
        except BrokenPipeError:
            pass  # refused at once: the answer is still there to read
        n = struct.unpack('>I', s.recv(4))[0]
        r = s.recv(n)
        print(r[0], r[1:].decode(errors='replace'), flush=True)
    except (OSError, struct.error) as e:
        print('2 closed', type(e).__name__, flush=True)
print("done", flush=True)
sys.stdin.read()
"""


def as_user(user, code, *args):
    return subprocess.Popen([*user, "/usr/bin/python3", "-c", code, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(proc, last_prefix):
    lines = []
    while True:
        line = proc.stdout.readline()
        assert line, ("helper ended early", lines, proc.stderr.read())
        lines.append(line.rstrip("\n"))
        if line.startswith(last_prefix):
            return lines


def finish(proc):
    proc.stdin.close()
    proc.wait(timeout=30)


@pytest.fixture
def shared():
    """A directory other users can reach (the socket goes there); removed at the end."""
    d = tempfile.mkdtemp(prefix="custos-flood-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d)


def shared_node(nodes, shared, name, extra=()):
    n = nodes(name, extra=list(extra))
    n.socket = os.path.join(shared, "las.sock")
    return n.start()


def test_flood_by_one_user_leaves_root_served_and_log_small(shared, nodes):
    n = shared_node(nodes, shared, "flood")
    lines_before = n.log().count("\n")
    flood = as_user(NOBODY, FLOOD, n.socket, "1100", "3000")
    try:
        assert read_until(flood, "holding")[-1] == "holding 1100"
        for i in range(20):  # root (the CAS's attestation among them) is still served
            st, body = las_request(n.socket, bytes([OP_QUOTE]) + i.to_bytes(64, "big"), timeout=10)
            assert st == 0, body
    finally:
        finish(flood)
    log = n.log()
    new_lines = log.count("\n") - lines_before
    # ~4,000 refused connections are reported in a few lines (one per second and kind at most,
    # with the count of the ones left out), not one line each
    assert new_lines <= 40, (new_lines, log[-3000:])
    assert "refused a connection" in log and "uid 65534" in log, log[-2000:]
    # the count of the lines left out is logged once their second is over
    wait_for(lambda: "not logged" in n.log(), what="count of refusals not logged")


def test_flood_leaves_casd_able_to_start_and_attest(shared, nodes):
    """casd started while a user holds 1,100 connections still gets its seal key and quotes."""
    n = shared_node(nodes, shared, "casflood")
    flood = as_user(NOBODY, FLOOD, n.socket, "1100", "0")
    cas = CasNode(n, "127.0.0.9")
    try:
        assert read_until(flood, "holding")[-1] == "holding 1100"
        cas.start()
        st, body = https(cas.addr, "GET", "/v1/attestation?nonce=" + "00" * 16)
        assert st == 200, body
        assert json.loads(body)["quote"]["format"] == "custos-quote-v1"
    finally:
        cas.stop()
        finish(flood)


def test_per_uid_limit_refuses_the_65th(shared, nodes):
    n = shared_node(nodes, shared, "peruid")
    p = as_user(NOBODY, PER_CONN, n.socket, "65")
    try:
        out = read_until(p, "done")
    finally:
        finish(p)
    assert len(out) == 66, out
    assert all(l.startswith("0 {") for l in out[:64]), out[:64]
    assert out[64].startswith("1 ") and "uid 65534" in out[64] and "64 connections" in out[64], out[64]
    # limits are per user: root and another user still get theirs
    st, _ = las_request(n.socket, bytes([OP_INFO]))
    assert st == 0


def test_reserve_keeps_room_for_the_cas_uid(shared, nodes):
    """Many users together fill the unreserved connections; the reserved uid (and root) still get in."""
    n = shared_node(nodes, shared, "reserve", ["--max-clients", "40", "--max-clients-per-uid", "20",
                                       "--reserved-clients", "10", "--reserved-uid", "65533"])
    users = [["setpriv", f"--reuid={u}", f"--regid={u}", "--clear-groups"] for u in (65534, 65532)]
    holders = [as_user(u, PER_CONN, n.socket, "20") for u in users]
    try:
        outs = [read_until(h, "done") for h in holders]
        served = sum(l.startswith("0 ") for o in outs for l in o)
        assert served == 30, outs  # 40 - 10 reserved
        refused = [l for o in outs for l in o if l.startswith("1 ")]
        assert refused and all("connections" in l for l in refused), refused
        cas = as_user(["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups"], PER_CONN, n.socket, "5")
        try:
            assert all(l.startswith("0 ") for l in read_until(cas, "done")[:-1])
        finally:
            finish(cas)
        st, _ = las_request(n.socket, bytes([OP_INFO]))
        assert st == 0
    finally:
        for h in holders:
            finish(h)


def test_limit_options_are_checked(nodes):
    n = nodes("opts", extra=["--reserved-clients", "64", "--max-clients", "64"])
    assert n.start(expect_fail=True) != 0
    assert "--reserved-clients (64) must be less than --max-clients (64)" in n.log(), n.log()
    n = nodes("opts2", extra=["--reserved-uid", "0,x1"])
    assert n.start(expect_fail=True) != 0
    assert "--reserved-uid" in n.log() and "'x1'" in n.log(), n.log()
