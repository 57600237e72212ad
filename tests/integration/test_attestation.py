# SPDX-License-Identifier: Apache-2.0
"""CAS's side of attested configuration, through the real cas-run, lasd and casd: each check of
POST /v1/run refuses on its own (platform, debug mode, TCB, command, @@N), the session's tolerations
and platforms relax or narrow them, every failing check is listed, the owner can allow another
launcher, imports are checked again at every run, and generated secrets stay the same across
cas-run runs, CAS restarts and a move of CAS to a registered node."""
import json
import shutil

import pytest

from harness import OWNER_TOML, BackupCas, CasNode, Cli, binary, sha256_file
from test_cas_run import base_env, cas_run


@pytest.fixture
def cas_env(tmp_path, cas_nodes):
    """A casd provisioned without --only_for_testing-trust-any: it trusts its own platform, its
    registered backups' and the owner's allowed ones only (the CLI pins CAS's platform)."""
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = Cli(tmp_path / "owner" / "config.json")
    toml = tmp_path / "owner.toml"
    toml.write_text(OWNER_TOML.format(ip=cas.ip))
    owner.run("provision", cas.addr, "-c", cas.key_hash(), "--token", cas.token(), "--config-file", str(toml),
              "with-attestation", "--only_for_testing-ignore-signer", "--platform", cas.las.platform_id(),
              check=True)

    class Env:
        pass
    e = Env()
    e.cas, e.owner = cas, owner
    e.env = base_env(SCONE_CAS_ADDR=cas.addr, CAS_KEY_HASH=cas.key_hash(), SCONE_LAS_ADDR=cas.las.socket)
    return e


def service(name="app", command='["printenv", "GREETING", "API_PASSWORD"]', extra=""):
    return f"""  - name: {name}
    mrenclaves: ["{sha256_file(shutil.which('printenv'))}"]
    command: {command}
    environment:
      GREETING: hello
      API_PASSWORD: "$$CAS::password$$"
    pwd: /
{extra}"""


def create(env, tmp_path, name, services, top="", secrets=None):
    text = "\n".join([f"name: {name}", 'version: "0.3"', top.rstrip(), "services:", services.rstrip(), "secrets:"] +
                     (secrets or ["  - name: password", "    kind: ascii", "    size: 24"])) + "\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    r = env.owner.run("session", "create", str(path))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def run(env, session, *words, las=None, **extra):
    e = dict(env.env, **extra)
    if las:
        e["SCONE_LAS_ADDR"] = las.socket
    return cas_run("--session", session, "--", *(words or ("printenv", "GREETING", "API_PASSWORD")), env=e)


def errors(r):
    """The 'Error i of n: ...' lines cas-run printed, checked for numbering."""
    lines = [ln.split(": ", 1)[1] for ln in r.stderr.splitlines() if ln.startswith("Error ")]
    n = len(lines)
    assert all(f"Error {i + 1} of {n}: " in r.stderr for i in range(n)), r.stderr
    return lines


def refused(r, *fragments):
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "hello" not in r.stdout, "the program ran"
    got = errors(r)
    for f in fragments:
        assert any(f in e for e in got), f"'{f}' not among {got}"
    return got


@pytest.fixture
def other_nodes(nodes):
    """Nodes besides CAS's: a stranger, one in debug mode, one with a lower TCB than CAS's (1)."""
    made = {name: nodes(name, extra=extra).start() for name, extra in
            [("stranger", ()), ("debug", ("--debug-mode",)), ("old", ("--sim-tcb", "0"))]}
    return made


def test_a_platform_cas_does_not_trust_is_refused_until_the_owner_allows_it(tmp_path, cas_env, other_nodes):
    stranger = other_nodes["stranger"]
    create(cas_env, tmp_path, "s", service())
    assert run(cas_env, "s/app").stdout.splitlines()[0] == "hello"  # CAS's own platform
    refused(run(cas_env, "s/app", las=stranger),
            f"Unexpected platform ({stranger.platform_id()}) - Expected this CAS's platform")
    # the owner allows it (as for registering a backup there): CAS trusts it from now on
    cas_env.owner.run("owner", "allow-platform", stranger.platform_id(), check=True)
    r = run(cas_env, "s/app", las=stranger)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "hello", r.stderr


def test_service_platforms_narrow_the_trusted_ones(tmp_path, cas_env, other_nodes):
    stranger = other_nodes["stranger"]
    create(cas_env, tmp_path, "s", service(extra=f'    platforms: ["{stranger.platform_id()}"]'))
    assert run(cas_env, "s/app", las=stranger).returncode == 0
    own = cas_env.cas.las.platform_id()
    refused(run(cas_env, "s/app"), f"Unexpected platform ({own}) - Expected one of the service's 1 platforms")


def test_debug_mode_is_refused_unless_tolerated(tmp_path, cas_env, other_nodes):
    dbg = other_nodes["debug"]
    narrow = f'    platforms: ["{dbg.platform_id()}"]'
    create(cas_env, tmp_path, "strict", service(extra=narrow))
    refused(run(cas_env, "strict/app", las=dbg), "Debug mode is not tolerated")
    create(cas_env, tmp_path, "lenient", service(extra=narrow),
           top="security:\n  attestation:\n    tolerate: [debug-mode]")
    r = run(cas_env, "lenient/app", las=dbg)
    assert r.returncode == 0 and r.stdout.startswith("hello"), r.stderr


