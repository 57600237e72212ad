# SPDX-License-Identifier: Apache-2.0
"""Upgrading CAS (docs/operations.md, "Upgrading CAS") with real lasd, casd and cas processes.

A new casd build has a new measurement, so lasd gives it a new seal key: it cannot open the key-store
entries sealed by the old build. Before the switch, the new build is registered as a backup on every
node, the primary's own node included (key-store entries are keyed by platform and measurement); then
the new build opens the database in place of the old one, the old one still can (rollback) until its
entries are pruned. Here the "new build" is build/casd with bytes appended: another file, another
measurement, the same code."""
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from harness import (BackupCas, CasNode, binary, casd_measurement, db_meta, db_record_values, free_port, https,
                     open_entry, provision_owner, seal_key, stop_all, write_keystore)

TRUST = ["--only_for_testing-ignore-signer", "--only_for_testing-trust-any"]

SESSION = """name: app
version: "0.3"
services:
  - name: svc
    mrenclaves: ["{m}"]
    command: prog --flag
    environment:
      PASSWORD: "$$CAS::password$$"
secrets:
  - name: password
    kind: ascii
    size: 20
""".format(m="ab" * 32)


@pytest.fixture
def world(tmp_path, nodes):
    """Two simulated nodes; CAS (the old build, build/casd) on n1, provisioned, n2 registered."""
    n1, n2 = nodes("n1").start(), nodes("n2").start()
    os.makedirs(tmp_path / "pv")
    cas = CasNode(n1, "127.0.0.2", db=str(tmp_path / "pv" / "cas-db"))
    cas.start()
    owner = provision_owner(cas, tmp_path)
    w = {"n1": n1, "n2": n2, "cas": cas, "owner": owner, "tmp": tmp_path, "started": [cas]}
    yield w
    stop_all(w["started"])


def new_build(w):
    """A copy of build/casd with bytes appended: (path, measurement hex)."""
    path = str(w["tmp"] / "casd-new")
    shutil.copy(binary("casd"), path)
    with open(path, "ab") as f:
        f.write(b"\0custos-upgrade-test-build-2")
    os.chmod(path, 0o755)
    return path, hashlib.sha256(open(path, "rb").read()).hexdigest()


def register(w, node, casd_binary=None, ip="127.0.0.9"):
    """A backup CAS of casd_binary (default build/casd) on node, registered by the owner."""
    b = BackupCas(w[node], ip)
    if casd_binary:
        b.binary = casd_binary
    w["started"].append(b)
    b.start()
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0, r.stderr
    assert b.wait_exit() == 0
    return r


def backups(w):
    return json.loads(w["owner"].run("backups", "list", "--json", check=True).stdout)


def pairs(w):
    return sorted((b["node"], b["measurement"]) for b in backups(w))


def casd_on(w, node, ip, casd_binary=None):
    """casd (casd_binary, default build/casd) on node with the database; start it with started()."""
    c = CasNode(w[node], ip, db=w["cas"].db)
    if casd_binary:
        c.binary = casd_binary
    w["started"].append(c)
    return c


def started(w, c):
    """Starts c and lets the owner's CLI know its new address (cas attest)."""
    c.start()
    w["owner"].run("attest", c.addr, *TRUST, check=True)
    return c


def dbkey(w, node, measurement_hex):
    """The database key from the entry of (node's platform, measurement), derived here (not by casd)."""
    ks = json.load(open(w["cas"].db + ".key-store"))
    las = w[node]
    (e,) = [e for e in ks["entries"] if e["platform_id"] == las.platform_id() and
            e.get("measurement") == measurement_hex]
    secret = open(os.path.join(las.platform_dir, "machine-secret"), "rb").read()
    return open_entry(ks, e, seal_key(secret, bytes.fromhex(measurement_hex)))


def session_password(w, key):
    values = {json.loads(v)["password"]["value"] for v in db_record_values(w["cas"].db, key, "session-secrets/app")}
    assert len(values) == 1, values
    return values.pop()


