# SPDX-License-Identifier: Apache-2.0
"""Least privilege for backup registration: a registrar identity that the owner allowed registers
real backups and lists them, and nothing else; its registrations still pass the owner's backup
policy; denying it takes effect at once. cas owner make-registrar writes its CLI configuration."""
import hashlib
import json
import os
import re
import stat
import subprocess

import pytest

from harness import OWNER_TOML, BackupCas, CasNode, Cli, stop_all

ONLY = "is a registrar: it may only register backups and list them"


@pytest.fixture
def w(tmp_path, nodes):
    """CAS on n1, provisioned for backups on n1 and n2 only (n3's platform is not allowed)."""
    w = {"tmp": tmp_path, "started": []}
    for name in ("n1", "n2", "n3"):
        w[name] = nodes(name).start()
    cas = CasNode(w["n1"], "127.0.0.2")
    w["started"].append(cas)
    w["cas"] = cas.start()
    w["owner"] = Cli(tmp_path / "owner" / "config")
    toml = tmp_path / "owner.toml"
    toml.write_text(OWNER_TOML.format(ip=cas.ip))
    w["owner"].run("provision", cas.addr, "-c", cas.key_hash(), "--token", cas.token(), "--config-file", str(toml),
                   "with-attestation", "--only_for_testing-ignore-signer", "--platform", w["n1"].platform_id(),
                   "--platform", w["n2"].platform_id(), check=True)
    yield w
    stop_all(w["started"])


def backup(w, node, ip, registers=True):
    b = BackupCas(w[node], ip)
    if not registers:
        b.expect_no_registration()
    w["started"].append(b)
    return b.start()


def cert_key_hash(pem):
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem.encode(), capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    return hashlib.sha256(der).hexdigest()


def registrars(w):
    show = json.loads(w["owner"].run("owner", "show", check=True).stdout)
    return [r["key_hash"] for r in show["registrars"]]


