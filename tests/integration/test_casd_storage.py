# SPDX-License-Identifier: Apache-2.0
"""casd's files: a key-store is bound to its database (an emptied or missing database is never
replaced under the old key), damaged or full storage ends with an error naming the file and the cause
and leaves the files as they were, arguments are checked before anything touches the disk. Real lasd
and casd processes on loopback; a real tmpfs for the full file system."""
import hashlib
import json
import os
import shutil
import signal
import subprocess

import pytest

from harness import CasNode, binary, provision_owner, wait_for


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None


def files_of(cas):
    return {p: digest(p) for p in (cas.db + ".key-store", os.path.join(cas.db, "data.mdb"))}


@pytest.fixture
def owned(tmp_path, nodes):
    """A provisioned CAS holding a secret, stopped."""
    n1 = nodes("n1").start()
    cas = CasNode(n1, "127.0.0.2", db=str(tmp_path / "pv" / "cas-db")).start()
    owner = provision_owner(cas, tmp_path)
    owner.run("secret", "put", "db-password", input="s3cret", check=True)
    cas.stop()
    yield cas, owner
    cas.stop()


def refused(cas, *needles):
    mark = len(cas.log())
    rc = cas.start(expect_fail=True)
    log = cas.log()[mark:]
    assert rc == 1, (rc, log)
    for n in needles:
        assert n in log, (n, log)
    assert "CAS provisioning token" not in log and "CAS key hash" not in log, log
    return log


@pytest.mark.parametrize("how", ["truncate", "delete", "delete-dir"])
def test_emptied_database_is_not_recreated_under_the_old_key(owned, how):
    """The attack: empty the database and restart; a new CAS under the old key would log a token
    whoever reads the log could use. casd refuses, names the key-store, and changes nothing."""
    cas, owner = owned
    mdb = os.path.join(cas.db, "data.mdb")
    ks_before = digest(cas.db + ".key-store")
    backup = cas.db + ".saved"
    shutil.copytree(cas.db, backup)
    if how == "truncate":
        open(mdb, "w").close()
    elif how == "delete":
        os.unlink(mdb)
    else:
        shutil.rmtree(cas.db)
    refused(cas, "is missing or empty, but its key-store", cas.db + ".key-store",
            "refusing to create a new database under an existing key")
    assert digest(cas.db + ".key-store") == ks_before
    assert not os.path.exists(mdb) or os.path.getsize(mdb) == 0
    # restoring the database brings everything back
    shutil.rmtree(cas.db, ignore_errors=True)
    shutil.copytree(backup, cas.db)
    cas.start()
    assert owner.run("secret", "get", "db-password", check=True).stdout == "s3cret\n"


def test_keystore_of_another_database_is_refused(owned, tmp_path):
    cas, _ = owned
    other = CasNode(cas.las, "127.0.0.3", db=str(tmp_path / "other-db")).start()
    other.stop()
    ids = [json.load(open(d + ".key-store"))["database_id"] for d in (cas.db, other.db)]
    shutil.copy(other.db + ".key-store", cas.db + ".key-store")
    before = files_of(cas)
    log = refused(cas, "do not belong together", ids[1], cas.db)
    assert files_of(cas) == before, log


def test_database_without_keystore_is_refused(owned):
    cas, _ = owned
    os.rename(cas.db + ".key-store", cas.db + ".ks-away")
    before = digest(os.path.join(cas.db, "data.mdb"))
    refused(cas, "exists but its key-store", "is missing")
    assert digest(os.path.join(cas.db, "data.mdb")) == before and not os.path.exists(cas.db + ".key-store")


@pytest.mark.parametrize("size", [8192, 9000, 12288])
def test_truncated_database_names_the_damage(owned, size):
    cas, _ = owned
    mdb = os.path.join(cas.db, "data.mdb")
    assert os.path.getsize(mdb) > size
    os.truncate(mdb, size)
    before = files_of(cas)
    refused(cas, mdb, "damaged database file")
    assert files_of(cas) == before


def test_flipped_byte_in_a_record_names_the_damage(owned):
    cas, _ = owned
    mdb = os.path.join(cas.db, "data.mdb")
    data = bytearray(open(mdb, "rb").read())
    # the meta record's ciphertext: it authenticates the key and the database's identity
    pos = data.find(b"\0custos-db-meta" + b"CDBM\x02")
    assert pos > 0
    while pos > 0:  # the live copy and stale copies in freed pages
        data[pos + 15 + 60] ^= 1
        pos = data.find(b"\0custos-db-meta" + b"CDBM\x02", pos + 1)
    open(mdb, "wb").write(data)
    before = files_of(cas)
    refused(cas, "does not open", cas.db)
    assert files_of(cas) == before


@pytest.mark.parametrize("kib", [4, 24, 32])
def test_full_file_system_names_the_cause(nodes, tmp_path, kib):
    """A new database on a small real tmpfs: an error naming the file and 'disk full', no signal."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        n1 = nodes("n1").start()
        cas = CasNode(n1, "127.0.0.2", db=str(mnt / "db"))
        rc = cas.start(expect_fail=True)
        log = cas.log()
        assert rc == 1, (rc, log)  # not killed by a signal
        assert "disk full" in log and str(mnt) in log, log
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.mark.parametrize("args,needle", [
    (["--listen", ":0"], "--listen ':0' is not IPV4-ADDRESS:PORT"),
    (["--listen", ":99999"], "--listen ':99999'"),
    (["--listen", "abc"], "--listen 'abc'"),
    (["--listen", "[::1]:8081"], "IPv6 is not supported"),
    (["--node-name", "my node"], "--node-name 'my node' is not a node name"),
    (["--node-name", "a" * 300], "is not a node name: 1..253 characters"),
    (["--db", ""], "--db '' is not a database directory path"),
    (["--db", "/dev/null"], "--db '/dev/null' exists and is not a directory"),
    (["--las", "172.17.0.1"], "Custos's lasd listens on a Unix socket"),
])
def test_arguments_checked_before_the_disk(tmp_path, args, needle):
    db = tmp_path / "d" / "db"
    full = [binary("casd"), "--db", str(db), "--las", str(tmp_path / "none.sock"), "--listen", "127.0.0.1:1"] + args
    r = subprocess.run(full, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert not (tmp_path / "d").exists() and not os.path.exists("/dev/null.key-store")


def test_default_db_parent_is_created(nodes, tmp_path):
    n1 = nodes("n1").start()
    cas = CasNode(n1, "127.0.0.2", db=str(tmp_path / "a" / "b" / "db")).start()
    assert os.path.exists(cas.db + ".key-store")
    assert os.stat(tmp_path / "a" / "b").st_mode & 0o777 == 0o700
    cas.stop()


@pytest.mark.parametrize("change", ["mode", "owner"])
def test_keystore_accessible_to_others_is_refused(owned, change):
    cas, _ = owned
    ks = cas.db + ".key-store"
    if change == "mode":
        os.chmod(ks, 0o644)
        refused(cas, ks, "accessible to other users", "mode 644")
    else:
        os.chown(ks, 65534, 65534)
        refused(cas, ks, "owned by another user", "uid 65534")


def test_sighup_is_logged_and_casd_carries_on(owned):
    cas, owner = owned
    cas.start()
    cas.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP received" in cas.log(), what="the SIGHUP log line")
    assert cas.proc.poll() is None
    assert owner.run("secret", "get", "db-password", check=True).stdout == "s3cret\n"
