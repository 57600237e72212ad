# SPDX-License-Identifier: Apache-2.0
"""An interrupted `cas register-backup` can be run again against the same backup CAS and finishes the
same registration, or says exactly where it stands. Real lasd, casd, casd --backup and cas."""
import glob
import json
import os
import subprocess
import threading

import harness
from harness import https
from test_backup import backup_on, backups, fetch_request, owner_post, world  # noqa: F401 (fixture)


def backup_post(b, path, body):
    st, resp = https(b.addr, "POST", path, json.dumps(body))
    return st, json.loads(resp)


def nodes_of(w):
    return {x["node"] for x in backups(w)}


def test_retry_after_the_offer(world):
    w = world
    b = backup_on(w, "n2")
    st, _ = owner_post(w, "/v1/backups/register", {"request": fetch_request(b)})  # then the relay died
    assert st == 200
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0 and r.stdout == "Backup CAS registered\n", r.stderr
    assert b.wait_exit() == 0 and nodes_of(w) == {"n1", "n2"}


def test_retry_after_the_completion(world):
    w = world
    b = backup_on(w, "n2")
    st, offer = owner_post(w, "/v1/backups/register", {"request": fetch_request(b)})
    st, comp = backup_post(b, "/v1/backup/complete", offer)
    assert st == 200  # the backup sealed its entry; the relay died before confirming
    assert nodes_of(w) == {"n1"}
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0 and r.stdout == "Backup CAS registered\n", r.stderr
    assert b.wait_exit() == 0 and nodes_of(w) == {"n1", "n2"}


def test_retry_after_a_committed_confirmation(world):
    w = world
    b = backup_on(w, "n2")
    st, offer = owner_post(w, "/v1/backups/register", {"request": fetch_request(b)})
    st, comp = backup_post(b, "/v1/backup/complete", offer)
    st, done = owner_post(w, "/v1/backups/confirm", comp)
    assert st == 200 and "already" not in done  # committed; the relay died before hearing it
    ks = open(w["cas"].db + ".key-store", "rb").read()
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0 and "its confirmation had already been committed" in r.stdout, (r.stdout, r.stderr)
    assert open(w["cas"].db + ".key-store", "rb").read() == ks
    assert b.wait_exit() == 0


def test_two_concurrent_runs_both_finish(world):
    w = world
    b = backup_on(w, "n2")
    results = []

    def run():
        results.append(w["owner"].run("register-backup", b.addr))
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert all(r.stdout.startswith("Backup CAS registered") for r in results)
    assert nodes_of(w) == {"n1", "n2"}
    assert b.wait_exit() == 0


def test_primary_killed_between_confirmation_and_key_store(world):
    """The spent request is committed but the primary dies before the key-store is replaced: the relay
    says the state is unknown and how to check; a retry against the same backup finishes it."""
    w = world
    cas = w["cas"]
    b = backup_on(w, "n2")
    cas.stop()
    os.environ["CUSTOS_TEST_STEP_DELAY_MS"] = "3000"  # each step of the key-store write waits 3 s
    try:
        cas.start()
    finally:
        del os.environ["CUSTOS_TEST_STEP_DELAY_MS"]
    env = dict(os.environ, SCONE_CLI_CONFIG=w["owner"].config)
    relay = subprocess.Popen([harness.binary("cas"), "register-backup", b.addr], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    harness.wait_for(lambda: glob.glob(cas.db + ".key-store.tmp-*"), what="the key-store write in progress")
    cas.kill()  # after the spent record's transaction, before the key-store's rename
    out, errs = relay.communicate(timeout=60)
    assert relay.returncode == 1
    assert "may or may not be committed" in errs and "cas backups list" in errs, errs
    cas.start()
    assert nodes_of(w) == {"n1"}  # the key-store write never happened
    r = w["owner"].run("register-backup", b.addr)
    assert r.returncode == 0, r.stderr
    assert nodes_of(w) == {"n1", "n2"}
    assert "on a retry of its confirmation" in cas.log()
    assert b.wait_exit() == 0
