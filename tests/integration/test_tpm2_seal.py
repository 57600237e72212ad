# SPDX-License-Identifier: Apache-2.0
"""Integration tests of platform/tpm2_seal.c against real swtpm TPM 2.0 simulators.

Needs TPM2_SEAL_TOOL=/path/to/tpm2_seal_tool (built from tests/tpm2_seal_tool.c) and swtpm.
Run: TPM2_SEAL_TOOL=... /usr/bin/python3 -m pytest tests/integration/test_tpm2_seal.py
"""
import atexit
import hashlib
import os
import random
import shutil
import socket
import stat
import struct
import subprocess
import time

import pytest

from harness import BUILD, Swtpm

BLOB = "machine-secret.tpm2"
MAGIC = b"CTPM2v1\n"
DIFFERENT_TPM = "was sealed by a different TPM (or the TPM was cleared)"

@pytest.fixture(scope="session")
def tool():
    path = os.environ.get("TPM2_SEAL_TOOL") or os.path.join(BUILD, "tests", "tpm2_seal_tool")
    if not path:
        pytest.fail("TPM2_SEAL_TOOL is not set: build tests/tpm2_seal_tool.c and set "
                    "TPM2_SEAL_TOOL=/path/to/tpm2_seal_tool")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"TPM2_SEAL_TOOL={path} is not an executable file")
    if shutil.which("swtpm") is None:
        pytest.fail("swtpm is not installed (package swtpm)")
    return path




def run(tool, pdir, tcti, umask=None):
    kw = {} if umask is None else {"umask": umask}
    return subprocess.run([tool, str(pdir), tcti], capture_output=True, text=True,
                          timeout=120, **kw)


def secret_hash(tool, pdir, tcti, **kw):
    r = run(tool, pdir, tcti, **kw)
    assert r.returncode == 0, f"tool failed: rc={r.returncode} stderr={r.stderr}"
    h = r.stdout.strip()
    assert len(h) == 64 and all(c in "0123456789abcdef" for c in h), r.stdout
    return h


def refused(tool, pdir, tcti, *expect):
    """Runs the tool, requires failure mentioning each expected string; the blob is unchanged."""
    blob = os.path.join(str(pdir), BLOB)
    before = open(blob, "rb").read() if os.path.lexists(blob) else None
    r = run(tool, pdir, tcti)
    assert r.returncode == 1, f"expected failure, got rc={r.returncode} out={r.stdout}"
    assert r.stdout == "", "nothing may be printed on stdout on failure"
    for e in expect:
        assert e in r.stderr, f"{e!r} not in stderr: {r.stderr}"
    after = open(blob, "rb").read() if os.path.lexists(blob) else None
    assert after == before, "the blob file must never be modified or replaced"
    assert sorted(os.listdir(pdir)) == [BLOB], f"stray files: {os.listdir(pdir)}"
    return r.stderr


def pdir_new(tmp_path, name):
    d = tmp_path / name
    d.mkdir(mode=0o700)
    return d


def parse_blob(data):
    """Offsets of the blob parts (format documented in platform/tpm2_seal.c)."""
    assert data.startswith(MAGIC)
    off = len(MAGIC) + 1
    (nlen,) = struct.unpack_from(">H", data, off)
    off += 2 + nlen
    (publen,) = struct.unpack_from(">I", data, off)
    pub = off + 4
    off = pub + publen
    (privlen,) = struct.unpack_from(">I", data, off)
    priv = off + 4
    off = priv + privlen
    assert off + 32 == len(data)
    assert hashlib.sha256(data[:off]).digest() == data[off:]
    return {"pub": (pub, publen), "priv": (priv, privlen), "body": off}


# ---- tests ----------------------------------------------------------------------------------


def test_same_tpm_same_hash_across_runs_and_restarts(tool, swtpms, tmp_path):
    a = swtpms("a")
    pd = pdir_new(tmp_path, "pd")
    h1 = secret_hash(tool, pd, a.tcti)
    assert secret_hash(tool, pd, a.tcti) == h1
    assert secret_hash(tool, pd, a.tcti) == h1
    blob = (pd / BLOB).read_bytes()
    assert blob.startswith(MAGIC)
    parse_blob(blob)

    a.restart()  # same state dir, new process (and port)
    assert secret_hash(tool, pd, a.tcti) == h1
    a.restart()
    assert secret_hash(tool, pd, a.tcti) == h1
    assert (pd / BLOB).read_bytes() == blob, "a successful unseal must not rewrite the blob"
    assert sorted(os.listdir(pd)) == [BLOB]

    # The secret is random, not derived from the TPM: a fresh platform dir on the same TPM
    # gets a new one.
    pd2 = pdir_new(tmp_path, "pd2")
    assert secret_hash(tool, pd2, a.tcti) != h1


