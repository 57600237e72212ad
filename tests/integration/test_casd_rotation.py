# SPDX-License-Identifier: Apache-2.0
"""Revocation: removing a backup rotates the database key. A node that kept its old key-store (and
with it the old key) cannot open the database any more; the remaining nodes can, with every secret.
Real lasd, casd, casd --backup and cas processes on loopback."""
import base64
import glob
import json
import os
import random
import shutil
import subprocess
import time

import pytest
from cryptography.exceptions import InvalidTag

import harness
from harness import CasNode, casd_measurement, db_meta, open_entry, seal_key
from test_backup import TRUST, backups, move, register, world  # noqa: F401 (fixture)

SECRETS = {"app-key": "v1", "db-password": "p" * 100}


def node_dbkey(w, ks, node):
    """The database key as `node` would open it from key-store `ks` (parsed JSON), derived here."""
    e = [x for x in ks["entries"] if x["node"] == node][0]
    secret = open(os.path.join(w[node].platform_dir, "machine-secret"), "rb").read()
    return open_entry(ks, e, seal_key(secret, casd_measurement()))


def put_secrets(w, cas=None):
    for name, value in SECRETS.items():
        w["owner"].run("secret", "put", name, *(["--cas", cas] if cas else []), input=value, check=True)


def assert_secrets(w, addr):
    w["owner"].run("attest", addr, *TRUST, check=True)
    for name, value in SECRETS.items():
        assert w["owner"].run("secret", "get", name, "--cas", addr, check=True).stdout == value + "\n"


def test_remove_rotates_key_and_revokes_the_removed_node(world, tmp_path):
    w = world
    put_secrets(w)
    register(w, "n2")
    register(w, "n3", ip="127.0.0.10")
    ks_path = w["cas"].db + ".key-store"
    old = json.load(open(ks_path))
    assert old["generation"] == 1 and all("public_key" in e for e in old["entries"])
    old_key = node_dbkey(w, old, "n3")
    # node 3 keeps a copy of everything it could see: the key-store file
    stolen = tmp_path / "n3-keystore"
    shutil.copy(ks_path, stolen)

    r = w["owner"].run("backups", "remove", w["n3"].platform_id(), check=True)
    assert w["n3"].platform_id() in r.stdout
    new = json.load(open(ks_path))
    assert new["generation"] == 2 and new["database_id"] == old["database_id"]
    assert {e["node"] for e in new["entries"]} == {"n1", "n2"}
    assert not os.path.exists(ks_path + ".next")
    new_key = node_dbkey(w, new, "n1")
    assert new_key != old_key and node_dbkey(w, new, "n2") == new_key
    assert "database key rotated (generation 1 -> 2)" in w["cas"].log()
    # the database is under the new key only: the old key opens no current meta record
    w["cas"].stop()
    assert db_meta(w["cas"].db, new_key)[1] == 2
    with pytest.raises(InvalidTag):
        db_meta(w["cas"].db, old_key)

    # node 3 with its old key-store and the current database: refused by name
    shutil.copy(ks_path, tmp_path / "current-keystore")
    shutil.copy(stolen, ks_path)
    c3 = CasNode(w["n3"], "127.0.0.4", db=w["cas"].db)
    assert c3.start(expect_fail=True) != 0
    log = c3.log()
    assert "(generation 1) is older than database" in log and "(generation 2)" in log, log
    assert w["n3"].platform_id() in log
    assert "CAS provisioning token" not in log
    # node 1 with the old key-store is refused the same way (nothing opens an old generation)
    w["cas"].proc = None
    mark = len(w["cas"].log())
    assert w["cas"].start(expect_fail=True) != 0
    assert "is older than database" in w["cas"].log()[mark:]
    shutil.copy(tmp_path / "current-keystore", ks_path)

    # the remaining nodes open it with every secret
    c2 = move(w, "n2", "127.0.0.3").start()
    assert_secrets(w, c2.addr)
    c2.stop()
    c3 = CasNode(w["n3"], "127.0.0.4", db=w["cas"].db)
    assert c3.start(expect_fail=True) != 0
    assert "not registered in key-store" in c3.log()
    w["cas"].start()
    assert_secrets(w, w["cas"].addr)
    # the audit trail of the removal survived the re-encryption
    assert w["owner"].run("secret", "get", "app-key", check=True).stdout == "v1\n"


def test_remove_refused_while_a_legacy_entry_would_be_locked_out(world):
    """An entry registered before rotation existed cannot follow one: removal says so and changes
    nothing."""
    w = world
    register(w, "n2")
    register(w, "n3", ip="127.0.0.10")
    w["cas"].stop()
    ks_path = w["cas"].db + ".key-store"
    ks = json.load(open(ks_path))
    # turn n2's entry into a legacy one, as a casd before rotation wrote it (the MAC recomputed with
    # the key, which a test may derive)
    key = node_dbkey(w, ks, "n1")
    e = [x for x in ks["entries"] if x["node"] == "n2"][0]
    secret = open(os.path.join(w["n2"].platform_dir, "machine-secret"), "rb").read()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = os.urandom(12)
    e.pop("public_key")
    e.pop("wrapped")
    e["nonce"] = base64.b64encode(nonce).decode()
    e["sealed"] = base64.b64encode(AESGCM(seal_key(secret, casd_measurement())).encrypt(
        nonce, key, harness.keystore_aad(e))).decode()
    harness.write_keystore(ks_path, ks, key)
    w["cas"].start()
    before = open(ks_path, "rb").read()
    rows = {b["node"]: b for b in backups(w)}
    assert rows["n2"]["rotatable"] is False and rows["n3"]["rotatable"] is True
    r = w["owner"].run("backups", "remove", w["n3"].platform_id())
    assert r.returncode == 1 and "n2" in r.stderr and "Register that node again" in r.stderr, r.stderr
    assert open(ks_path, "rb").read() == before
    # re-registering n2 makes it a node entry; then the removal goes through
    register(w, "n2")
    w["owner"].run("backups", "remove", w["n3"].platform_id(), check=True)
    c2 = move(w, "n2", "127.0.0.3").start()
    c2.stop()


