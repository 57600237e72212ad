# SPDX-License-Identifier: Apache-2.0
"""CAS names in the CLI configuration, as the reference uses them: cas provision --name (default: the
owner configuration's common_name), default_cas, --cas NAME|ADDR and SCONE_CAS_ADDR (a name first,
then an address), ~/.cas/config with the earlier ~/.cas/config.json still read."""
import json
import os
import socket
import stat
import subprocess

import pytest

from harness import OWNER_TOML, Cli, binary, check_sanitizers

TRUST = ["--only_for_testing-ignore-signer", "--only_for_testing-trust-any"]


def toml(tmp_path, ip):
    p = tmp_path / "owner.toml"
    p.write_text(OWNER_TOML.format(ip=ip))  # common_name = "mycas"
    return p


def conf(cli):
    return json.load(open(cli.config))


def shown_cas(r):
    """The key hash of the CAS that answered cas owner show."""
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["cas_key_hash"]


@pytest.fixture
def two(tmp_path, cas_nodes):
    """Two CAS, both provisioned by one CLI: 'mycas' (the owner configuration's common_name, the
    default) and 'second' (--name)."""
    c1 = cas_nodes("n1", "127.0.0.2").start()
    c2 = cas_nodes("n2", "127.0.0.3")
    s = socket.socket()
    try:  # on the default port when it is free: an address without a port then names c2
        s.bind(("127.0.0.3", 8081))
        c2.port = 8081
    except OSError:
        pass
    finally:
        s.close()
    c2.start()
    cli = Cli(tmp_path / "cli" / "config")
    r = cli.provision(c1, toml(tmp_path, c1.ip))
    assert "CAS recorded as 'mycas' (the default CAS)" in r.stdout
    # the common_name names c1 already: refused before anything is sent (c2 stays unprovisioned)
    r = cli.provision(c2, toml(tmp_path, c2.ip), check=False)
    assert r.returncode == 1
    assert "already names another CAS 'mycas' (https://" + c1.addr + ")" in r.stderr
    assert "--name NAME" in r.stderr
    assert "You are now the owner" not in r.stdout
    r = cli.provision(c2, toml(tmp_path, c2.ip), "--name", "second")
    assert "CAS recorded as 'second' in" in r.stdout and "(the default CAS)" not in r.stdout
    return c1, c2, cli


def test_provision_names_and_default(two):
    c1, c2, cli = two
    cfg = conf(cli)
    assert cfg["default_cas"] == "mycas"  # the first one; a second provisioning does not move it
    assert set(cfg["cas"]) == {"mycas", "second"}
    assert cfg["cas"]["mycas"]["url"] == f"https://{c1.addr}" and cfg["cas"]["mycas"]["key_hash"] == c1.key_hash()
    assert cfg["cas"]["second"]["url"] == f"https://{c2.addr}" and cfg["cas"]["second"]["key_hash"] == c2.key_hash()
    assert cfg["cas"]["mycas"]["owner"] is True and cfg["cas"]["second"]["owner"] is True
    assert stat.S_IMODE(os.stat(cli.config).st_mode) == 0o600
    # without --cas: the default
    assert shown_cas(cli.run("owner", "show")) == c1.key_hash()
    # --cas by name and by address (host:port, URL)
    assert shown_cas(cli.run("owner", "show", "--cas", "second")) == c2.key_hash()
    assert shown_cas(cli.run("owner", "show", "--cas", c2.addr)) == c2.key_hash()
    assert shown_cas(cli.run("owner", "show", "--cas", f"https://{c2.addr}/")) == c2.key_hash()
    # every command that talks to a CAS takes it
    cli.run("secret", "put", "k", "--cas", "second", input="v2", check=True)
    assert cli.run("secret", "get", "k", "--cas", c2.addr, check=True).stdout == "v2\n"
    assert cli.run("secret", "get", "k", check=False).returncode == 1  # not on the default CAS
    r = cli.run("backups", "list", "--json", "--cas", "second", check=True)
    assert [b["node"] for b in json.loads(r.stdout)] == ["n2"]


