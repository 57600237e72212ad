# SPDX-License-Identifier: Apache-2.0
"""The primary's checks of a backup registration that the other tests never reach: the platform
allow-list (a provisioning without --only_for_testing-trust-any), debug backups, the request's age
and date, and the completed entry matching its quote. Requests with chosen times and completions
with chosen entries come from a scripted backup (fakepeer.FakeBackup) holding a sim node's secret."""
import json
import os
import time

import pytest

from fakepeer import FakeBackup, owner_post
from harness import OWNER_TOML, BackupCas, CasNode, Cli, stop_all, unseal_dbkey


@pytest.fixture
def primary(tmp_path, nodes):
    """CAS on n1; nodes n2, n3 and a debug-mode node. provision(*trust) provisions it; returns
    everything in a dict. Every casd started here is stopped (and its exit checked) at the end."""
    w = {"tmp": tmp_path, "started": []}
    for name, extra in (("n1", []), ("n2", []), ("n3", []), ("dbg", ["--debug-mode"])):
        w[name] = nodes(name, extra=extra).start()
    cas = CasNode(w["n1"], "127.0.0.2")
    w["started"].append(cas)
    w["cas"] = cas.start()
    w["owner"] = Cli(tmp_path / "owner" / "config.json")
    toml = tmp_path / "owner.toml"
    toml.write_text(OWNER_TOML.format(ip=cas.ip))

    def provision(*trust):
        w["owner"].run("provision", cas.addr, "-c", cas.key_hash(), "--token", cas.token(), "--config-file",
                       str(toml), "with-attestation", "--only_for_testing-ignore-signer", *trust, check=True)
    w["provision"] = provision
    yield w
    stop_all(w["started"])


def backup(w, node, ip, registers=True):
    b = BackupCas(w[node], ip)
    if not registers:
        b.expect_no_registration()
    w["started"].append(b)
    return b.start()


def registered_nodes(w):
    r = w["owner"].run("backups", "list", "--json", check=True)
    return {x["node"] for x in json.loads(r.stdout)}


def post(w, path, body):
    return owner_post(w["owner"], w["cas"], w["tmp"], path, body)


def test_platform_allow_list(primary):
    """Provisioned with the platforms of n1 and n2 only: a backup on n2 registers, one on n3 is refused
    naming its platform, until the owner allows that platform."""
    w = primary
    n2_id, n3_id = w["n2"].platform_id(), w["n3"].platform_id()
    w["provision"]("--platform", w["n1"].platform_id(), "--platform", n2_id)
    r = w["owner"].run("register-backup", backup(w, "n2", "127.0.0.9").addr)
    assert r.returncode == 0, r.stderr
    r = w["owner"].run("register-backup", backup(w, "n3", "127.0.0.10", registers=False).addr)
    assert r.returncode == 1 and "status 403" in r.stderr, r.stderr
    assert "unknown platform" in r.stderr and n3_id in r.stderr, r.stderr
    assert registered_nodes(w) == {"n1", "n2"}
    w["owner"].run("owner", "allow-platform", n3_id, check=True)
    r = w["owner"].run("register-backup", backup(w, "n3", "127.0.0.11").addr)
    assert r.returncode == 0, r.stderr
    assert registered_nodes(w) == {"n1", "n2", "n3"}


def test_debug_backup_refused(primary):
    """A backup whose lasd runs in debug mode is refused (the owner did not allow debug), although any
    platform is trusted; with a provisioning that allowed debug it registers."""
    w = primary
    w["provision"]("--only_for_testing-trust-any")
    ks = w["cas"].db + ".key-store"
    before = open(ks, "rb").read()
    r = w["owner"].run("register-backup", backup(w, "dbg", "127.0.0.9", registers=False).addr)
    assert r.returncode == 1 and "status 403" in r.stderr and "debug" in r.stderr, r.stderr
    assert registered_nodes(w) == {"n1"}
    assert open(ks, "rb").read() == before