def make_registrar(w, name="reg"):
    out = w["tmp"] / name / "config"
    r = w["owner"].run("owner", "make-registrar", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_make_registrar_writes_a_least_privilege_configuration(w):
    out, r = make_registrar(w)
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    cfg = json.load(open(out))
    owner_cfg = json.load(open(w["owner"].config))
    # its own identity, never the owner's; the owner's CAS pinned and the default
    assert cfg["identity"]["private_key"] != owner_cfg["identity"]["private_key"]
    assert owner_cfg["identity"]["private_key"] not in open(out).read()
    reg_hash = cert_key_hash(cfg["identity"]["certificate"])
    assert reg_hash != cert_key_hash(owner_cfg["identity"]["certificate"])
    assert cfg["default_cas"] == "mycas" and set(cfg["cas"]) == {"mycas"}
    assert cfg["cas"]["mycas"]["url"] == f"https://{w['cas'].addr}"
    assert cfg["cas"]["mycas"]["key_hash"] == w["cas"].key_hash()
    assert cfg["cas"]["mycas"]["owner"] is False
    assert f"registrar {reg_hash} allowed on CAS 'mycas'" in r.stdout
    assert registrars(w) == [reg_hash]
    # never over an existing file (it may hold an identity); nothing allowed then
    before = open(out).read()
    r = w["owner"].run("owner", "make-registrar", "--out", str(out))
    assert r.returncode == 1 and "exists; it is not replaced" in r.stderr
    assert open(out).read() == before and registrars(w) == [reg_hash]
    r = w["owner"].run("owner", "make-registrar")
    assert r.returncode == 2 and "--out FILE is required" in r.stderr
    # the registrar survives a restart of CAS (read from its database at start)
    w["cas"].stop()
    w["cas"].start()
    assert registrars(w) == [reg_hash]
    assert Cli(out).run("backups", "list", check=True).returncode == 0


def test_registrar_registers_lists_and_nothing_else(w):
    out, _ = make_registrar(w)
    reg = Cli(out)
    # a real backup registration, with the output lines the controller parses
    b = backup(w, "n2", "127.0.0.9")
    r = reg.run("register-backup", b.addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Backup CAS registered\n"
    assert re.fullmatch(r"node n2, platform 0[23][0-9A-F]{64}, TCB \d+\n", r.stderr), r.stderr
    assert b.wait_exit() == 0
    listed = json.loads(reg.run("backups", "list", "--json", check=True).stdout)
    assert {x["node"] for x in listed} == {"n1", "n2"}
    assert "n2" in reg.run("backups", "list", check=True).stdout
    assert reg.run("backups", "check", "--nodes", "n2", check=True).returncode == 0
    # its registrations pass the owner's backup policy: n3's platform is not allowed
    b3 = backup(w, "n3", "127.0.0.10", registers=False)
    r = reg.run("register-backup", b3.addr)
    assert r.returncode == 1 and "status 403" in r.stderr and "unknown platform" in r.stderr, r.stderr
    # everything else: refused, saying what a registrar may do
    n2_id = w["n2"].platform_id()
    refused = [("secret", "put", "x"), ("secret", "get", "x"), ("backups", "remove", n2_id), ("owner", "show"),
               ("owner", "allow-measurement", "00" * 32), ("owner", "allow-platform", w["n3"].platform_id()),
               ("owner", "allow-registrar", "ab" * 32), ("owner", "deny-registrar", "ab" * 32),
               ("owner", "make-registrar", "--out", str(w["tmp"] / "reg2" / "config"))]
    for args in refused:
        r = reg.run(*args, input="v")
        assert r.returncode == 1, (args, r.stderr)
        assert "status 403" in r.stderr and ONLY in r.stderr, (args, r.stderr)
    # nothing changed: n2 still registered, n3 not allowed, one registrar
    listed = json.loads(w["owner"].run("backups", "list", "--json", check=True).stdout)
    assert {x["node"] for x in listed} == {"n1", "n2"}
    assert len(registrars(w)) == 1
    assert w["owner"].run("secret", "get", "x").returncode == 1  # never stored


def test_deny_registrar_revokes_at_once(w):
    out, _ = make_registrar(w)
    reg = Cli(out)
    assert reg.run("backups", "list", check=True).returncode == 0
    # denied by its identity file (its CLI configuration): the next request is refused
    r = w["owner"].run("owner", "deny-registrar", str(out), check=True)
    reg_hash = cert_key_hash(json.load(open(out))["identity"]["certificate"])
    assert r.stdout == f"registrar {reg_hash} denied\n"
    assert registrars(w) == []
    r = reg.run("backups", "list")
    assert r.returncode == 1 and "only the CAS owner may do this" in r.stderr and ONLY not in r.stderr
    b = backup(w, "n2", "127.0.0.9", registers=False)
    r = reg.run("register-backup", b.addr)
    assert r.returncode == 1 and "status 403" in r.stderr
    listed = json.loads(w["owner"].run("backups", "list", "--json", check=True).stdout)
    assert {x["node"] for x in listed} == {"n1"}
    # denying it again: named
    r = w["owner"].run("owner", "deny-registrar", reg_hash)
    assert r.returncode == 1 and "is not a registrar of this CAS" in r.stderr


def test_allow_registrar_by_hash_certificate_or_key(w, tmp_path):
    # an identity made with openssl, in a CLI configuration of its own beside the owner's CAS entry
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=ci", "-days", "1"],
                   check=True, capture_output=True)
    owner_cfg = json.load(open(w["owner"].config))
    other = Cli(tmp_path / "other" / "config")
    os.makedirs(tmp_path / "other")
    with open(other.config, "w") as f:
        json.dump({"version": 1, "identity": {"private_key": open(key).read(), "certificate": open(cert).read()},
                   "cas": owner_cfg["cas"], "default_cas": "mycas"}, f)
    os.chmod(other.config, 0o600)
    r = other.run("backups", "list")
    assert r.returncode == 1 and "only the CAS owner may do this" in r.stderr
    h = cert_key_hash(open(cert).read())
    for arg, shown in ((cert, "allowed"), (key, "was already allowed"), (h.upper(), "was already allowed")):
        r = w["owner"].run("owner", "allow-registrar", arg)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"registrar {h} {shown}\n"
    assert registrars(w) == [h]
    assert other.run("backups", "list").returncode == 0
    r = w["owner"].run("owner", "deny-registrar", str(key), check=True)
    assert registrars(w) == []
    # input errors, named
    r = w["owner"].run("owner", "allow-registrar", "nothex")
    assert r.returncode == 2
    assert "'nothex' is not a key hash (64 hex digits), and as a file it cannot be read" in r.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    r = w["owner"].run("owner", "allow-registrar", str(junk))
    assert r.returncode == 2 and "holds no certificate, private key or CLI configuration" in r.stderr
    r = w["owner"].run("owner", "allow-registrar", str(w["tmp"] / "owner.toml"))
    assert r.returncode == 2 and "holds no certificate" in r.stderr
    # the owner's own identity cannot be a registrar
    r = w["owner"].run("owner", "allow-registrar", w["owner"].config)
    assert r.returncode == 1 and "is the owner's own identity" in r.stderr
