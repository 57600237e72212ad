# SPDX-License-Identifier: Apache-2.0
"""Backup registration and moving CAS between simulated nodes: real lasd, casd, casd --backup and cas."""
import base64
import json
import os
import random
import shutil
import subprocess
import time

import pytest

from harness import BackupCas, CasNode, Cli, binary, https, provision_owner, stop_all, wait_for

TRUST = ["--only_for_testing-ignore-signer", "--only_for_testing-trust-any"]


@pytest.fixture
def world(tmp_path, nodes, cas_nodes):
    """Three simulated nodes; CAS provisioned on n1 by an owner."""
    n1, n2, n3 = nodes("n1").start(), nodes("n2").start(), nodes("n3").start()
    cas = CasNode(n1, "127.0.0.2", db=str(tmp_path / "pv" / "cas-db"))
    os.makedirs(tmp_path / "pv")
    cas.start()
    owner = provision_owner(cas, tmp_path)
    started = [cas]
    yield {"n1": n1, "n2": n2, "n3": n3, "cas": cas, "owner": owner, "tmp": tmp_path, "started": started}
    stop_all(started)


def backup_on(w, node, ip="127.0.0.9", extra=(), registers=True):
    """A backup CAS on node; registers=False: the test expects it to be refused or never asked (it
    then exits 1 when stopped)."""
    b = BackupCas(w[node], ip, extra=extra)
    if not registers:
        b.expect_no_registration()
    w["started"].append(b)
    return b.start()


def register(w, node, cas=None, ip="127.0.0.9", check=True, extra=(), registers=True):
    b = backup_on(w, node, ip, extra, registers=registers)
    args = ["register-backup", b.addr] + (["--cas", cas] if cas else [])
    r = w["owner"].run(*args)
    if check:
        assert r.returncode == 0, r.stderr
        assert r.stdout == "Backup CAS registered\n"
        assert b.wait_exit() == 0  # exits after its one registration
    return r, b


def backups(w, cas=None):
    args = ["backups", "list", "--json"] + (["--cas", cas] if cas else [])
    r = w["owner"].run(*args, check=True)
    return json.loads(r.stdout)


def move(w, node, ip):
    """Starts casd on another node with the same database (the persistent volume)."""
    w["cas"].stop()
    c = CasNode(w[node], ip, db=w["cas"].db)
    w["started"].append(c)
    return c


def test_move_between_three_nodes(world):
    w = world
    owner = w["owner"]
    owner.run("secret", "put", "app-key", input="v1", check=True)
    register(w, "n2")
    ids = {b["node"]: b["platform_id"] for b in backups(w)}
    assert ids == {"n1": w["n1"].platform_id(), "n2": w["n2"].platform_id()}
    # node 1 dies: CAS starts on node 2 with the same database and serves the old data
    c2 = move(w, "n2", "127.0.0.3").start()
    assert f"database {c2.db} opened on platform {w['n2'].platform_id()}" in c2.log()
    assert c2.key_hash() == w["cas"].key_hash()
    owner.run("attest", c2.addr, *TRUST, check=True)
    assert owner.run("secret", "get", "app-key", "--cas", c2.addr, check=True).stdout == "v1\n"
    # node 3 was never registered: refused, naming its platform and the registered ones
    c2.stop()
    c3 = CasNode(w["n3"], "127.0.0.4", db=w["cas"].db)
    assert c3.start(expect_fail=True) != 0
    log = c3.log()
    assert f"this CAS runs on platform {w['n3'].platform_id()}" in log
    assert w["n1"].platform_id() in log and w["n2"].platform_id() in log and "Register a backup" in log
    # register node 3 from node 2's CAS, then move back to node 1 (its entry was kept)
    c2.start()
    register(w, "n3", cas=c2.addr)
    assert {b["node"] for b in backups(w, cas=c2.addr)} == {"n1", "n2", "n3"}
    primary = [b["node"] for b in backups(w, cas=c2.addr) if b["primary"]]
    assert primary == ["n2"]
    c2.stop()
    c3.start()
    owner.run("attest", c3.addr, *TRUST, check=True)
    assert owner.run("secret", "get", "app-key", "--cas", c3.addr, check=True).stdout == "v1\n"
    c3.stop()
    w["cas"].start()
    assert owner.run("secret", "get", "app-key", "--cas", w["cas"].addr, check=True).stdout == "v1\n"


def test_registering_same_node_twice_replaces_entry(world):
    register(world, "n2")
    first = [b for b in backups(world) if b["node"] == "n2"][0]
    time.sleep(1.1)
    register(world, "n2", ip="127.0.0.10")
    rows = [b for b in backups(world) if b["node"] == "n2"]
    assert len(rows) == 1 and rows[0]["registered_at"] > first["registered_at"]
    assert len(backups(world)) == 2


