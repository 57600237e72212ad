# SPDX-License-Identifier: Apache-2.0
"""casd crash safety: SIGKILL at random moments (while it writes secrets, during its first start,
during provisioning) never loses an acknowledged write, never leaves a key-store or database that
the next start refuses, and never loses the provisioning token before provisioning has happened."""
import hashlib
import http.client
import json
import os
import random
import shutil
import subprocess
import threading
import time

import pytest

import harness
from harness import (OWNER_TOML, CasNode, Cli, binary, db_record_values, https, https_connection,
                     keystore_mac, unseal_dbkey, wait_for, db_meta)

SEED = int(os.environ.get("CUSTOS_CRASH_SEED", str(time.time_ns())))


def owner_toml(tmp_path, ip):
    p = tmp_path / "owner.toml"
    p.write_text(OWNER_TOML.format(ip=ip))
    return p


@pytest.fixture
def casd_copy(tmp_path):
    """A private copy of casd and its measurement: these tests run long, and a rebuild of the build
    directory meanwhile would change casd's measurement (and so its seal key) between two starts."""
    d = tmp_path / "bin"
    d.mkdir()
    path = str(d / "casd")
    shutil.copy2(binary("casd"), path)
    with open(path, "rb") as f:
        return path, hashlib.sha256(f.read()).digest()


@pytest.fixture
def cas_factory(nodes, casd_copy):
    """CasNodes (each its own database) on one simulated node; all are stopped at the end."""
    made = []
    las = nodes("n1").start()

    def make(db):
        c = CasNode(las, "127.0.0.2", db=db)
        c.binary, c.measurement = casd_copy
        made.append(c)
        return c

    try:
        yield make
    finally:
        harness.stop_all(made)


def provision(tmp_path, cas):
    owner = Cli(tmp_path / "owner" / "config.json")
    owner.provision(cas, owner_toml(tmp_path, cas.ip))
    # the listener restarts with the owner's names shortly after provisioning: wait for it
    wait_for(lambda: "TLS certificate renewed with the owner's names" in cas.log(), what="certificate renewal")
    return owner, owner.identity_files(str(tmp_path / "owner"))