def test_debug_backup_accepted_when_allowed(tmp_path, primary):
    """Positive control for the test above: the same debug node registers once debug is allowed."""
    w = primary
    w["provision"]("--only_for_testing-trust-any", "--only_for_testing-debug")
    r = w["owner"].run("register-backup", backup(w, "dbg", "127.0.0.9").addr)
    assert r.returncode == 0, r.stderr
    assert registered_nodes(w) == {"n1", "dbg"}


@pytest.mark.parametrize("offset,status,code", [
    (-700, 403, "request_expired"),   # made more than 600 s before the primary's time
    (-500, 200, None),                # control: within 600 s
    (+120, 403, "request_from_future"),  # more than 60 s after the primary's time
    (+30, 200, None),                 # control: clocks a little out of step
], ids=["expired", "recent", "future", "slightly-ahead"])
def test_request_time(primary, offset, status, code):
    w = primary
    w["provision"]("--only_for_testing-trust-any")
    fake = FakeBackup(w["n2"])
    st, resp = post(w, "/v1/backups/register", {"request": fake.request(int(time.time()) + offset)})
    assert st == status, resp
    if code:
        assert resp["error"]["code"] == code, resp
        assert "backup refused" in resp["error"]["message"], resp
    else:
        assert "offer" in resp
    assert registered_nodes(w) == {"n1"}


def test_completed_entry_must_match_its_quote(primary):
    """A backup holding the key (valid proof) whose entry claims another TCB, node, platform, kind or
    casd measurement than its quote is refused; the matching entry then registers."""
    w = primary
    w["provision"]("--only_for_testing-trust-any")
    fake = FakeBackup(w["n2"])
    st, resp = post(w, "/v1/backups/register", {"request": fake.request(int(time.time()), tcb=3)})
    assert st == 200, resp
    dbkey = fake.unwrap(resp["offer"])
    assert dbkey == unseal_dbkey(w["cas"].db + ".key-store", w["n1"].platform_dir), "unwrapped another key"
    ks = w["cas"].db + ".key-store"
    before = open(ks, "rb").read()
    for field, value in (("tcb", 4), ("tcb", 2), ("node", "n3"), ("platform_id", w["n3"].platform_id()),
                         ("kind", "tpm2"), ("measurement", "00" * 32)):
        st, resp = post(w, "/v1/backups/confirm", fake.completion(dbkey, fake.entry(dbkey, **{field: value})))
        assert st == 403 and resp["error"]["code"] == "entry_mismatch", (field, value, resp)
        assert "does not match its quote" in resp["error"]["message"], resp
        assert open(ks, "rb").read() == before, f"key-store changed by a refused entry ({field}={value})"
    st, resp = post(w, "/v1/backups/confirm", fake.completion(dbkey, fake.entry(dbkey)))
    assert st == 200 and resp["tcb"] == 3 and resp["node"] == "n2", resp
    listed = json.loads(w["owner"].run("backups", "list", "--json", check=True).stdout)
    assert {(x["node"], x["tcb"]) for x in listed} == {("n1", 1), ("n2", 3)}


def test_key_store_time_edit_refused(primary):
    """The MAC covers every field of every entry: an edited registration time is refused at start
    (the entry still unseals: time is not in the seal's additional data), and the file is left alone."""
    w = primary
    w["provision"]("--only_for_testing-trust-any")
    cas = w["cas"]
    cas.stop()
    ks = cas.db + ".key-store"
    data = open(ks, "rb").read()
    doc = json.loads(data)
    doc["entries"][0]["time"] += 1
    edited = json.dumps(doc, indent=2).encode()
    with open(ks, "wb") as f:
        f.write(edited)
    mark = len(cas.log())
    assert cas.start(expect_fail=True) == 1
    log = cas.log()[mark:]
    assert "was modified by someone without the database key (its MAC does not match)" in log, log
    assert open(ks, "rb").read() == edited
    with open(ks, "wb") as f:
        f.write(data)
    cas.start()
    assert os.path.exists(ks)
