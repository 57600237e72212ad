# SPDX-License-Identifier: Apache-2.0
"""Denial of service without credentials, and the TLS versions casd accepts: real casd and lasd on
loopback; attackers are raw sockets from their own 127.0.0.x addresses."""
import os
import signal
import socket
import ssl
import time

import pytest

from harness import CasNode, https, provision_owner


@pytest.fixture
def cas(tmp_path, nodes):
    n1 = nodes("n1").start()
    c = CasNode(n1, "127.0.0.2", db=str(tmp_path / "db"), extra=["--header-timeout", "2"]).start()
    yield c
    c.stop()


def healthz(cas):
    st, _ = https(cas.addr, "GET", "/healthz", timeout=10)
    return st


def connect_from(src, cas):
    s = socket.socket()
    s.bind((src, 0))
    s.connect((cas.ip, cas.port))
    return s


def closed_by_server(s):
    s.settimeout(0)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_trickled_headers_are_cut_at_the_deadline(cas):
    """256 connections that trickle one byte of a TLS handshake every 0.5 s: each is closed once the
    header deadline (2 s here) passes, although the idle timeout (30 s) never does; meanwhile other
    clients are served."""
    socks = []
    for i in range(256):
        src = f"127.0.1.{1 + i // 60}"  # several addresses, so the per-address limit is not what stops them
        socks.append(connect_from(src, cas))
    hello = bytes.fromhex("16030100c8010000c40303") + os.urandom(64)
    alive = list(socks)
    for rnd in range(20):  # bounded by rounds: 20 x 0.5 s is 5 deadlines
        for k, s in enumerate(alive):
            try:
                s.send(hello[rnd:rnd + 1])
            except OSError:
                pass
        time.sleep(0.5)
        alive = [s for s in alive if not closed_by_server(s)]
        if rnd == 1:
            assert healthz(cas) == 200  # served while they trickle
        if not alive:
            break
    assert not alive, f"{len(alive)} trickling connections still open after {rnd + 1} rounds"
    assert "did not send complete request headers within 2 s" in cas.log()
    assert healthz(cas) == 200
    for s in socks:
        s.close()


def test_per_address_connection_limit(cas):
    """One address holds at most 64 connections (the default); other addresses are still served."""
    socks = [connect_from("127.0.0.5", cas) for _ in range(70)]
    time.sleep(0.3)
    closed = sum(closed_by_server(s) for s in socks)
    assert closed == 6, closed
    assert healthz(cas) == 200
    for s in socks:
        s.close()


def test_stopped_lasd_does_not_block_the_workers(tmp_path, nodes):
    n1 = nodes("n1").start()
    c = CasNode(n1, "127.0.0.2", db=str(tmp_path / "db")).start()
    owner = provision_owner(c, tmp_path)
    owner.run("secret", "put", "k", input="v", check=True)
    os.kill(n1.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(6):  # more than the worker threads: none of them is held
            st, body = https(c.addr, "GET", "/v1/attestation?nonce=" + "ab" * 16, timeout=5)
            assert st == 503 and b"las_unavailable" in body, (st, body)
        assert healthz(c) == 200
        assert owner.run("secret", "get", "k", check=True).stdout == "v\n"
    finally:
        os.kill(n1.proc.pid, signal.SIGCONT)
    for _ in range(50):  # lasd answers again: so does the attestation (bounded by tries)
        st, _ = https(c.addr, "GET", "/v1/attestation?nonce=" + "ab" * 16, timeout=5)
        if st == 200:
            break
        time.sleep(0.1)
    assert st == 200
    assert c.log().count("attestation: ") <= 3  # rate-limited
    c.stop()


@pytest.mark.parametrize("version,accepted", [(ssl.TLSVersion.TLSv1, False), (ssl.TLSVersion.TLSv1_1, False),
                                              (ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_3, True)])
def test_tls_versions(cas, version, accepted):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    s = socket.create_connection((cas.ip, cas.port), timeout=5)
    try:
        if accepted:
            with ctx.wrap_socket(s) as t:
                assert t.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        else:
            with pytest.raises(ssl.SSLError) as e:
                ctx.wrap_socket(s)
            # the server refused it (an alert or a close after the client's hello), not the client's own
            # library (which would say it has no protocol to offer)
            assert "NO_PROTOCOLS" not in str(e.value).upper(), e.value
            assert isinstance(e.value, ssl.SSLZeroReturnError) or "ALERT" in str(e.value).upper(), e.value
    finally:
        s.close()