class Writer(threading.Thread):
    """PUTs secrets with unique names and values over one keep-alive connection; a write counts as
    acknowledged only once its 200 answer has been read completely."""

    def __init__(self, addr, cert, round_no):
        super().__init__(daemon=True)
        self.conn = https_connection(addr, cert, timeout=10)
        self.round_no = round_no
        self.acked = {}
        self.in_flight = None
        self.unexpected = []  # answers other than 200 while casd was alive
        self.ended_by = None

    def run(self):
        n = 0
        try:
            while True:
                name, value = f"r{self.round_no}-w{n}", f"value-{self.round_no}-{n}-{random.getrandbits(64):016x}"
                self.in_flight = (name, value)
                self.conn.request("PUT", f"/v1/secrets/{name}", body=json.dumps({"value": value}),
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                body = r.read()
                try:
                    answer = json.loads(body)
                except ValueError:
                    answer = None
                if r.status != 200 or answer != {"stored": name}:
                    self.unexpected.append((name, r.status, body[:200]))
                    return
                self.acked[name] = value
                self.in_flight = None
                n += 1
        except (OSError, http.client.HTTPException) as e:  # the kill: connection reset, EOF, ...
            self.ended_by = repr(e)
        except Exception as e:  # noqa: BLE001 - anything else is a failure of the test, not the kill
            self.unexpected.append(("writer", "exception", repr(e)))
        finally:
            self.conn.close()


def read_all(addr, cert, expected):
    """GETs every name over one keep-alive connection; returns the mismatches."""
    bad = []
    conn = https_connection(addr, cert, timeout=10)
    try:
        for name, value in expected.items():
            conn.request("GET", f"/v1/secrets/{name}")
            r = conn.getresponse()
            body = r.read()
            got = json.loads(body).get("value") if r.status == 200 else None
            if r.status != 200 or got != value:
                bad.append((name, value, r.status, body[:200]))
    finally:
        conn.close()
    return bad


def test_sigkill_while_writing_never_loses_an_acknowledged_write(tmp_path, cas_factory):
    rng = random.Random(SEED)
    cas = cas_factory(None).start()
    _, cert = provision(tmp_path, cas)
    ks_path = cas.db + ".key-store"
    ks_bytes = open(ks_path, "rb").read()
    acked, rounds, in_flight_seen = {}, 0, 0
    in_flight = {True: 0, False: 0}  # writes in flight at a kill: stored / absent afterwards
    while rounds < 20 or len(acked) < 1000:
        # bounded by rounds, not by time (a slow build only makes it take longer)
        assert rounds < 200, f"only {len(acked)} acknowledged writes in {rounds} rounds (seed {SEED})"
        w = Writer(cas.addr, cert, rounds)
        w.start()
        time.sleep(rng.uniform(0.05, 0.4))
        cas.kill()
        w.join(timeout=15)
        assert not w.is_alive(), "writer did not notice the kill"
        assert not w.unexpected, f"round {rounds}: casd answered a write wrongly: {w.unexpected}"
        assert w.ended_by is not None, f"round {rounds}: the writer ended without the kill"
        acked.update(w.acked)
        rounds += 1
        # the database (and its key-store) must open after every kill ...
        cas.start()
        assert open(ks_path, "rb").read() == ks_bytes, "the key-store changed although nothing re-sealed it"
        # ... every write acknowledged in this round, and a sample of the earlier ones, must read back
        # with its value (all of them are checked after the last kill)
        earlier = [n for n in acked if n not in w.acked]
        check = dict(w.acked, **{n: acked[n] for n in rng.sample(earlier, min(300, len(earlier)))})
        bad = read_all(cas.addr, cert, check)
        assert not bad, f"after kill {rounds} (seed {SEED}): {len(bad)} of {len(check)} acknowledged " \
                        f"writes lost or wrong, e.g. {bad[:3]}"
        # a write that was in flight at the kill is either there with its exact value, or absent
        if w.in_flight:
            in_flight_seen += 1
            name, value = w.in_flight
            st, body = https(cas.addr, "GET", f"/v1/secrets/{name}", cert=cert)
            assert (st == 200 and json.loads(body)["value"] == value) or st == 404, (name, st, body)
            in_flight[st == 200] += 1
    bad = read_all(cas.addr, cert, acked)
    assert not bad, f"after {rounds} kills (seed {SEED}): {len(bad)} of {len(acked)} acknowledged writes lost or " \
                    f"wrong, e.g. {bad[:3]}"
    assert in_flight_seen > 0, "no kill ever interrupted a write: the test did not exercise anything"
    # the records on disk are encrypted under the database key sealed in the key-store
    dbkey = unseal_dbkey(ks_path, cas.las.platform_dir, cas.measurement)
    name = next(iter(acked))
    cas.stop()
    assert acked[name].encode() in db_record_values(cas.db, dbkey, "secret/" + name)
    assert cas.log().count("CAS listening") == rounds + 1
    print(f"{rounds} kills, {len(acked)} acknowledged writes, all read back; writes in flight at a kill: "
          f"{in_flight[True]} stored, {in_flight[False]} absent (seed {SEED})")


def test_sigkill_during_first_start_leaves_a_usable_database(tmp_path, cas_factory):
    rng = random.Random(SEED)
    phases = {"before key-store": 0, "key-store, not listening": 0, "listening": 0}
    # calibration: how long an uninterrupted first start takes here; kills land in 0..50 ms, mostly
    # inside that time
    cal = cas_factory(str(tmp_path / "db-calibration"))
    with open(cal.log_path, "ab") as logf:
        t0 = time.monotonic()
        cal.proc = subprocess.Popen(cal.args(), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    harness._started.append(cal.proc)
    while "CAS listening" not in cal.log():
        assert cal.proc.poll() is None and time.monotonic() - t0 < 10, cal.log()
        time.sleep(0.001)
    start_s = time.monotonic() - t0
    cal.stop()
    for i in range(20):
        cas = cas_factory(str(tmp_path / f"db-{i}"))
        las = cas.las
        ks = cas.db + ".key-store"
        before = len(cas.log())
        with open(cas.log_path, "ab") as logf:
            proc = subprocess.Popen(cas.args(), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        cas.proc = proc
        harness._started.append(proc)
        time.sleep(rng.uniform(0, min(0.05, 1.2 * start_s)))
        cas.kill()
        killed_log = cas.log()[before:]
        if not os.path.exists(ks):
            phases["before key-store"] += 1
            assert not os.path.exists(os.path.join(cas.db, "data.mdb")), "a database without its key-store"
        elif "CAS listening" not in killed_log:
            phases["key-store, not listening"] += 1
        else:
            phases["listening"] += 1
        dbkey = None
        if os.path.exists(ks):
            # whatever is there is complete: it parses, opens with the seal key, and its MAC holds
            dbkey = unseal_dbkey(ks, las.platform_dir, cas.measurement)
            stored, computed = keystore_mac(ks, dbkey)
            assert stored == computed, f"round {i}: key-store MAC does not verify"
        # the next start creates a consistent database or opens the existing one
        mark = len(cas.log())
        cas.start()
        log = cas.log()[mark:]
        assert ("created a new database key" in log) == (dbkey is None), log
        assert "opened on platform" in log
        if dbkey is not None:
            assert unseal_dbkey(ks, las.platform_dir, cas.measurement) == dbkey, \
                "the database key changed across the kill"
        new_hash = cas.key_hash()
        new_token = cas.token()
        # what the killed process logged was durable: the same identity and the same token
        for what, new in (("CAS key hash: ", new_hash), ("CAS provisioning token: ", new_token)):
            if what in killed_log:
                old = killed_log.split(what)[1].split()[0]
                assert old == new, f"round {i}: {what} changed from {old} to {new} after the kill"
        dbkey = unseal_dbkey(ks, las.platform_dir, cas.measurement)
        meta = db_meta(cas.db, dbkey)  # the database is bound to its key-store and opens with its key
        assert meta and meta[0] == json.load(open(ks))["database_id"] and meta[1] == 1, meta
        assert "creating" not in json.load(open(ks))
        st, body = https(cas.addr, "GET", "/healthz")
        assert st == 200 and json.loads(body) == {"status": "ok", "provisioned": False}
        # and it stays that way across a clean restart
        cas.stop()
        cas.start()
        assert cas.key_hash() == new_hash and cas.token() == new_token
        cas.stop()
    print(f"kill phases over 20 first starts (uninterrupted start: {start_s * 1000:.1f} ms): {phases} "
          f"(seed {SEED})")
    assert phases["before key-store"] + phases["key-store, not listening"] > 0, \
        f"no kill interrupted a start: {phases}"


def test_sigkill_during_provisioning(tmp_path, cas_factory):
    """Either the provisioning happened (and the owner's identity is the owner) or the same token
    still works; an acknowledged provisioning is never lost."""
    rng = random.Random(SEED)
    key, crt = tmp_path / "owner-key.pem", tmp_path / "owner-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=owner", "-days", "1"],
                   check=True, capture_output=True)
    cert = (str(crt), str(key))
    outcomes = {"provisioned, CLI saw it": 0, "provisioned, answer lost": 0, "not provisioned": 0}
    toml = owner_toml(tmp_path, "127.0.0.2")
    # calibration: how long an uninterrupted provisioning takes (CLI start to exit)
    cal = cas_factory(str(tmp_path / "db-calibration")).start()
    t0 = time.monotonic()
    Cli(tmp_path / "cli-calibration" / "config.json").provision(cal, toml, "--identity", str(key))
    prov_s = time.monotonic() - t0
    cal.stop()
    for i in range(12):
        cas = cas_factory(str(tmp_path / f"db-{i}")).start()
        token, key_hash = cas.token(), cas.key_hash()
        cli = Cli(tmp_path / f"cli-{i}" / "config.json")
        env = dict(os.environ, SCONE_CLI_CONFIG=cli.config)
        p = subprocess.Popen([binary("cas"), "provision", cas.addr, "-c", key_hash, "--token", token,
                              "--config-file", str(toml), "--identity", str(key), "with-attestation",
                              "--only_for_testing-ignore-signer", "--only_for_testing-trust-any"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0, prov_s))
        cas.kill()
        out, err = p.communicate(timeout=60)
        mark = len(cas.log())
        cas.start()
        log = cas.log()[mark:]
        st, body = https(cas.addr, "GET", "/v1/owner", cert=cert)
        if st == 200:
            assert json.loads(body)["cas_key_hash"] == key_hash
            assert "CAS is provisioned" in log and "provisioning token" not in log
            if p.returncode == 0:
                outcomes["provisioned, CLI saw it"] += 1
                assert json.loads(cli.run("owner", "show", check=True).stdout)["config"]["api_identity"]
            else:
                outcomes["provisioned, answer lost"] += 1
            # the token is spent
            r = cli.provision(cas, toml, "--identity", str(key), token=token, key_hash=key_hash, check=False)
            assert r.returncode == 1 and "token is not valid" in r.stderr
        else:
            assert st == 409 and json.loads(body)["error"]["code"] == "not_provisioned", (st, body)
            assert p.returncode != 0, f"round {i}: the CLI reported success but the provisioning was lost:\n{out}"
            outcomes["not provisioned"] += 1
            assert cas.token() == token, "the provisioning token changed across the kill"
            cli.provision(cas, toml, "--identity", str(key), token=token, key_hash=key_hash)
            wait_for(lambda: "TLS certificate renewed with the owner's names" in cas.log()[mark:])
            assert json.loads(cli.run("owner", "show", check=True).stdout)["key_hash"] == \
                json.loads(https(cas.addr, "GET", "/v1/owner", cert=cert)[1])["key_hash"]
        cas.stop()
    print(f"provisioning kill outcomes (uninterrupted provisioning: {prov_s * 1000:.0f} ms): {outcomes} "
          f"(seed {SEED})")
    assert outcomes["provisioned, answer lost"] + outcomes["not provisioned"] > 0, \
        f"no kill interrupted a provisioning: {outcomes}"
