# SPDX-License-Identifier: Apache-2.0
"""lasd as a server on a node: its socket (no take-over of a live one, no unlinking of another's),
signals, and connection limits under a flood from an unprivileged user."""
import os
import signal
import stat

from harness import LasNode, las_request, wait_for

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