def test_backups_check_and_remove(world):
    w = world
    register(w, "n2")
    r = w["owner"].run("backups", "check", "--nodes", "n3,n2")
    assert r.returncode == 0 and "1 of 2 given nodes" in r.stdout
    r = w["owner"].run("backups", "check", "--nodes", "n3,n4")
    assert r.returncode == 1 and "none of the 2 given nodes holds a registered backup" in r.stderr
    r = w["owner"].run("backups", "remove", w["n1"].platform_id())
    assert r.returncode == 1 and "cannot be removed" in r.stderr
    w["owner"].run("backups", "remove", w["n2"].platform_id(), check=True)
    assert {b["node"] for b in backups(w)} == {"n1"}
    c2 = move(w, "n2", "127.0.0.3")
    assert c2.start(expect_fail=True) != 0


def test_non_owner_cannot_register(world):
    w = world
    other = Cli(w["tmp"] / "other" / "config.json")
    other.run("attest", w["cas"].addr, *TRUST, check=True)
    b = backup_on(w, "n2", registers=False)
    r = other.run("register-backup", b.addr)
    assert r.returncode == 1 and "status 403" in r.stderr and "only the CAS owner" in r.stderr
    assert {x["node"] for x in backups(w)} == {"n1"}
    r = other.run("backups", "list")
    assert r.returncode == 1 and "status 403" in r.stderr


def owner_post(w, path, body):
    cert = w["owner"].identity_files(str(w["tmp"]))
    st, resp = https(w["cas"].addr, "POST", path, json.dumps(body), cert=cert)
    return st, json.loads(resp)


def fetch_request(b):
    st, body = https(b.addr, "GET", "/v1/backup/request")
    assert st == 200
    return json.loads(body)


def test_tampered_quote_refused(world):
    w = world
    req = fetch_request(backup_on(w, "n2", registers=False))
    body = bytearray(base64.b64decode(req["quote"]["body"]))
    body[60] ^= 1  # measurement
    req["quote"]["body"] = base64.b64encode(bytes(body)).decode()
    st, resp = owner_post(w, "/v1/backups/register", {"request": req})
    assert st == 400 and "bad signature" in resp["error"]["message"], resp
    assert {x["node"] for x in backups(w)} == {"n1"}


def test_quote_of_another_node_refused(world):
    w = world
    r2 = fetch_request(backup_on(w, "n2", registers=False))
    r3 = fetch_request(backup_on(w, "n3", ip="127.0.0.10", registers=False))
    forged = dict(r3, quote=r2["quote"])  # node 3's key with node 2's quote
    st, resp = owner_post(w, "/v1/backups/register", {"request": forged})
    assert st == 403 and resp["error"]["code"] == "quote_not_bound", resp
    forged = dict(r2, node_name="n3")  # node 2's quote, claiming to be node 3
    st, resp = owner_post(w, "/v1/backups/register", {"request": forged})
    assert st == 403 and resp["error"]["code"] == "quote_not_bound", resp


def test_replayed_request_gets_the_same_offer_and_no_second_registration(world):
    """A spent request is answered with the offer it already got (it opens for that backup only), so
    an interrupted relay can finish; it never makes a second registration."""
    w = world
    b = backup_on(w, "n2")
    req = fetch_request(b)
    st, first = owner_post(w, "/v1/backups/register", {"request": req})
    assert st == 200
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0, r.stderr
    ks = open(w["cas"].db + ".key-store", "rb").read()
    st, again = owner_post(w, "/v1/backups/register", {"request": req})
    assert st == 200 and again == first
    assert open(w["cas"].db + ".key-store", "rb").read() == ks


def test_lower_tcb_refused(world, nodes):
    w = world
    low = nodes("low", extra=["--sim-tcb", "0"]).start()
    w["low"] = low
    r, b = register(w, "low", check=False, registers=False)
    assert r.returncode == 1
    assert "its TCB 0 is lower than the primary's TCB 1" in r.stderr, r.stderr
    high = nodes("high", extra=["--sim-tcb", "5"]).start()
    w["high"] = high
    register(w, "high", ip="127.0.0.10")
    assert {x["node"]: x["tcb"] for x in backups(w)} == {"n1": 1, "high": 5}


def test_unknown_measurement_refused_until_allowed(world):
    w = world
    other_casd = str(w["tmp"] / "casd-other")
    shutil.copy(binary("casd"), other_casd)
    with open(other_casd, "ab") as f:
        f.write(b"\0custos-other-build")
    import hashlib
    m = hashlib.sha256(open(other_casd, "rb").read()).hexdigest()
    mine = hashlib.sha256(open(binary("casd"), "rb").read()).hexdigest()
    b = BackupCas(w["n2"], "127.0.0.9")
    b.binary = other_casd
    w["started"].append(b)
    b.start()
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 1 and "measurement mismatch" in r.stderr and m in r.stderr and mine in r.stderr
    assert "cas owner allow-measurement" in r.stderr
    w["owner"].run("owner", "allow-measurement", m, check=True)
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0, r.stderr


