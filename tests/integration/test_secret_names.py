# SPDX-License-Identifier: Apache-2.0
"""Secret names cannot alias each other: a name travels percent-encoded from the CLI, and casd
refuses, with a 400 naming the problem, a name whose decoded form holds a NUL byte, '/', is '.' or
'..', or leaves [A-Za-z0-9._-]{1,128}; a query string on a secret's URL is refused too (an empty one,
"db?", is the URL of "db" itself and cannot be told apart: casd only sees the path). Whatever is
tried, secret 'db' keeps its value."""
import http.client
import json
import ssl

import pytest

from harness import provision_owner


@pytest.fixture
def owned(tmp_path, cas_nodes):
    cas = cas_nodes("n1", "127.0.0.2").start()
    owner = provision_owner(cas, tmp_path)
    owner.run("secret", "put", "db", input="the-real-value", check=True)
    return cas, owner, owner.identity_files(str(tmp_path / "owner"))


def get_db(owner):
    r = owner.run("secret", "get", "db", check=True)
    return r.stdout


@pytest.mark.parametrize("name", ["db?x", "db#x", "x/../db", "./db", "db/.", ".", "..", "db/x", "db%00x",
                                  "db x", "d\u00e9", "a" * 129, ""],
                         ids=["query", "fragment", "dotdot", "dot-prefix", "dot-suffix", "dot", "dotdot-alone",
                              "slash", "percent", "space", "non-ascii", "too-long", "empty"])
def test_cli_aliases_of_db_are_refused(owned, name):
    cas, owner, _ = owned
    r = owner.run("secret", "put", name, input="evil")
    assert r.returncode != 0, f"'{name}' was accepted: {r.stdout}"
    assert "stored" not in r.stdout, r.stdout
    if 0 < len(name) <= 128:  # longer or empty names are refused by the CLI itself
        assert "status 400" in r.stderr and "secret name" in r.stderr, r.stderr
    assert get_db(owner) == "the-real-value\n"
    r = owner.run("secret", "get", name)
    assert r.returncode != 0 and "the-real-value" not in r.stdout, r.stdout


def test_every_allowed_character_round_trips(owned):
    cas, owner, _ = owned
    for name in ("a.b_c-D9", "..a", "a..", "x" * 128, "-", "_.-"):
        owner.run("secret", "put", name, input=f"v-{name}", check=True)
    for name in ("a.b_c-D9", "..a", "a..", "x" * 128, "-", "_.-"):
        assert owner.run("secret", "get", name, check=True).stdout == f"v-{name}\n"
    assert get_db(owner) == "the-real-value\n"


def raw(cas, cert, method, path, body=None):
    """A request whose path goes on the wire exactly as written (http.client does not normalize)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(*cert)
    host, port = cas.addr.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=15)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        data = json.dumps(body).encode() if body is not None else b""
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path,problem", [
    ("/v1/secrets/s1%00junk", "NUL"),
    ("/v1/secrets/db%00", "NUL"),
    ("/v1/secrets/x%2Fdb", "'/'"),
    ("/v1/secrets/x%2f..%2fdb", "'/'"),
    ("/v1/secrets/%2e%2e", "'.' or '..'"),
    ("/v1/secrets/%2E", "'.' or '..'"),
    ("/v1/secrets/x/../db", "'/'"),
    ("/v1/secrets/db?x", "query"),
    ("/v1/secrets/d%C3%A9", "A-Z a-z 0-9"),
])
def test_raw_names_are_refused(owned, path, problem):
    cas, owner, cert = owned
    st, body = raw(cas, cert, "PUT", path, {"value": "evil"})
    assert st == 400, (path, st, body)
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_name" and problem in err["message"], err
    st, body = raw(cas, cert, "GET", path)
    assert st == 400 and json.loads(body)["error"]["code"] == "invalid_name", (path, st, body)
    assert get_db(owner) == "the-real-value\n"
    st, _ = raw(cas, cert, "GET", "/v1/secrets/s1")
    assert st == 404, "s1 was stored under a truncated name"


def test_percent_encoded_allowed_name_is_the_same_name(owned):
    """%41 is 'A': names are compared decoded, so an encoding never makes a second name."""
    cas, owner, cert = owned
    st, body = raw(cas, cert, "PUT", "/v1/secrets/%41bc", {"value": "v"})
    assert st == 200 and json.loads(body) == {"stored": "Abc"}, body
    assert owner.run("secret", "get", "Abc", check=True).stdout == "v\n"