def run_env(cli, *args, **env):
    e = dict(os.environ, SCONE_CLI_CONFIG=cli.config)
    e.pop("CAS_CLI_CONFIG", None)
    e.update(env)
    r = subprocess.run([binary("cas"), *args], capture_output=True, text=True, env=e, timeout=60)
    check_sanitizers(r.stderr, "cas")
    return r


def test_scone_cas_addr_by_name_and_by_address(two):
    c1, c2, cli = two
    assert shown_cas(run_env(cli, "owner", "show", SCONE_CAS_ADDR="second")) == c2.key_hash()
    assert shown_cas(run_env(cli, "owner", "show", SCONE_CAS_ADDR=c2.addr)) == c2.key_hash()
    assert shown_cas(run_env(cli, "owner", "show", SCONE_CAS_ADDR=c1.ip + ":" + str(c1.port))) == c1.key_hash()
    # --cas wins over the environment
    assert shown_cas(run_env(cli, "owner", "show", "--cas", "mycas", SCONE_CAS_ADDR="second")) == c1.key_hash()
    # a name is looked up before an address: "127.0.0.3" names c1, and addresses c2 (port 8081)
    cli.run("attest", c1.addr, "--name", "127.0.0.3", *TRUST, check=True)  # renames c1
    assert conf(cli)["default_cas"] == "127.0.0.3"
    assert shown_cas(run_env(cli, "owner", "show", SCONE_CAS_ADDR="127.0.0.3")) == c1.key_hash()
    assert c2.port == 8081, "127.0.0.3:8081 was taken"
    if c2.port == 8081:
        assert shown_cas(run_env(cli, "owner", "show", SCONE_CAS_ADDR="https://127.0.0.3")) == c2.key_hash()
    r = run_env(cli, "backups", "list", "--json", SCONE_CAS_ADDR="second")
    assert r.returncode == 0 and [b["node"] for b in json.loads(r.stdout)] == ["n2"]


def test_unknown_name_and_no_default(two):
    c1, c2, cli = two
    r = cli.run("owner", "show", "--cas", "nosuch")
    assert r.returncode == 1
    assert "CAS 'nosuch' is neither the name nor the address of a CAS in the CLI configuration" in r.stderr
    assert "known CAS: mycas, second" in r.stderr
    r = run_env(cli, "secret", "get", "x", SCONE_CAS_ADDR="127.0.0.9:1")
    assert r.returncode == 1 and "CAS '127.0.0.9:1' is neither" in r.stderr and "mycas, second" in r.stderr
    cfg = conf(cli)
    del cfg["default_cas"]
    with open(cli.config, "w") as f:
        json.dump(cfg, f)
    r = cli.run("owner", "show")
    assert r.returncode == 1
    assert "no default CAS in the CLI configuration: name one with --cas NAME|ADDR or SCONE_CAS_ADDR" in r.stderr
    assert "known CAS: mycas, second" in r.stderr
    assert shown_cas(cli.run("owner", "show", "--cas", "second")) == c2.key_hash()
    # a default that names no CAS: said so, with the known ones
    cfg["default_cas"] = "gone"
    with open(cli.config, "w") as f:
        json.dump(cfg, f)
    r = cli.run("owner", "show")
    assert r.returncode == 1 and "the default CAS 'gone' is not in the CLI configuration" in r.stderr
    assert "known CAS: mycas, second" in r.stderr
    # an empty configuration
    empty = Cli(c1.las.root + "/empty/config")
    r = empty.run("owner", "show")
    assert r.returncode == 1 and "known CAS: none: attest or provision one first" in r.stderr