def test_backup_killed_midway_changes_nothing(world):
    w = world
    before = open(w["cas"].db + ".key-store", "rb").read()
    b = backup_on(w, "n2")
    req = fetch_request(b)
    st, offer = owner_post(w, "/v1/backups/register", {"request": req})
    assert st == 200 and "offer" in offer
    b.kill()
    assert open(w["cas"].db + ".key-store", "rb").read() == before
    assert {x["node"] for x in backups(w)} == {"n1"}
    # a forged completion for that pending request is refused (no proof without the key)
    fake = {"request_id": offer["offer"]["request_id"], "proof": base64.b64encode(bytes(32)).decode(),
            "entry": {"platform_id": w["n2"].platform_id(), "kind": "sim", "node": "n2", "tcb": 1, "time": 1,
                      "nonce": base64.b64encode(bytes(12)).decode(),
                      "sealed": base64.b64encode(bytes(48)).decode(),
                      "public_key": base64.b64encode(bytes(range(32))).decode(), "measurement": "00" * 32}}
    st, resp = owner_post(w, "/v1/backups/confirm", {"completion": fake})
    assert st == 403 and resp["error"]["code"] == "bad_proof"
    assert open(w["cas"].db + ".key-store", "rb").read() == before


def test_backup_times_out_and_keeps_nothing(world):
    w = world
    b = backup_on(w, "n2", extra=["--timeout", "1"])
    assert b.wait_exit(timeout=10) == 1
    assert "no registration before the timeout" in b.log()
    assert sorted(os.listdir(os.path.join(w["n2"].root, "n2"))) == sorted(
        ["platform", "run", "lasd.log", os.path.basename(b.log_path)])


def test_backup_healthz_and_bad_offers(world):
    w = world
    b = backup_on(w, "n2", registers=False)
    st, body = https(b.addr, "GET", "/healthz")
    assert st == 200 and json.loads(body)["status"] == "ready"
    for bad, msg in [({"offer": {}}, "backup offer"), ({"x": 1}, "offer"), (None, "empty")]:
        st, resp = https(b.addr, "POST", "/v1/backup/complete", json.dumps(bad) if bad else b"")
        assert st == 400 and msg in json.loads(resp)["error"]["message"]


def test_primary_killed_during_key_store_update(world):
    """SIGKILL of the primary between receiving the proof and answering, at random points: the
    key-store holds the old or the new list, never a corrupt one, and a retry succeeds."""
    w = world
    cas = w["cas"]
    cas.stop()
    cas.extra = []
    env_cas = CasNode(w["n1"], cas.ip, db=cas.db)
    env_cas.port = cas.port
    w["started"].append(env_cas)
    os.environ["CUSTOS_TEST_STEP_DELAY_MS"] = "40"
    try:
        env_cas.start()
    finally:
        del os.environ["CUSTOS_TEST_STEP_DELAY_MS"]
    outcomes = {"with": 0, "without": 0, "CLI saw success": 0, "CLI saw a failure": 0}
    for rnd in range(20):
        b = backup_on(w, "n2", ip=f"127.0.0.{20 + rnd}")
        proc = subprocess.Popen([binary("cas"), "register-backup", b.addr], env=dict(os.environ,
                                SCONE_CLI_CONFIG=w["owner"].config), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: "database key received" in b.log(), what="backup completion")
        time.sleep(random.uniform(0, 0.18))  # 4 steps of 40 ms: land anywhere in them
        env_cas.kill()
        proc.wait(timeout=20)
        b.stop()
        os.environ["CUSTOS_TEST_STEP_DELAY_MS"] = "40"
        try:
            env_cas.start()  # the key-store opens: never corrupt
        finally:
            del os.environ["CUSTOS_TEST_STEP_DELAY_MS"]
        nodes_now = {x["node"] for x in backups(w)}
        assert nodes_now in ({"n1"}, {"n1", "n2"})
        outcomes["with" if "n2" in nodes_now else "without"] += 1
        outcomes["CLI saw success" if proc.returncode == 0 else "CLI saw a failure"] += 1
        # a registration the CLI was told about is never lost
        assert proc.returncode != 0 or nodes_now == {"n1", "n2"}, f"round {rnd}: acknowledged, then lost"
        if nodes_now == {"n1", "n2"}:
            w["owner"].run("backups", "remove", w["n2"].platform_id(), check=True)
    print("kill outcomes:", outcomes)
    # the kills must have landed inside the key-store update at least once, else nothing was tested
    assert outcomes["CLI saw a failure"] > 0, f"no kill interrupted a registration: {outcomes}"
    # a retry after a kill succeeds
    b = backup_on(w, "n2", ip="127.0.0.60")
    assert w["owner"].run("register-backup", b.addr).returncode == 0
    assert {x["node"] for x in backups(w)} == {"n1", "n2"}


