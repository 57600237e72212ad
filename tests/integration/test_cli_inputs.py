# SPDX-License-Identifier: Apache-2.0
"""What the CLI and casd do with awkward but legitimate input: values from /dev/stdin and of exactly
the limit, NUL bytes, long URIs, the reference's environment variables. Real casd, lasd and cas."""
import json
import os
import subprocess

import pytest

from harness import CasNode, binary, https, provision_owner


@pytest.fixture
def running(tmp_path, nodes):
    n1 = nodes("n1").start()
    cas = CasNode(n1, "127.0.0.2", db=str(tmp_path / "db")).start()
    owner = provision_owner(cas, tmp_path)
    yield cas, owner, tmp_path
    cas.stop()


def cli_bytes(owner, args, data, env=None):
    e = dict(os.environ, SCONE_CLI_CONFIG=owner.config, **(env or {}))
    return subprocess.run([binary("cas"), *args], input=data, capture_output=True, env=e, timeout=60)


def test_value_from_dev_stdin(running):
    cas, owner, _ = running
    r = cli_bytes(owner, ["secret", "put", "a", "--value-file", "/dev/stdin"], b"from-a-pipe")
    assert r.returncode == 0, r.stderr
    assert owner.run("secret", "get", "a", check=True).stdout == "from-a-pipe\n"


def test_value_of_exactly_64_kib_from_stdin_and_file(running):
    cas, owner, tmp = running
    value = b"x" * 65536
    assert cli_bytes(owner, ["secret", "put", "big"], value).returncode == 0
    (tmp / "v").write_bytes(value)
    assert cli_bytes(owner, ["secret", "put", "big2", "--value-file", str(tmp / "v")], b"").returncode == 0
    r = cli_bytes(owner, ["secret", "put", "big3"], value + b"y")
    assert r.returncode == 1 and b"larger than 64 KiB" in r.stderr, r.stderr
    assert owner.run("secret", "get", "big", check=True).stdout == value.decode() + "\n"


def test_nul_in_a_value(running):
    cas, owner, tmp = running
    r = cli_bytes(owner, ["secret", "put", "n"], b"ab\0cd")
    assert r.returncode == 1 and b"holds a NUL byte (at offset 2)" in r.stderr, r.stderr
    cert = owner.identity_files(str(tmp))
    st, body = https(cas.addr, "PUT", "/v1/secrets/n", '{"value": "ab\\u0000cd"}', cert=cert)
    err = json.loads(body)["error"]
    assert st == 400 and "NUL character" in err["message"] and "JSON_ALLOW_NUL" not in err["message"], err


def test_long_uri_answered_in_json(running):
    cas, _, _ = running
    for n in (9000, 60000):
        st, body = https(cas.addr, "GET", "/v1/secrets/" + "a" * n)
        assert st == 414 and json.loads(body)["error"]["code"] == "uri_too_long", (st, body[:200])


def test_scone_cas_addr_is_honoured(running, tmp_path):
    cas, owner, _ = running
    owner.run("secret", "put", "e", input="v", check=True)
    for args in (["secret", "get", "e"], ["owner", "show"], ["secret", "put", "e"]):
        r = cli_bytes(owner, args, b"v", env={"SCONE_CAS_ADDR": "127.0.0.77:1"})
        assert r.returncode != 0 and b"127.0.0.77" in r.stderr, (args, r.stderr)
        r = cli_bytes(owner, args, b"v", env={"SCONE_CAS_ADDR": cas.addr})
        assert r.returncode == 0, (args, r.stderr)


def test_las_address_that_is_not_a_path(running):
    cas, owner, _ = running
    r = cli_bytes(owner, ["las", "info"], b"", env={"SCONE_LAS_ADDR": "172.17.0.1"})
    assert r.returncode != 0 and b"Unix socket" in r.stderr and b"/run/custos/las.sock" in r.stderr, r.stderr