def test_upgrade_registers_the_new_build_everywhere_then_switches(world):
    w, owner = world, world["owner"]
    old = casd_measurement().hex()
    owner.run("secret", "put", "app-key", input="v1", check=True)
    session = w["tmp"] / "session.yaml"
    session.write_text(SESSION)
    h = owner.run("session", "create", str(session), check=True).stdout.strip()
    register(w, "n2")
    assert pairs(w) == [("n1", old), ("n2", old)]
    password = session_password(w, dbkey(w, "n1", old))
    new, m_new = new_build(w)
    assert m_new != old

    # the new build started before it is registered: refused, naming both measurements and the fix
    w["cas"].stop()
    early = casd_on(w, "n1", "127.0.0.3", new)
    mark = len(early.log())
    assert early.start(expect_fail=True) != 0
    log = early.log()[mark:]
    assert (f"this casd's measurement {m_new} is not registered for platform {w['n1'].platform_id()} (node n1)"
            in log), log
    assert f"registered measurements on this platform: {old} (node n1)" in log, log
    assert "register this casd's measurement on this node first" in log and "docs/operations.md" in log, log
    w["started"].remove(early)
    w["cas"].start()

    # the upgrade: allow the new measurement, register the new build on every node (n1 too)
    owner.run("owner", "allow-measurement", m_new, check=True)
    register(w, "n1", new)
    register(w, "n2", new)
    register(w, "n2", new)  # the same platform and measurement again: replaced, not added
    assert pairs(w) == sorted([("n1", m_new), ("n1", old), ("n2", m_new), ("n2", old)])
    current = [(b["node"], b["measurement"]) for b in backups(w) if b["current"]]
    assert current == [("n1", old)]
    table = owner.run("backups", "list", check=True).stdout
    assert "MEASUREMENT" in table and m_new in table and "(primary, current)" in table, table
    ks = json.load(open(w["cas"].db + ".key-store"))
    assert ks["version"] == 3 and len(ks["entries"]) == 4

    # the switch: the new build opens the database on the same node; everything is intact
    w["cas"].stop()
    c_new = started(w, casd_on(w, "n1", "127.0.0.3", new))
    assert c_new.key_hash() == w["cas"].key_hash()
    assert owner.run("secret", "get", "app-key", "--cas", c_new.addr, check=True).stdout == "v1\n"
    assert owner.run("session", "read", "app", "--hash", "--cas", c_new.addr, check=True).stdout.strip() == h
    assert session_password(w, dbkey(w, "n1", m_new)) == password
    listed = json.loads(owner.run("backups", "list", "--json", "--cas", c_new.addr, check=True).stdout)
    assert [(b["node"], b["measurement"]) for b in listed if b["current"]] == [("n1", m_new)]
    # the new build's own entry cannot be removed, by platform or by pair; the old one of n1 is
    r = owner.run("backups", "remove", w["n1"].platform_id(), "--cas", c_new.addr)
    assert r.returncode != 0 and "cannot be removed" in r.stderr, r.stderr
    r = owner.run("backups", "remove", w["n1"].platform_id(), "--measurement", m_new, "--cas", c_new.addr)
    assert r.returncode != 0 and f"for its own measurement {m_new} cannot be removed" in r.stderr, r.stderr

    # rollback: the old build still opens the database while its entries are there
    c_new.stop()
    w["cas"].start()
    assert owner.run("secret", "get", "app-key", check=True).stdout == "v1\n"
    w["cas"].stop()
    c_new.start()

    # the old build's entries pruned: one key rotation; the old build refuses from now on
    gen = json.load(open(w["cas"].db + ".key-store"))["generation"]
    r = owner.run("backups", "prune", "--measurement", old, "--cas", c_new.addr, check=True)
    assert f"2 entries of measurement {old} removed; database key rotated (generation {gen + 1})" in r.stdout
    listed = json.loads(owner.run("backups", "list", "--json", "--cas", c_new.addr, check=True).stdout)
    assert sorted((b["node"], b["measurement"]) for b in listed) == sorted([("n1", m_new), ("n2", m_new)])
    assert json.load(open(w["cas"].db + ".key-store"))["generation"] == gen + 1
    c_new.stop()
    mark = len(w["cas"].log())
    assert w["cas"].start(expect_fail=True) != 0
    log = w["cas"].log()[mark:]
    assert f"this casd's measurement {old} is not registered for platform {w['n1'].platform_id()}" in log, log
    assert f"registered measurements on this platform: {m_new} (node n1)" in log, log
    c_new.start()
    assert owner.run("secret", "get", "app-key", "--cas", c_new.addr, check=True).stdout == "v1\n"
    assert owner.run("session", "read", "app", "--hash", "--cas", c_new.addr, check=True).stdout.strip() == h
    # the new build's entries hold the rotated key (derived here: the database's generation is the new one)
    assert db_meta(w["cas"].db, dbkey(w, "n1", m_new))[1] == gen + 1
    assert db_meta(w["cas"].db, dbkey(w, "n2", m_new))[1] == gen + 1
    # n2 can take over with the new build too
    c_new.stop()
    c2 = started(w, casd_on(w, "n2", "127.0.0.4", new))
    assert owner.run("secret", "get", "app-key", "--cas", c2.addr, check=True).stdout == "v1\n"