def test_blob_file_is_0600(tool, swtpms, tmp_path):
    a = swtpms("a")
    pd = pdir_new(tmp_path, "pd")
    secret_hash(tool, pd, a.tcti, umask=0)  # even with a permissive umask
    st = os.lstat(pd / BLOB)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert sorted(os.listdir(pd)) == [BLOB], "no temporary file may be left behind"


def test_different_tpm_gives_different_hash(tool, swtpms, tmp_path):
    a, b = swtpms("a"), swtpms("b")
    ha = secret_hash(tool, pdir_new(tmp_path, "pa"), a.tcti)
    hb = secret_hash(tool, pdir_new(tmp_path, "pb"), b.tcti)
    assert ha != hb


def test_blob_from_other_tpm_is_refused(tool, swtpms, tmp_path):
    a, b = swtpms("a"), swtpms("b")
    pd = pdir_new(tmp_path, "pd")
    ha = secret_hash(tool, pd, a.tcti)
    msg = refused(tool, pd, b.tcti, DIFFERENT_TPM, str(pd / BLOB), b.tcti)
    assert "untouched" in msg
    # still fine with its own TPM
    assert secret_hash(tool, pd, a.tcti) == ha


def test_blob_after_tpm_clear_is_refused(tool, swtpms, tmp_path):
    if shutil.which("tpm2_clear") is None:
        pytest.fail("tpm2_clear (package tpm2-tools) is not installed")
    a = swtpms("a")
    pd = pdir_new(tmp_path, "pd")
    secret_hash(tool, pd, a.tcti)
    subprocess.run(["tpm2_clear", "-T", a.tcti], check=True, capture_output=True, timeout=60)
    refused(tool, pd, a.tcti, DIFFERENT_TPM)


@pytest.mark.parametrize("how", ["empty", "magic-only", "half", "minus-one", "bad-magic",
                                 "new-version", "flipped-byte", "trailing-garbage", "huge"])
def test_corrupt_blob_is_refused_and_not_overwritten(tool, swtpms, tmp_path, how):
    a = swtpms("a")
    pd = pdir_new(tmp_path, "pd")
    secret_hash(tool, pd, a.tcti)
    good = (pd / BLOB).read_bytes()
    bad = {
        "empty": b"",
        "magic-only": MAGIC,
        "half": good[: len(good) // 2],
        "minus-one": good[:-1],
        "bad-magic": b"X" + good[1:],
        "new-version": b"CTPM2v9\n" + good[8:],
        "flipped-byte": good[:40] + bytes([good[40] ^ 0x01]) + good[41:],
        "trailing-garbage": good + b"\0",
        "huge": good + os.urandom(1 << 20),
    }[how]
    (pd / BLOB).write_bytes(bad)
    os.chmod(pd / BLOB, 0o600)
    refused(tool, pd, a.tcti, "corrupt", str(pd / BLOB), "untouched")


@pytest.mark.parametrize("part", ["pub", "priv"])
def test_tampered_blob_with_valid_checksum_is_rejected_by_tpm(tool, swtpms, tmp_path, part):
    """A modified sealed object (checksum recomputed) must be refused, not overwritten."""
    a = swtpms("a")
    pd = pdir_new(tmp_path, "pd")
    secret_hash(tool, pd, a.tcti)
    good = bytearray((pd / BLOB).read_bytes())
    p = parse_blob(bytes(good))
    start, length = p[part]
    good[start + length - 1] ^= 0x80  # last byte: inside the encrypted/hashed data
    body = p["body"]
    good[body:] = hashlib.sha256(bytes(good[:body])).digest()
    (pd / BLOB).write_bytes(bytes(good))
    os.chmod(pd / BLOB, 0o600)
    refused(tool, pd, a.tcti, str(pd / BLOB))


def test_symlinked_blob_is_refused(tool, swtpms, tmp_path):
    a = swtpms("a")
    src = pdir_new(tmp_path, "src")
    secret_hash(tool, src, a.tcti)
    pd = pdir_new(tmp_path, "pd")
    os.symlink(src / BLOB, pd / BLOB)
    refused(tool, pd, a.tcti, "symbolic link")
    assert os.path.islink(pd / BLOB)


def test_unreachable_tpm_is_reported(tool, swtpms, tmp_path):
    a = swtpms("a")
    tcti = a.tcti
    a.stop()
    pd = pdir_new(tmp_path, "pd")
    r = run(tool, pd, tcti)
    assert r.returncode == 1
    assert tcti in r.stderr
    assert os.listdir(pd) == [], "nothing may be written when the TPM is unreachable"


def test_missing_platform_dir_is_reported(tool, swtpms, tmp_path):
    a = swtpms("a")
    missing = tmp_path / "does-not-exist"
    r = run(tool, missing, a.tcti)
    assert r.returncode == 1
    assert str(missing) in r.stderr and "platform directory" in r.stderr
    assert not missing.exists()
