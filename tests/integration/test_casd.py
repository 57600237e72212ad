# SPDX-License-Identifier: Apache-2.0
"""casd + cas against real lasd/casd processes on simulated nodes (platform dir + 127.0.0.x)."""
import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

from harness import OWNER_TOML, CasNode, Cli, binary, https, rsa_identity, run, wait_for

QUICKSTART_FLAGS = ["-GCS", "--only_for_testing-debug", "--only_for_testing-ignore-signer",
                    "--only_for_testing-trust-any"]
REFUSED = "provisioning refused: the token is not valid (it is single-use)"


def owner_toml(tmp_path, ip):
    p = tmp_path / "owner-config" / "config.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(OWNER_TOML.format(ip=ip))
    return p


@pytest.fixture
def provisioned(tmp_path, cas_nodes):
    """A CAS on node n1 provisioned by an owner CLI; returns (cas, owner cli)."""
    cas = cas_nodes("n1", "127.0.0.2").start()
    owner = Cli(tmp_path / "owner" / "config.json")
    owner.provision(cas, owner_toml(tmp_path, cas.ip))
    return cas, owner


def test_quickstart_provisioning_as_written(tmp_path, cas_nodes):
    cas = cas_nodes("n1", "127.0.0.2").start()
    key = rsa_identity(str(tmp_path))
    cfg = tmp_path / "identity" / "config.json"
    # the quick start: key hash and token from the log with grep | awk '{ print $7 }'
    key_hash, token = cas.key_hash(), cas.token()
    assert len(key_hash) == 64 and len(token) == 64
    r = Cli(cfg).run("provision", cas.addr, "-c", key_hash, "--token", token, "--config-file",
                     str(owner_toml(tmp_path, cas.ip)), "--identity", key, "with-attestation",
                     *QUICKSTART_FLAGS)
    assert r.returncode == 0, r.stderr
    assert f"CAS {cas.ip} at https://{cas.addr}/ is trustworthy" in r.stdout
    assert "You are now the owner of the CAS." in r.stdout
    assert "section [dcap] is not used by this platform" in r.stdout
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    conf = json.loads(cfg.read_text())
    rec = conf["cas"]["mycas"]
    assert rec["key_hash"] == key_hash and rec["owner"] is True and rec["url"] == f"https://{cas.addr}"
    assert rec["evidence"]["platform_id"] == cas.las.platform_id()
    assert rec["evidence"]["measurement"] == hashlib.sha256(open(binary("casd"), "rb").read()).hexdigest()
    # the owner identity is the imported RSA key
    pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], capture_output=True,
                         check=True).stdout
    owner_hash = hashlib.sha256(pub).hexdigest()
    show = json.loads(Cli(cfg).run("owner", "show", check=True).stdout)
    assert show["key_hash"] == owner_hash
    assert show["config"]["api_identity"]["common_name"] == "mycas"
    assert show["ignored_sections"] == ["dcap"]
    assert f"CAS provisioned; owner identity {owner_hash}" in cas.log()


def test_certificate_carries_owner_names_after_provisioning(provisioned):
    cas, _ = provisioned
    wait_for(lambda: "TLS certificate renewed with the owner's names" in cas.log())
    out = subprocess.run(f"echo | openssl s_client -connect {cas.addr} 2>/dev/null | openssl x509 -noout -text",
                         shell=True, capture_output=True, text=True).stdout
    assert "CN = mycas" in out and "DNS:cas.default" in out and f"IP Address:{cas.ip}" in out


def test_restart_keeps_data_and_ownership(provisioned):
    cas, owner = provisioned
    owner.run("secret", "put", "db-password", input="correct horse", check=True)
    key_hash = cas.key_hash()
    cas.stop()
    before = len(cas.log())
    cas.start()
    assert cas.key_hash() == key_hash
    after = cas.log()[before:]
    assert "provisioning token" not in after and "CAS is provisioned" in after
    assert owner.run("secret", "get", "db-password", check=True).stdout == "correct horse\n"
    assert json.loads(owner.run("owner", "show", check=True).stdout)["config"]["api_identity"]


def test_second_provisioning_refused(provisioned, tmp_path):
    cas, owner = provisioned
    token = cas.token()  # the (now used) token from the first start's log
    r = owner.provision(cas, owner_toml(tmp_path, cas.ip), token=token, check=False)
    assert r.returncode == 1 and REFUSED in r.stderr
    other = Cli(tmp_path / "other" / "config.json")
    r = other.provision(cas, owner_toml(tmp_path, cas.ip), token=token, check=False)
    assert r.returncode == 1 and REFUSED in r.stderr
    # ownership unchanged
    assert owner.run("owner", "show").returncode == 0