def test_a_lower_tcb_is_refused_unless_tolerated(tmp_path, cas_env, other_nodes):
    old = other_nodes["old"]
    narrow = f'    platforms: ["{old.platform_id()}"]'
    create(cas_env, tmp_path, "strict", service(extra=narrow))
    refused(run(cas_env, "strict/app", las=old), "Outdated TCB (TCB 0) - Expected at least 1")
    create(cas_env, tmp_path, "lenient", service(extra=narrow),
           top="security:\n  attestation:\n    tolerate: [outdated-tcb, software-hardening-needed]\n"
               "    ignore_advisories: \"*\"")
    assert run(cas_env, "lenient/app", las=old).returncode == 0


def test_the_command_must_match(tmp_path, cas_env):
    create(cas_env, tmp_path, "s", service(command='["printenv", "@@1", "API_PASSWORD"]'))
    # @@1 takes whatever the caller says
    r = run(cas_env, "s/app", "printenv", "GREETING", "API_PASSWORD")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "hello"
    refused(run(cas_env, "s/app", "printenv", "GREETING"), "Command has 2 words - Expected 3")
    refused(run(cas_env, "s/app", "printenv", "GREETING", "HOME"),
            "Command word 2 is 'HOME' - Expected 'API_PASSWORD'")
    # the program's own name (word 0) may be a path: it is judged by its measurement
    r = run(cas_env, "s/app", shutil.which("printenv"), "GREETING", "API_PASSWORD")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command,why", [
    ('["printenv", "@@0"]', "@@0"),
    ('["printenv", "@@5"]', "@@5"),
    ('["printenv", "@@x"]', "@@x"),
    ('["printenv", "GREETING", "@@1"]', "@@1"),
])
def test_at_n_misuse_is_refused_at_create(tmp_path, cas_env, command, why):
    path = tmp_path / "bad.yaml"
    path.write_text(f'name: bad\nversion: "0.3"\nservices:\n{service(command=command)}')
    r = cas_env.owner.run("session", "create", str(path))
    assert r.returncode != 0
    assert "services[0].command[" in r.stderr and why in r.stderr, r.stderr


def test_every_failing_check_is_listed(tmp_path, cas_env, other_nodes):
    sh = sha256_file(shutil.which("sh"))
    create(cas_env, tmp_path, "s", service(extra=f'    platforms: ["{other_nodes["old"].platform_id()}"]')
           .replace(sha256_file(shutil.which("printenv")), sh))
    r = run(cas_env, "s/app", "printenv", "X", "Y", "Z")
    got = refused(r, "Unexpected platform", f"Expected {sh}", "Command has 4 words - Expected 3")
    assert any("Unexpected enclave measurement (MRENCLAVE, " + sha256_file(shutil.which("printenv")) in e
               for e in got), got
    assert len(got) == 3, got


def test_the_owner_can_allow_another_launcher(tmp_path, cas_env):
    create(cas_env, tmp_path, "s", service())
    other = tmp_path / "other-cas-run"
    shutil.copy(binary("cas-run"), other)
    with open(other, "ab") as f:
        f.write(b"\0another build")
    r = cas_run("--session", "s/app", "--", "printenv", "GREETING", "API_PASSWORD", env=cas_env.env, exe=str(other))
    refused(r, f"Unexpected launcher measurement (cas-run, {sha256_file(str(other))})")
    cas_env.owner.run("owner", "allow-launcher", sha256_file(str(other)), check=True)
    r = cas_run("--session", "s/app", "--", "printenv", "GREETING", "API_PASSWORD", env=cas_env.env, exe=str(other))
    assert r.returncode == 0 and r.stdout.startswith("hello"), r.stderr


def test_imports_are_checked_again_at_every_run(tmp_path, cas_env):
    exporter = ["  - name: password", "    kind: ascii", "    size: 24", "    export: [importer]"]
    h = create(cas_env, tmp_path, "exporter", service(), secrets=exporter)
    create(cas_env, tmp_path, "importer", service(),
           secrets=["  - name: password", "    import:", "      session: exporter", "      secret: password"])
    mine = run(cas_env, "exporter/app").stdout.splitlines()[1]
    theirs = run(cas_env, "importer/app").stdout.splitlines()[1]
    assert mine == theirs and len(mine) == 24
    # the exporter stops exporting: the importer's next run is refused
    path = tmp_path / "exporter-v2.yaml"
    path.write_text("\n".join([f'name: exporter\nversion: "0.3"\npredecessor: "{h}"', "services:",
                               service().rstrip(), "secrets:"] + exporter[:3]) + "\n")
    cas_env.owner.run("session", "update", str(path), check=True)
    refused(run(cas_env, "importer/app"), "session 'exporter' does not export it to 'importer'")
    assert run(cas_env, "exporter/app").stdout.splitlines()[1] == mine  # the definition did not change


def test_generated_secrets_survive_restarts_and_a_move(tmp_path, cas_env, nodes):
    create(cas_env, tmp_path, "s", service())
    first = run(cas_env, "s/app").stdout.splitlines()[1]
    assert run(cas_env, "s/app").stdout.splitlines()[1] == first  # another cas-run
    cas = cas_env.cas
    cas.stop()
    cas.start()
    assert run(cas_env, "s/app").stdout.splitlines()[1] == first  # CAS restarted
    node2 = nodes("node-2").start()
    cas_env.owner.run("owner", "allow-platform", node2.platform_id(), check=True)
    backup = BackupCas(node2, "127.0.0.2").start()
    cas_env.owner.run("register-backup", backup.addr, check=True)
    backup.wait_exit()
    cas.stop()
    moved = CasNode(node2, "127.0.0.3", db=cas.db).start()
    try:
        env = dict(cas_env.env, SCONE_CAS_ADDR=moved.addr, SCONE_LAS_ADDR=node2.socket)
        r = cas_run("--session", "s/app", "--", "printenv", "GREETING", "API_PASSWORD", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[1] == first  # CAS moved to node-2, the password with it
    finally:
        moved.stop()