def test_remove_one_measurement_of_a_node(world):
    w, owner = world, world["owner"]
    old = casd_measurement().hex()
    new, m_new = new_build(w)
    owner.run("owner", "allow-measurement", m_new, check=True)
    register(w, "n2")
    register(w, "n2", new)
    n2 = w["n2"].platform_id()
    r = owner.run("backups", "remove", n2, "--measurement", m_new.upper(), check=True)
    assert r.stdout == f"backup of platform {n2} for measurement {m_new} removed\n", r.stdout
    assert pairs(w) == [("n1", old), ("n2", old)]
    r = owner.run("backups", "remove", n2, "--measurement", m_new)
    assert r.returncode != 0 and f"no backup is registered for platform {n2} and measurement {m_new}" in r.stderr
    r = owner.run("backups", "remove", n2, "--measurement", "12")
    assert r.returncode == 2 and "not 64 hex digits" in r.stderr
    register(w, "n2", new)
    r = owner.run("backups", "remove", n2, check=True)  # the node revoked: every entry of it
    assert r.stdout == f"backup of platform {n2} removed (2 entries)\n", r.stdout
    assert pairs(w) == [("n1", old)]


def test_version2_keystore_is_read_and_rewritten_as_version3(world):
    """A key-store written before version 3 (no measurements, the version 2 MAC) opens; the file is
    rewritten as version 3, this casd's entry tagged with its measurement, other entries left "any"."""
    w, owner = world, world["owner"]
    old = casd_measurement().hex()
    owner.run("secret", "put", "app-key", input="v2", check=True)
    register(w, "n2")
    key = dbkey(w, "n1", old)
    w["cas"].stop()
    path = w["cas"].db + ".key-store"
    ks = json.load(open(path))
    ks["version"] = 2
    for e in ks["entries"]:
        del e["measurement"]
    write_keystore(path, ks, key)  # with the version 2 MAC (harness.keystore_mac)
    mark = len(w["cas"].log())
    w["cas"].start()
    assert re.search(r"upgraded: bound to database .* is for measurement " + old + r" \(file version 2, now 3\)",
                     w["cas"].log()[mark:]), w["cas"].log()[mark:]
    ks = json.load(open(path))
    assert ks["version"] == 3
    by_node = {e["node"]: e.get("measurement") for e in ks["entries"]}
    assert by_node == {"n1": old, "n2": None}
    assert {(b["node"], b["measurement"], b["current"]) for b in backups(w)} == {("n1", old, True),
                                                                                  ("n2", None, False)}
    assert owner.run("secret", "get", "app-key", check=True).stdout == "v2\n"
    # the entry without a measurement is tried by any build on its platform, as before
    w["cas"].stop()
    c2 = started(w, casd_on(w, "n2", "127.0.0.4"))
    assert owner.run("secret", "get", "app-key", "--cas", c2.addr, check=True).stdout == "v2\n"
    # and the entry that opened is tagged with the measurement that opened it
    c2.stop()
    assert {e["node"]: e.get("measurement") for e in json.load(open(path))["entries"]} == {"n1": old, "n2": old}
    # a version 2 file edited without the key is still refused (the version 2 MAC is checked)
    ks = json.load(open(path))
    ks["version"] = 2
    for e in ks["entries"]:
        e.pop("measurement", None)
    write_keystore(path, ks, key)
    text = open(path).read()
    t = re.search(r'"time": (\d+)', text)
    text = text[:t.start(1)] + str(int(t.group(1)) + 1) + text[t.end(1):]
    open(path, "w").write(text)
    mark = len(w["cas"].log())
    assert w["cas"].start(expect_fail=True) != 0
    assert "its MAC does not match" in w["cas"].log()[mark:]