def test_attest_keeps_renames_and_default(two):
    c1, c2, cli = two
    # attesting a recorded CAS again keeps its name and owner mark
    r = cli.run("attest", c2.addr, *TRUST, check=True)
    assert "recorded as CAS 'second' in" in r.stdout
    cfg = conf(cli)
    assert set(cfg["cas"]) == {"mycas", "second"} and cfg["cas"]["second"]["owner"] is True
    assert cfg["default_cas"] == "mycas"
    # --default moves the default
    cli.run("attest", c2.addr, "--default", *TRUST, check=True)
    assert conf(cli)["default_cas"] == "second"
    assert shown_cas(cli.run("owner", "show")) == c2.key_hash()
    # --name renames (one name per CAS); the default follows the rename
    cli.run("attest", c2.addr, "--name", "renamed", *TRUST, check=True)
    cfg = conf(cli)
    assert set(cfg["cas"]) == {"mycas", "renamed"} and cfg["default_cas"] == "renamed"
    # a name of another CAS, or not a name: refused, nothing changed
    r = cli.run("attest", c2.addr, "--name", "mycas", *TRUST)
    assert r.returncode == 1 and "already names another CAS 'mycas'" in r.stderr
    r = cli.run("attest", c2.addr, "--name", "bad name/x", *TRUST)
    assert r.returncode == 1 and "'bad name/x' is not a CAS name (1 to 64 of A-Z a-z 0-9 . - _)" in r.stderr
    assert conf(cli) == cfg
    # an unnamed CAS attested the first time is named by its host
    other = Cli(c1.las.root + "/other/config")
    r = other.run("attest", c1.addr, *TRUST, check=True)
    assert f"recorded as CAS '{c1.ip}' (the default CAS)" in r.stdout
    assert conf(other)["cas"][c1.ip]["owner"] is False


def test_provision_name_option_and_bad_common_name(tmp_path, cas_nodes):
    c1 = cas_nodes("n1", "127.0.0.2").start()
    cli = Cli(tmp_path / "cli" / "config")
    bad = tmp_path / "bad.toml"
    bad.write_text('[api_identity]\ncommon_name = "my cas"\n')
    r = cli.provision(c1, bad, check=False)
    assert r.returncode == 1
    assert "[api_identity] common_name 'my cas' cannot name the CAS in the CLI configuration" in r.stderr
    r = cli.provision(c1, bad, "--name", "x/y", check=False)
    assert r.returncode == 1 and "'x/y' is not a CAS name" in r.stderr
    r = cli.provision(c1, bad, "--name", "prod-cas_1.eu", check=True)
    assert conf(cli)["default_cas"] == "prod-cas_1.eu"


def test_default_path_and_config_json_fallback(tmp_path, cas_nodes):
    c1 = cas_nodes("n1", "127.0.0.2").start()
    home1, home2 = tmp_path / "h1", tmp_path / "h2"
    env = dict(os.environ)
    for k in ("CAS_CLI_CONFIG", "SCONE_CLI_CONFIG", "SCONE_CAS_ADDR"):
        env.pop(k, None)

    def cas(home, *args):
        r = subprocess.run([binary("cas"), *args], capture_output=True, text=True, env=dict(env, HOME=str(home)),
                           timeout=60)
        check_sanitizers(r.stderr, "cas")
        return r

    # the default is ~/.cas/config, as in the reference
    r = cas(home1, "provision", c1.addr, "-c", c1.key_hash(), "--token", c1.token(), "--config-file",
            str(toml(tmp_path, c1.ip)), "with-attestation", *TRUST)
    assert r.returncode == 0, r.stderr
    assert (home1 / ".cas" / "config").exists() and not (home1 / ".cas" / "config.json").exists()
    assert stat.S_IMODE(os.stat(home1 / ".cas" / "config").st_mode) == 0o600
    assert shown_cas(cas(home1, "owner", "show")) == c1.key_hash()
    # an earlier ~/.cas/config.json is read while ~/.cas/config does not exist, and written back there
    (home2 / ".cas").mkdir(parents=True)
    old = home2 / ".cas" / "config.json"
    old.write_text((home1 / ".cas" / "config").read_text())
    os.chmod(old, 0o600)
    assert shown_cas(cas(home2, "owner", "show")) == c1.key_hash()
    r = cas(home2, "attest", c1.addr, "--name", "moved", *TRUST)
    assert r.returncode == 0, r.stderr
    assert str(old) in r.stdout
    assert set(json.load(open(old))["cas"]) == {"moved"}
    assert json.load(open(old))["cas"]["moved"]["owner"] is True  # renamed, still its owner
    assert not (home2 / ".cas" / "config").exists()
    assert shown_cas(cas(home2, "owner", "show", "--cas", "moved")) == c1.key_hash()
    # once ~/.cas/config exists it is the one used
    (home2 / ".cas" / "config").write_text('{"version": 1, "cas": {}}')
    r = cas(home2, "owner", "show")
    assert r.returncode == 1 and "known CAS: none" in r.stderr