def test_sigkill_at_every_step_of_a_rotation(world):
    """20 kills spread over the steps of a rotation (key-store .next written, database re-encrypted,
    rename): after each, the remaining platforms open the database with every secret and the removed
    platform is either still registered (old) or refused (new), never a database nobody opens."""
    w = world
    seed = int(os.environ.get("CUSTOS_CRASH_SEED", str(time.time_ns())))
    rng = random.Random(seed)
    put_secrets(w)
    register(w, "n2")
    cas = w["cas"]
    ks_path = cas.db + ".key-store"
    delay_ms = 40
    outcomes = {"old": 0, "new": 0}
    env = dict(os.environ, SCONE_CLI_CONFIG=w["owner"].config)
    for i in range(20):
        if w["n3"].platform_id() not in {b["platform_id"] for b in backups(w)}:
            register(w, "n3", ip="127.0.0.10")
        gen_before = json.load(open(ks_path))["generation"]
        cas.stop()
        os.environ["CUSTOS_TEST_STEP_DELAY_MS"] = str(delay_ms)  # every crash-safe step of casd is slowed
        try:
            cas.start()
        finally:
            del os.environ["CUSTOS_TEST_STEP_DELAY_MS"]
        mark_kill = len(cas.log())
        remover = subprocess.Popen([harness.binary("cas"), "backups", "remove", w["n3"].platform_id()], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # once the rotation has begun (its .next file appears, as a temp file first), kill within its 6
        # delayed steps: .next written (4), before the database commit (1), before the rename (1), and
        # a little after; the machine's speed does not decide where the kills land
        harness.wait_for(lambda: glob.glob(ks_path + ".next*") or remover.poll() is not None,
                         what="the rotation to begin")
        if i % 2:  # after the database's commit: between it and the key-store's rename, or after
            harness.wait_for(lambda: "re-encrypted under a new key" in cas.log()[mark_kill:] or
                             remover.poll() is not None, what="the re-encryption")
            time.sleep(rng.uniform(0, 2 * delay_ms / 1000))
        else:  # somewhere in the .next file's steps
            time.sleep(rng.uniform(0, 5 * delay_ms / 1000))
        cas.kill()
        remover.communicate(timeout=30)
        mark = len(cas.log())
        cas.start()
        log = cas.log()[mark:]
        assert "opened on platform" in log, f"round {i} (seed {seed}): {log}"
        ks = json.load(open(ks_path))
        assert not os.path.exists(ks_path + ".next"), f"round {i}: .next left behind"
        nodes_now = {e["node"] for e in ks["entries"]}
        if ks["generation"] == gen_before:
            outcomes["old"] += 1
            assert nodes_now == {"n1", "n2", "n3"}, (i, seed, nodes_now)
        else:
            outcomes["new"] += 1
            assert ks["generation"] == gen_before + 1 and nodes_now == {"n1", "n2"}, (i, seed, ks["generation"])
        assert_secrets(w, cas.addr)
        assert db_meta(cas.db, node_dbkey(w, ks, "n2"))[1] == ks["generation"]  # node 2 opens what is there
    cas.stop()
    c2 = move(w, "n2", "127.0.0.3").start()
    assert_secrets(w, c2.addr)
    c2.stop()
    # kills landed both before and after the commit (a test that cannot tell them apart proves nothing)
    assert outcomes["old"] > 0 and outcomes["new"] > 0, (outcomes, seed)


def test_a_failed_compaction_does_not_undo_the_rotation(world):
    """The compaction after a rotation cannot make its copy (a directory stands at data.mdb.compact):
    the rotation stands (the key-store names the new key, the database is under it), the log says the
    old key's copies may remain in free pages, and every secret is there now and after a restart."""
    w = world
    put_secrets(w)
    register(w, "n2")
    register(w, "n3", ip="127.0.0.10")
    blocker = os.path.join(w["cas"].db, "data.mdb.compact")
    os.makedirs(os.path.join(blocker, "in-the-way"))
    ks_path = w["cas"].db + ".key-store"
    r = w["owner"].run("backups", "remove", w["n3"].platform_id())
    assert r.returncode == 0, r.stderr
    log = w["cas"].log()
    assert "database key rotated (generation 1 -> 2)" in log
    assert "compacting " + w["cas"].db + " failed" in log and "data.mdb.compact" in log, log[-2000:]
    assert "may remain in its free pages" in log
    new = json.load(open(ks_path))
    assert new["generation"] == 2 and not os.path.exists(ks_path + ".next")
    assert db_meta(w["cas"].db, node_dbkey(w, new, "n1"))[1] == 2
    assert_secrets(w, w["cas"].addr)
    w["cas"].stop()
    w["cas"].start()
    assert_secrets(w, w["cas"].addr)
    shutil.rmtree(blocker)