class LosingRelay:
    """Stands between `cas register-backup` and a backup CAS: passes the backup's request on, and at
    the completion runs `meanwhile()` and then drops the connection unanswered, as if the backup had
    gone after giving its request. (A proxy of the test's own: no real failure can be timed there.)"""

    def __init__(self, tmp_path, backup, meanwhile):
        key, crt = tmp_path / "relay-key.pem", tmp_path / "relay-cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(key), "-out", str(crt), "-subj", "/CN=relay", "-days", "1"],
                       check=True, capture_output=True)
        relay = self
        self.completions = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                st, body = https(backup.addr, "GET", self.path)
                self.send_response(st)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                relay.completions += 1
                meanwhile()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.12", free_port("127.0.0.12")), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.addr = "127.0.0.12:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("meanwhile", ["same-build", "other-build", "before"])
def test_a_relay_that_lost_its_backup_counts_only_that_builds_registration(world, meanwhile):
    """`cas register-backup` whose backup is gone after giving its request asks the primary whether
    another run finished that registration: it counts an entry of the backup's platform AND casd
    measurement registered since the request, and nothing else. same-build: another run registers
    the very backup (new build on n2) meanwhile: success, "by another run". other-build: what gets
    registered meanwhile on n2 is the old build: not this registration, exit 1. before: the new build
    was registered on n2 before this backup made its request, nothing meanwhile: exit 1."""
    w = world
    path, m_new = new_build(w)
    w["owner"].run("owner", "allow-measurement", m_new, check=True)
    if meanwhile == "before":
        register(w, "n2", casd_binary=path, ip="127.0.0.10")
        time.sleep(1.1)  # registered_at and the request's created_at are in seconds
    b = BackupCas(w["n2"], "127.0.0.9")
    b.binary = path
    if meanwhile != "same-build":
        b.expect_no_registration()
    w["started"].append(b)
    b.start()

    def finish_elsewhere():
        if meanwhile == "before":
            return
        if meanwhile == "same-build":
            r = w["owner"].run("register-backup", b.addr)  # another run, straight to the backup
        else:
            r = register(w, "n2", ip="127.0.0.10")  # the old build on the same node
        assert r.returncode == 0, r.stderr

    relay = LosingRelay(w["tmp"], b, finish_elsewhere)
    try:
        r = w["owner"].run("register-backup", relay.addr)
    finally:
        relay.close()
    assert relay.completions == 1
    if meanwhile == "same-build":
        assert r.returncode == 0, r.stderr
        assert r.stdout == "Backup CAS registered (by another run of this command)\n"
        assert ("n2", m_new) in pairs(w)
        assert b.wait_exit() == 0
    else:
        assert r.returncode == 1 and "by another run" not in r.stdout, (r.stdout, r.stderr)
        assert "backup CAS:" in r.stderr, r.stderr
        if meanwhile == "other-build":
            assert ("n2", m_new) not in pairs(w) and ("n2", casd_measurement().hex()) in pairs(w)