def test_wrong_token_refused_like_provisioned(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    cli = Cli(tmp_path / "c" / "config.json")
    r = cli.provision(cas, owner_toml(tmp_path, cas.ip), token="00" * 32, check=False)
    # the same answer as for an already provisioned CAS: nothing more is revealed
    assert r.returncode == 1 and REFUSED in r.stderr
    assert "provisioned; owner" not in cas.log()
    cli.provision(cas, owner_toml(tmp_path, cas.ip))  # the right token still works once


def test_non_owner_is_forbidden(provisioned, tmp_path):
    cas, owner = provisioned
    owner.run("secret", "put", "k", input="v", check=True)
    other = Cli(tmp_path / "other" / "config.json")
    r = other.run("attest", cas.addr, "--only_for_testing-ignore-signer", "--only_for_testing-trust-any")
    assert r.returncode == 0, r.stderr
    for args in (["owner", "show"], ["secret", "get", "k"]):
        r = other.run(*args)
        assert r.returncode == 1 and "status 403" in r.stderr and "only the CAS owner" in r.stderr, r.stderr
    r = other.run("secret", "put", "k", input="evil")
    assert r.returncode == 1 and "status 403" in r.stderr
    assert owner.run("secret", "get", "k", check=True).stdout == "v\n"
    # without any client certificate: 401
    st, body = https(cas.addr, "GET", "/v1/owner")
    assert st == 401 and json.loads(body)["error"]["code"] == "no_client_certificate"


def test_database_copied_to_another_node_refuses_to_start(provisioned, cas_nodes):
    cas, _ = provisioned
    cas.stop()
    n2 = cas_nodes("n2", "127.0.0.3")
    shutil.copytree(cas.db, n2.db)
    shutil.copy(cas.db + ".key-store", n2.db + ".key-store")
    ks_before = open(n2.db + ".key-store", "rb").read()
    assert n2.start(expect_fail=True) != 0
    log = n2.log()
    assert f"this CAS runs on platform {n2.las.platform_id()}" in log
    assert f"registered platforms: {cas.las.platform_id()} (sim, node n1)" in log
    assert "Register a backup for this node first" in log
    assert open(n2.db + ".key-store", "rb").read() == ks_before


def test_corrupt_key_store_refused_and_left_alone(provisioned):
    cas, _ = provisioned
    cas.stop()
    ks = cas.db + ".key-store"
    data = open(ks, "rb").read()
    # each refusal is asserted by text only that refusal prints (the key-store's path is logged anyway)
    tcb_edited = data.replace(b'"tcb": 1', b'"tcb": 2')
    assert tcb_edited != data
    for bad, refusal in ((data[: len(data) // 2], "corrupt key-store: not JSON"),
                         (b"", "corrupt key-store: not JSON"),
                         (tcb_edited, "does not open with this CAS's seal key")):
        open(ks, "wb").write(bad)
        mark = len(cas.log())
        assert cas.start(expect_fail=True) == 1
        log = cas.log()[mark:]
        assert refusal in log and "CAS listening" not in log, log
        assert open(ks, "rb").read() == bad
    open(ks, "wb").write(data)
    cas.start()


def test_missing_key_store_with_existing_database_refused(provisioned):
    cas, _ = provisioned
    cas.stop()
    os.rename(cas.db + ".key-store", cas.db + ".saved")
    assert cas.start(expect_fail=True) != 0
    assert "exists but its key-store" in cas.log() and "refusing to create a new database key" in cas.log()
    assert not os.path.exists(cas.db + ".key-store")


def test_provision_stops_on_wrong_key_hash(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    cli = Cli(tmp_path / "c" / "config.json")
    r = cli.provision(cas, owner_toml(tmp_path, cas.ip), key_hash="ab" * 32, check=False)
    assert r.returncode == 1 and "does not hold the expected CAS key" in r.stderr
    assert "provisioned" not in cas.log().split("CAS listening")[-1]
    cli.provision(cas, owner_toml(tmp_path, cas.ip))


def test_provision_refuses_bad_trust(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    cli = Cli(tmp_path / "c" / "config.json")
    base = ["provision", cas.addr, "-c", cas.key_hash(), "--token", cas.token(), "--config-file",
            str(owner_toml(tmp_path, cas.ip)), "with-attestation"]
    r = cli.run(*base, "--only_for_testing-ignore-signer")
    assert r.returncode == 1 and "unknown platform" in r.stderr and cas.las.platform_id() in r.stderr
    r = cli.run(*base, "--only_for_testing-trust-any")
    assert r.returncode == 1 and "no expected CAS measurement" in r.stderr
    r = cli.run(*base, "--platform", cas.las.platform_id(), "--measurement", "11" * 32)
    assert r.returncode == 1 and "measurement mismatch" in r.stderr and "11" * 32 in r.stderr
    casd_hash = hashlib.sha256(open(binary("casd"), "rb").read()).hexdigest()
    r = cli.run(*base, "--platform", cas.las.platform_id(), "--measurement", casd_hash)
    assert r.returncode == 0, r.stderr


def test_bad_toml_named_by_line_and_column(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    bad = tmp_path / "bad.toml"
    bad.write_text('[api_identity]\ncommon_name = "x\n')
    r = Cli(tmp_path / "c" / "config.json").provision(cas, bad, check=False)
    assert r.returncode == 1 and "line 2, column" in r.stderr, r.stderr
    # and the server checks it too (and the token stays valid)
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=t", "-days", "1"],
                   check=True, capture_output=True)
    st, body = https(cas.addr, "POST", "/v1/provision",
                     json.dumps({"token": cas.token(), "owner_config": "[api_identity]\ncommon_name = 3.5\n"}),
                     cert=(str(crt), str(key)))
    err = json.loads(body)["error"]["message"]
    assert st == 400 and "line 2, column 15" in err and "not supported" in err, err
    cfg = tmp_path / "nocn.toml"
    cfg.write_text("[api_identity]\nalt_names = [\"a\"]\n")
    r = Cli(tmp_path / "c" / "config.json").provision(cas, cfg, check=False)
    assert r.returncode == 1 and "common_name" in r.stderr


@pytest.mark.parametrize("body,status,msg", [
    (b"{bad", 400, "invalid JSON at line 1, column"),
    (b"[]", 400, "must be a JSON object"),
    (b'{"token": "x"}', 400, "owner_config"),
    (b'{"token": 1, "owner_config": ""}', 400, "Expected string"),
    (b'{"token": "x", "owner_config": "", "extra": 1}', 400, "extra"),
    (b"", 400, "request body is empty"),
    (b'{"a": "' + b"x" * (2 << 20) + b'"}', 413, "exceeds 1048576 bytes"),
], ids=["syntax", "array", "missing", "type", "unknown", "empty", "oversize"])
def test_bad_json_answered_with_the_problem(cas_nodes, body, status, msg):
    cas = cas_nodes("n1", "127.0.0.2").start()
    st, resp = https(cas.addr, "POST", "/v1/provision", body)
    err = json.loads(resp)["error"]
    assert st == status and msg in err["message"], (st, err)
    assert set(err) == {"code", "message"}


def test_unknown_endpoint_and_method(cas_nodes):
    cas = cas_nodes("n1", "127.0.0.2").start()
    st, resp = https(cas.addr, "GET", "/v1/nope")
    assert st == 404 and json.loads(resp)["error"]["code"] == "not_found"
    st, resp = https(cas.addr, "DELETE", "/v1/provision")
    assert st == 405


def test_attestation_binds_key_hash_and_nonce(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    for bad in ("", "?nonce=zz", "?nonce=00", "?nonce=" + "00" * 33):
        st, _ = https(cas.addr, "GET", "/v1/attestation" + bad)
        assert st == 400
    nonce = bytes(range(16))
    st, body = https(cas.addr, "GET", "/v1/attestation?nonce=" + nonce.hex())
    assert st == 200
    att = json.loads(body)
    assert att["key_hash"] == cas.key_hash() and att["provisioned"] is False
    rd = bytes.fromhex(cas.key_hash()) + hashlib.sha256(b"custos-attestation-v1" + nonce).digest()
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(att["quote"]))
    r = run([binary("cas"), "las", "verify", str(qf), "--platform", cas.las.platform_id(), "--report-data",
             rd.hex(), "--measurement", hashlib.sha256(open(binary("casd"), "rb").read()).hexdigest()])
    assert r.returncode == 0, r.stderr


def test_cli_config_refused_when_readable_by_others(provisioned):
    cas, owner = provisioned
    os.chmod(owner.config, 0o644)
    r = owner.run("owner", "show")
    assert r.returncode == 1 and "readable by others" in r.stderr and "chmod 600" in r.stderr
    os.chmod(owner.config, 0o600)
    assert owner.run("owner", "show").returncode == 0


@pytest.mark.parametrize("keygen,ok", [
    (["openssl", "genpkey", "-algorithm", "ed25519"], True),
    (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], True),
    (["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], False),
    (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"], False),
])
def test_identity_import_key_types(cas_nodes, tmp_path, keygen, ok):
    cas = cas_nodes("n1", "127.0.0.2").start()
    key = tmp_path / "key.pem"
    subprocess.run(keygen + ["-out", str(key)], check=True, capture_output=True)
    r = Cli(tmp_path / "c" / "config.json").run(
        "provision", cas.addr, "-c", cas.key_hash(), "--token", cas.token(), "--config-file",
        str(owner_toml(tmp_path, cas.ip)), "--identity", str(key), "with-attestation", *QUICKSTART_FLAGS)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 1 and "unsupported identity key" in r.stderr


def test_help_everywhere():
    for args in (["casd", "--help"], ["lasd", "--help"], ["cas", "--help"], ["cas", "provision", "--help"],
                 ["cas", "attest", "--help"], ["cas", "owner", "show", "--help"], ["cas", "secret", "put", "--help"]):
        r = run([binary(args[0])] + args[1:])
        assert r.returncode == 0 and ("Usage" in r.stdout), args
    r = run([binary("casd"), "--listen", "nonsense", "--db", "/nonexistent/x", "--las", "/nonexistent"])
    assert r.returncode != 0


def test_identity_saved_before_provisioning_is_sent(cas_nodes, tmp_path):
    """If CAS records the owner and the answer is lost, the owner key must still exist: a new
    identity is written to the CLI configuration before anything is sent."""
    cas = cas_nodes("n1", "127.0.0.2").start()
    cfg = tmp_path / "c" / "config.json"
    cli = Cli(cfg)
    r = cli.provision(cas, owner_toml(tmp_path, cas.ip), token="00" * 32, check=False)
    assert r.returncode == 1
    ident = json.loads(cfg.read_text())["identity"]
    assert "PRIVATE KEY" in ident["private_key"] and stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    cli.provision(cas, owner_toml(tmp_path, cas.ip))
    assert json.loads(cfg.read_text())["identity"] == ident  # the same identity became the owner


def test_second_casd_on_the_same_database_refused(cas_nodes):
    cas = cas_nodes("n1", "127.0.0.2").start()
    twin = CasNode(cas.las, "127.0.0.3", db=cas.db)
    twin.log_path = cas.log_path + ".twin"
    assert twin.start(expect_fail=True) != 0
    assert "is in use by another casd" in twin.log()
    cas.stop()
    twin.start()  # the lock goes with the process
    twin.stop()


def test_import_never_replaces_another_identity(provisioned, tmp_path):
    cas, owner = provisioned
    before = json.loads(open(owner.config).read())["identity"]
    key = rsa_identity(str(tmp_path))
    r = owner.run("provision", cas.addr, "-c", cas.key_hash(), "--token", "00" * 32, "--config-file",
                  str(owner_toml(tmp_path, cas.ip)), "--identity", key, "with-attestation", *QUICKSTART_FLAGS)
    assert r.returncode == 1 and "already holds another identity" in r.stderr, r.stderr
    assert json.loads(open(owner.config).read())["identity"] == before
    assert owner.run("owner", "show").returncode == 0


def test_token_from_file(cas_nodes, tmp_path):
    cas = cas_nodes("n1", "127.0.0.2").start()
    tf = tmp_path / "token"
    tf.write_text(cas.token() + "\n")
    r = Cli(tmp_path / "c" / "config.json").run(
        "provision", cas.addr, "-c", cas.key_hash(), "--token-file", str(tf), "--config-file",
        str(owner_toml(tmp_path, cas.ip)), "with-attestation", *QUICKSTART_FLAGS)
    assert r.returncode == 0, r.stderr
    r = Cli(tmp_path / "d" / "config.json").run(
        "provision", cas.addr, "-c", cas.key_hash(), "--token", "x", "--token-file", str(tf), "--config-file",
        str(owner_toml(tmp_path, cas.ip)), "with-attestation", *QUICKSTART_FLAGS)
    assert r.returncode == 2 and "one of --token TOKEN or --token-file FILE" in r.stderr
