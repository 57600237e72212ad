# SPDX-License-Identifier: Apache-2.0
"""Files written before database IDs and key rotation (tests/fixtures/format1, made by casd at commit
20e497a) open after the upgrade: migrated once, crash-safely, with every record intact.

An upgraded casd binary has another measurement and so another seal key; in production the new
binary gets its entry through backup registration. Here the test re-seals the fixture's (format 1)
entry for the current binary with the fixture's machine secret, which models that step and leaves
the database file and the key-store's format exactly as the old casd wrote them."""
import base64
import json
import os
import random
import shutil
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import harness
from harness import CasNode, Cli, casd_measurement, db_meta, keystore_aad, seal_key, write_keystore

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "format1")


def install(tmp_path, nodes):
    n1 = nodes("n1")
    os.makedirs(n1.platform_dir, mode=0o700, exist_ok=True)
    shutil.copy(os.path.join(FIXTURE, "machine-secret"), os.path.join(n1.platform_dir, "machine-secret"))
    os.chmod(os.path.join(n1.platform_dir, "machine-secret"), 0o600)
    n1.start()
    db = str(tmp_path / "pv" / "cas-db")
    os.makedirs(db, mode=0o700)
    shutil.copy(os.path.join(FIXTURE, "cas-db", "data.mdb"), os.path.join(db, "data.mdb"))
    ks = json.load(open(os.path.join(FIXTURE, "cas-db.key-store")))
    assert ks["version"] == 1 and "database_id" not in ks
    secret = open(os.path.join(FIXTURE, "machine-secret"), "rb").read()
    old = bytes.fromhex(open(os.path.join(FIXTURE, "casd-measurement")).read().strip())
    e = ks["entries"][0]
    dbkey = AESGCM(seal_key(secret, old)).decrypt(base64.b64decode(e["nonce"]), base64.b64decode(e["sealed"]),
                                                  keystore_aad(e))
    nonce = os.urandom(12)
    e["nonce"] = base64.b64encode(nonce).decode()
    e["sealed"] = base64.b64encode(AESGCM(seal_key(secret, casd_measurement())).encrypt(
        nonce, dbkey, keystore_aad(e))).decode()
    write_keystore(db + ".key-store", ks, dbkey)
    cas = CasNode(n1, "127.0.0.2", db=db)
    cli_path = tmp_path / "owner" / "config.json"
    os.makedirs(cli_path.parent)
    cfg = json.load(open(os.path.join(FIXTURE, "cli.json")))
    cfg["cas"]["127.0.0.2"]["url"] = f"https://{cas.addr}"
    cli_path.write_text(json.dumps(cfg))
    os.chmod(cli_path, 0o600)
    return cas, Cli(cli_path), dbkey


def check_migrated(cas, owner, dbkey):
    ks = json.load(open(cas.db + ".key-store"))
    assert ks["version"] == 3 and ks["generation"] == 1 and "creating" not in ks
    assert "public_key" in ks["entries"][0]
    assert ks["entries"][0]["measurement"] == casd_measurement().hex()  # opened by this build: tagged with it
    assert db_meta(cas.db, dbkey)[:2] == (ks["database_id"], 1)
    assert owner.run("secret", "get", "legacy-secret", check=True).stdout == "made-by-format-1\n"


def test_format1_files_open_and_are_migrated_once(tmp_path, nodes):
    cas, owner, dbkey = install(tmp_path, nodes)
    cas.start()
    assert "upgraded: bound to database" in cas.log()
    check_migrated(cas, owner, dbkey)
    # the same key, the same owner: nothing was lost or replaced
    assert cas.key_hash() == json.load(open(owner.config))["cas"]["127.0.0.2"]["key_hash"]
    cas.stop()
    mark = len(cas.log())
    cas.start()
    assert "upgraded" not in cas.log()[mark:]  # once
    check_migrated(cas, owner, dbkey)


def test_sigkill_during_migration(tmp_path, nodes):
    """10 kills spread over the migration's steps (meta record, key-store rewrite): every next start
    opens the database and ends migrated with the secret intact."""
    seed = int(os.environ.get("CUSTOS_CRASH_SEED", str(time.time_ns())))
    rng = random.Random(seed)
    for i in range(10):
        sub = tmp_path / f"r{i}"
        sub.mkdir()
        cas, owner, dbkey = install(sub, nodes)
        os.environ["CUSTOS_TEST_STEP_DELAY_MS"] = "30"
        try:
            before = len(cas.log())
            with open(cas.log_path, "ab") as logf:
                import subprocess
                cas.proc = subprocess.Popen(cas.args(), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
            harness._started.append(cas.proc)
            time.sleep(rng.uniform(0.005, 0.2))
            cas.kill()
        finally:
            del os.environ["CUSTOS_TEST_STEP_DELAY_MS"]
        assert "FATAL" not in cas.log()[before:]
        cas.start()
        check_migrated(cas, owner, dbkey)
        cas.stop()
        cas.las.stop()