def test_register_to_unknown_backup_address_fails_cleanly(world):
    r = world["owner"].run("register-backup", "127.0.0.9:1")
    assert r.returncode == 1 and "backup CAS" in r.stderr


def test_database_key_never_leaves_in_clear(world):
    """Across provisioning, two registrations and a move, the database key appears in no file, log or
    process output: derived here independently from node 1's entry and checked to open node 2's."""
    import base64 as b64
    import json as js
    from harness import casd_measurement, open_entry, seal_key
    w = world
    outputs = []
    r, _ = register(w, "n2")
    outputs += [r.stdout, r.stderr]
    r, _ = register(w, "n3", ip="127.0.0.10")
    outputs += [r.stdout, r.stderr]
    c2 = move(w, "n2", "127.0.0.3").start()
    outputs += [w["owner"].run("attest", c2.addr, *TRUST, check=True).stdout,
                w["owner"].run("backups", "list", "--json", "--cas", c2.addr, check=True).stdout]
    c2.stop()
    ks = js.load(open(w["cas"].db + ".key-store"))

    def unseal(node):
        e = [x for x in ks["entries"] if x["node"] == node][0]
        secret = open(os.path.join(w[node].platform_dir, "machine-secret"), "rb").read()
        key = seal_key(secret, casd_measurement())
        return open_entry(ks, e, key)

    dbkey = unseal("n1")
    assert len(dbkey) == 32 and unseal("n2") == dbkey and unseal("n3") == dbkey
    needles = [dbkey, dbkey.hex().encode(), dbkey.hex().upper().encode(), b64.b64encode(dbkey)]
    scanned = 0
    for root, _, files in os.walk(w["tmp"]):
        for f in files:
            path = os.path.join(root, f)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            data = open(path, "rb").read()
            scanned += 1
            for n in needles:
                assert n not in data, f"database key found in {path}"
    assert scanned > 10
    for out in outputs:
        for n in needles[1:]:
            assert n.decode() not in out


def test_backup_running_as_another_user_refused(world, nodes):
    """The same casd binary run by another user on a trusted node is not a backup: the quote carries
    the caller's uid, and the primary requires its own."""
    import tempfile
    w = world
    shared = tempfile.mkdtemp(prefix="custos-uid-", dir="/tmp")
    os.chmod(shared, 0o755)
    try:
        exe = os.path.join(shared, "casd")
        shutil.copy(binary("casd"), exe)
        os.chmod(exe, 0o755)
        other = nodes("other")
        other.socket = os.path.join(shared, "las.sock")
        other.start()
        w["other"] = other
        b = BackupCas(other, "127.0.0.9").expect_no_registration()
        b.binary = exe
        plain_args = b.args
        b.args = lambda: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + plain_args()
        w["started"].append(b)
        b.start()
        r = w["owner"].run("register-backup", b.addr)
        assert r.returncode == 1 and "it runs as uid 65534, the primary as uid 0" in r.stderr, r.stderr
        assert {x["node"] for x in backups(w)} == {"n1"}
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_backup_pinned_to_the_cas_key_hash(world):
    """casd --backup --cas-key-hash: offers of that CAS only; an offer whose signature does not verify
    is refused by any backup, and a refused offer does not spend the backup's registration."""
    w = world
    kh = w["cas"].key_hash()
    r, _ = register(w, "n2", extra=["--cas-key-hash", kh])
    assert r.returncode == 0
    b = backup_on(w, "n3", ip="127.0.0.10", extra=["--cas-key-hash", "ab" * 32], registers=False)
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 1 and f"the offer comes from CAS {kh}" in r.stderr and "ab" * 32 in r.stderr, r.stderr
    assert {x["node"] for x in backups(w)} == {"n1", "n2"}
    # a tampered signature, to a backup without a pin
    b = backup_on(w, "n3", ip="127.0.0.11")
    assert "no --cas-key-hash" in b.log()
    st, offer = owner_post(w, "/v1/backups/register", {"request": fetch_request(b)})
    assert st == 200
    sig = bytearray(base64.b64decode(offer["offer"]["signature"]))
    sig[-1] ^= 1
    bad = dict(offer["offer"], signature=base64.b64encode(bytes(sig)).decode())
    st, resp = https(b.addr, "POST", "/v1/backup/complete", json.dumps({"offer": bad}))
    assert st == 403 and json.loads(resp)["error"]["code"] == "bad_signature"
    # the genuine offer still works afterwards
    st, resp = https(b.addr, "POST", "/v1/backup/complete", json.dumps(offer))
    assert st == 200 and "completion" in json.loads(resp)
