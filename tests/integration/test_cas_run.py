# SPDX-License-Identifier: Apache-2.0
"""cas-run, the attested launcher, with real processes (lasd, casd, the cas CLI): its measurements
equal sha256sum's; it refuses scripts, an unpinned CAS and a CAS with another key before sending
anything; end to end, the program runs with exactly the session's arguments, environment, working
directory and injection files (in both file modes), a changed program, protected file or launcher is
refused with CAS's reasons, what runs is what was measured even when the file is swapped in between,
and the generated password appears in no log and no file."""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from harness import BUILD, binary, check_sanitizers, provision_owner, sha256_file, wait_for

HEX64_ZERO = "0" * 64


def base_env(**extra):
    """A small, known environment: what cas-run gets, so a test can say what may reach the program."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "CUSTOS_LOG"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def cas_run(*args, env=None, timeout=60, cwd=None, exe=None):
    r = subprocess.run([exe or binary("cas-run"), *args], capture_output=True, text=True, env=env or base_env(),
                       timeout=timeout, cwd=cwd)
    check_sanitizers(r.stderr, "cas-run")
    return r


# ---- no CAS needed ---------------------------------------------------------------------------------

def test_scone_hash_prints_the_measurements_lasd_computes(tmp_path):
    r = cas_run(env=base_env(SCONE_HASH="1"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout == sha256_file(binary("cas-run")) + "\n"
    # a program found through PATH, as it would be run, and one named by its path
    ls = shutil.which("ls")
    r = cas_run("--", "ls", env=base_env(SCONE_HASH="1"))
    assert r.returncode == 0 and r.stdout == sha256_file(ls) + "\n" and r.stderr == ""
    prog = tmp_path / "prog"
    shutil.copy(ls, prog)
    with open(prog, "ab") as f:
        f.write(b"\0")
    r = cas_run("--", str(prog), env=base_env(SCONE_HASH="1"))
    assert r.stdout == sha256_file(str(prog)) + "\n" and r.stdout != sha256_file(ls) + "\n"
    # cas prints its own, and nothing else, whatever follows
    r = subprocess.run([binary("cas"), "session", "list"], capture_output=True, text=True,
                       env=base_env(SCONE_HASH="1"), timeout=30)
    assert r.returncode == 0 and r.stdout == sha256_file(binary("cas")) + "\n" and r.stderr == ""


def test_script_is_refused_as_program(tmp_path):
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    r = cas_run("--", str(script), env=base_env(SCONE_HASH="1"))
    assert r.returncode != 0 and r.stdout == "" and "is a script (#!)" in r.stderr, r.stderr
    r = cas_run("--session", "s/svc", "--cas-key-hash", "ab" * 32, "--cas", "127.0.0.1:9", "--", str(script))
    assert r.returncode == 1 and "is a script (#!)" in r.stderr, r.stderr
    assert f"make the script a protected file: -- /bin/sh {script}" in r.stderr, r.stderr
    script.write_text("#!/usr/bin/env -S python3 -u\nprint(1)\n")
    r = cas_run("--session", "s/svc", "--cas-key-hash", "ab" * 32, "--cas", "127.0.0.1:9", "--", str(script))
    assert r.returncode == 1 and f"-- python3 {script}" in r.stderr, r.stderr
    assert "Connecting to CAS" not in r.stderr, "contacted CAS for a script"


class Listener:
    """A TCP listener that counts the connections it accepts (and closes them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except socket.timeout:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def test_no_key_hash_is_refused_before_any_connection(tmp_path):
    lst = Listener()
    try:
        addr = f"127.0.0.1:{lst.port}"
        r = cas_run("--cas", addr, "--session", "s/svc", "--", "true")
        assert r.returncode == 1, r.stderr
        assert f"no key hash for CAS {addr}" in r.stderr and "never talks to a CAS it cannot pin" in r.stderr
        # the same through the environment, and with a CLI configuration that does not know this CAS
        cfg = tmp_path / "cli.json"
        cfg.write_text(json.dumps({"version": 1, "cas": {}}))
        r = cas_run("--session", "s/svc", "--", "true",
                    env=base_env(SCONE_CAS_ADDR=addr, SCONE_CLI_CONFIG=str(cfg)))
        assert r.returncode == 1 and "neither the name nor the address of a CAS" in r.stderr, r.stderr
        time.sleep(0.3)
        assert lst.accepted == 0, "cas-run connected to an unpinned CAS"
    finally:
        lst.close()


def test_usage_errors_and_help():
    r = cas_run("--help")
    assert r.returncode == 0
    for opt, env in (("--cas ", "SCONE_CAS_ADDR"), ("--cas-key-hash", "CAS_KEY_HASH"),
                     ("--cli-config", "CAS_CLI_CONFIG|SCONE_CLI_CONFIG"), ("--las", "SCONE_LAS_ADDR"),
                     ("--session", "SCONE_CONFIG_ID"), ("--files-mode", "CAS_RUN_FILES_MODE")):
        line = next((ln for ln in r.stdout.splitlines() if ln.strip().startswith(opt)), "")
        assert f"[env: {env}]" in line, (opt, line)
    assert "(default: /run/custos/las.sock)" in r.stdout and "(default: auto)" in r.stdout
    assert "--cas-platform ID" in r.stdout and "any platform" in r.stdout
    assert "--cas-measurement HEX" in r.stdout and "not checked" in r.stdout
    assert "SCONE_HASH=1" in r.stdout
    kh = ["--cas", "127.0.0.1:9", "--cas-key-hash", "ab" * 32]
    assert "no service" in cas_run(*kh, "--", "true").stderr
    assert cas_run(*kh, "--", "true").returncode == 2
    r = cas_run(*kh, "--session", "a/b/c", "--", "true")
    assert r.returncode == 2 and "is not SESSION/SERVICE" in r.stderr
    r = cas_run(*kh, "--session", "a/b")
    assert r.returncode == 2 and "no program" in r.stderr
    r = cas_run(*kh, "--session", "a/b", "--files-mode", "disk", "--", "true")
    assert r.returncode == 2 and "'disk' is not auto, namespace or parent" in r.stderr
    r = cas_run("--cas", "127.0.0.1:9", "--cas-key-hash", "xyz", "--session", "a/b", "--", "true")
    assert r.returncode == 1 and "'xyz' is not 64 hex digits" in r.stderr


def test_files_module_as_an_unprivileged_user(tmp_path):
    """tests/unit/test_run_files.c as uid 65534: namespace mode through a user namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    tmp = tempfile.mkdtemp(prefix="custos-nobody-")  # pytest's own directories are 0700: not reachable
    try:
        os.chmod(tmp, 0o755)
        os.chown(tmp, 65534, 65534)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            os.path.join(BUILD, "tests", "test_run_files")], capture_output=True, text=True,
                           env=base_env(TMPDIR=tmp), timeout=120)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check_sanitizers(r.stdout + r.stderr, "test_run_files")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "[  PASSED  ] 8 test(s)" in out, out  # the submount case needs root: skipped
    assert "in a private mount namespace and user namespace" in r.stderr, r.stderr


def test_files_fall_back_to_parent_mode_where_namespaces_are_refused():
    """auto falls back to files on disk (and forced namespace mode fails) where no namespace can be
    made: here a user namespace whose namespace limits are 0 (the limits are per user namespace: the
    machine's are untouched)."""
    test = os.path.join(BUILD, "tests", "test_run_files")
    r = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                        "echo 0 > /proc/sys/user/max_mnt_namespaces && echo 0 > /proc/sys/user/max_user_namespaces"
                        " && exec \"$0\"", test], capture_output=True, text=True, timeout=120,
                       env=base_env(TEST_RUN_FILES_AUTO_EXPECT="parent", TEST_RUN_FILES_FILTER="test_auto_mode"))
    out = r.stdout + r.stderr
    check_sanitizers(out, "test_run_files")
    if r.returncode != 0 and "unshare failed" in out:
        pytest.fail("cannot make the restricted user namespace for this test: " + out)
    assert r.returncode == 0, out
    assert "[  PASSED  ] 1 test(s)" in out, out
    assert "falling back to files on disk" in out and "No space left on device" in out, out


# ---- with CAS ----------------------------------------------------------------------------------------

@pytest.fixture
def cas_env(tmp_path, cas_nodes):
    """A provisioned casd on its own node, the owner's CLI, and cas-run's environment for it."""
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)

    class Env:
        pass
    e = Env()
    e.cas, e.owner = cas, owner
    e.env = base_env(SCONE_CAS_ADDR=cas.addr, CAS_KEY_HASH=cas.key_hash(), SCONE_LAS_ADDR=cas.las.socket)
    return e


def test_wrong_key_hash_is_refused_before_anything_is_sent(cas_env):
    cas = cas_env.cas
    r = cas_run("--session", "s/svc", "--", "true", env=dict(cas_env.env, CAS_KEY_HASH="cd" * 32))
    assert r.returncode == 1
    assert cas.key_hash() in r.stderr and "cd" * 32 in r.stderr, r.stderr
    assert "nothing was sent" in r.stderr
    assert "/v1/run" not in cas.log() and "launcher" not in cas.log()


def make_session(cas_env, tmp_path, name, service_yaml, extra="", secrets=None):
    text = "\n".join([f"name: {name}", 'version: "0.3"', "services:", service_yaml.rstrip(), extra.rstrip(),
                      "secrets:"] + (secrets or ["  - name: password", "    kind: ascii", "    size: 24"])) + "\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    r = cas_env.owner.run("session", "create", str(path))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


SCRIPT = 'echo "word5=$2"; echo "file=$(cat "$1")"; echo "pwd=$(pwd)"; echo "inj=$(cat "$3")"; env | sort'


def hello_service(data, inj, workdir, mrenclave=None):
    """sh -c SCRIPT x DATA @@5 INJ: DATA a protected file, word 5 the caller's, INJ an injection file."""
    sh = sha256_file(shutil.which("sh"))
    cmd = json.dumps(["sh", "-c", SCRIPT, "x", str(data), "@@5", str(inj)])
    return f"""  - name: app
    image_name: img
    mrenclaves: ["{mrenclave or sh}"]
    command: {cmd}
    protected_files:
      - path: {data}
        sha256: "{sha256_file(str(data))}"
    environment:
      GREETING: hello
      API_PASSWORD: "$$CAS::password$$"
      "@@PASSTHRU": ""
      "@@ABSENT": ""
    pwd: {workdir}
""", f"""images:
  - name: img
    injection_files:
      - path: {inj}
        content: "pw=$$CAS::password$$"
"""


def listing(d):
    return sorted(os.path.relpath(os.path.join(r, n), d) for r, ds, fs in os.walk(d) for n in ds + fs)


def encodings(data):
    """The forms a leaked value could take: raw, hex, base64 at each of the three alignments."""
    forms = {data, data.hex().encode(), data.hex().upper().encode()}
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + data)
        forms.add(text[(shift * 8 + 5) // 6:(len(data) + shift) * 8 // 6])
    return {f for f in forms if len(f) >= 16}


@pytest.fixture
def debug_logs(monkeypatch):
    """Every process started afterwards (lasd, casd, cas, cas-run) logs at debug level."""
    monkeypatch.setenv("CUSTOS_LOG", "debug")


@pytest.mark.parametrize("mode", ["namespace", "parent"])
def test_program_runs_with_the_session_and_leaves_nothing(tmp_path, debug_logs, cas_env, mode):
    data = tmp_path / "data.txt"
    data.write_text("protected content")
    root = tmp_path / "root"
    root.mkdir()
    (root / "existing.txt").write_text("mine")
    inj = root / "conf" / "secret.conf"  # its directory does not exist
    workdir = tmp_path / "work"
    workdir.mkdir()
    service, images = hello_service(data, inj, workdir)
    make_session(cas_env, tmp_path, "hello", service, images)
    before = listing(root)
    env = dict(cas_env.env, PASSTHRU="passed", LEAKME="caller-only-value")
    r = cas_run("--files-mode", mode, "--session", "hello/app", "--", "sh", "-c", SCRIPT, "x", str(data),
                "anything-goes", str(inj), env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "word5=anything-goes" in out
    assert "file=protected content" in out
    assert f"pwd={workdir}" in out
    inj_line = next(ln for ln in out if ln.startswith("inj="))
    password = inj_line[len("inj=pw="):]
    assert len(password) == 24 and password.isalnum(), inj_line
    # exactly the session's environment (sh adds PWD itself)
    env_lines = {ln.split("=", 1)[0]: ln.split("=", 1)[1] for ln in out[4:] if "=" in ln}
    env_lines.pop("PWD", None)
    assert env_lines == {"GREETING": "hello", "API_PASSWORD": password, "PASSTHRU": "passed"}, out
    assert "LEAKME" not in r.stdout and cas_env.cas.key_hash() not in r.stdout
    assert f"Connecting to CAS at https://{cas_env.cas.addr} using service ID hello/app" in r.stderr
    assert f"injection files: {mode}" in r.stderr, r.stderr
    # the injection file and the directory made for it are gone
    assert listing(root) == before and not inj.exists()
    # the password is in no log (all at debug level) and no file: only in the program's own output
    needles = encodings(password.encode())
    assert any(n in b"x" + base64.b64encode(b"ab" + password.encode()) for n in needles)  # the search works
    found = []
    for p in [os.path.join(d, n) for d, _, ns in os.walk(tmp_path) for n in ns]:
        if os.path.isfile(p) and not os.path.islink(p):
            data_bytes = open(p, "rb").read()
            found += [p for n in needles if n in data_bytes]
    found += ["cas-run's log" for n in needles if n in r.stderr.encode()]
    assert "DEBUG" in cas_env.cas.log(), "casd does not log at debug level"
    assert not found, f"the password is in {sorted(set(found))}"


def test_changed_program_is_refused_with_the_reference_lines(tmp_path, cas_env):
    data = tmp_path / "data.txt"
    data.write_text("x")
    w1, w2 = "11" * 32, "22" * 32
    service, images = hello_service(data, tmp_path / "inj.conf", tmp_path, mrenclave=w1)
    service = service.replace(f'["{w1}"]', f'["{w1}", "{w2}"]')
    make_session(cas_env, tmp_path, "hello", service, images)
    r = cas_run("--session", "hello/app", "--", "sh", "-c", SCRIPT, "x", str(data), "y", str(tmp_path / "inj.conf"),
                env=cas_env.env)
    assert r.returncode == 1 and r.stdout == ""
    got = sha256_file(shutil.which("sh"))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error ")]
    assert lines == [f"Error 1 of 2: Unexpected enclave measurement (MRENCLAVE, {got}) - Expected {w1}",
                     f"Error 2 of 2: Unexpected enclave measurement (MRENCLAVE, {got}) - Expected {w2}"], r.stderr
    assert not (tmp_path / "inj.conf").exists()


def test_changed_protected_file_is_refused(tmp_path, cas_env):
    data = tmp_path / "data.txt"
    data.write_text("original")
    service, images = hello_service(data, tmp_path / "inj.conf", tmp_path)
    make_session(cas_env, tmp_path, "hello", service, images)
    want = sha256_file(str(data))
    data.write_text("changed")
    r = cas_run("--session", "hello/app", "--", "sh", "-c", SCRIPT, "x", str(data), "y", str(tmp_path / "inj.conf"),
                env=cas_env.env)
    assert r.returncode == 1 and r.stdout == ""
    got = sha256_file(str(data))
    assert f"Error 1 of 1: Unexpected file hash ({data}, {got}) - Expected {want}" in r.stderr, r.stderr


@pytest.mark.parametrize("how", ["rename", "in-place"])
def test_what_runs_is_what_was_measured(tmp_path, cas_env, how):
    prog = tmp_path / "prog"
    shutil.copy(shutil.which("echo"), prog)
    other = tmp_path / "other"
    shutil.copy(shutil.which("pwd"), other)
    service = f"""  - name: app
    mrenclaves: ["{sha256_file(str(prog))}"]
    command: {prog} measured-program-ran
    pwd: {tmp_path}
"""
    make_session(cas_env, tmp_path, "swap", service)
    p = subprocess.Popen([binary("cas-run"), "--session", "swap/app", "--", str(prog), "measured-program-ran"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(cas_env.env, CUSTOS_TEST_RUN_PAUSE_MS="1500"))
    err_lines = []
    for line in p.stderr:
        err_lines.append(line)
        if "CUSTOS_TEST_RUN_PAUSE_MS=1500 is set" in line:
            break
    # measured: now the file changes before cas-run contacts CAS and executes
    if how == "rename":
        os.rename(other, prog)
    else:
        with open(prog, "r+b") as f:
            f.write(open(other, "rb").read())
            f.truncate()
    assert sha256_file(str(prog)) == sha256_file(shutil.which("pwd"))
    out, rest = p.communicate(timeout=60)
    stderr = "".join(err_lines) + rest
    check_sanitizers(stderr, "cas-run")
    assert p.returncode == 0, stderr
    assert out == "measured-program-ran\n", out


def test_launcher_that_is_not_an_allowed_cas_run_is_refused(tmp_path, cas_env):
    fake = tmp_path / "cas-run-changed"
    shutil.copy(binary("cas-run"), fake)
    with open(fake, "ab") as f:
        f.write(b"\0")
    service = f"""  - name: app
    mrenclaves: ["{sha256_file(shutil.which('true'))}"]
    command: "true"
"""
    make_session(cas_env, tmp_path, "launch", service)
    assert cas_run("--session", "launch/app", "--", "true", env=cas_env.env).returncode == 0
    r = cas_run("--session", "launch/app", "--", "true", env=cas_env.env, exe=str(fake))
    assert r.returncode == 1
    got = sha256_file(str(fake))
    assert f"Error 1 of 1: Unexpected launcher measurement (cas-run, {got})" in r.stderr, r.stderr


def simple_service(cas_env, tmp_path, name="simple", words=("true",), extra=""):
    prog = shutil.which(words[0])
    cmd = json.dumps(list(words))
    make_session(cas_env, tmp_path, name, f"""  - name: app
    mrenclaves: ["{sha256_file(prog)}"]
    command: {cmd}
    pwd: {tmp_path}
{extra}""")


def test_cas_from_a_cli_configuration_and_its_trust_options(tmp_path, cas_env):
    """The CAS's URL and key hash from the owner's CLI configuration (by name, or its default); a key
    hash that contradicts it is refused; --cas-measurement and --cas-platform judge CAS's own quote
    before anything is sent to /v1/run."""
    simple_service(cas_env, tmp_path)
    cas, cfg = cas_env.cas, cas_env.owner.config
    env = base_env(SCONE_LAS_ADDR=cas.las.socket)
    for extra in ((), ("--cas", "mycas")):
        r = cas_run("--cli-config", cfg, *extra, "--session", "simple/app", "--", "true", env=env)
        assert r.returncode == 0, r.stderr
        assert f"Connecting to CAS at https://{cas.addr} using service ID simple/app" in r.stderr
    r = cas_run("--session", "simple/app", "--", "true", env=dict(env, CAS_CLI_CONFIG=cfg, CAS_KEY_HASH="ab" * 32))
    assert r.returncode == 1 and "ab" * 32 in r.stderr and cas.key_hash() in r.stderr, r.stderr
    casd_hash = sha256_file(binary("casd"))
    r = cas_run("--cas-measurement", casd_hash, "--session", "simple/app", "--", "true", env=cas_env.env)
    assert r.returncode == 0, r.stderr
    r = cas_run("--cas-measurement", "ab" * 32, "--session", "simple/app", "--", "true", env=cas_env.env)
    assert r.returncode == 1 and "NOT trustworthy" in r.stderr and casd_hash in r.stderr, r.stderr
    r = cas_run("--cas-platform", cas.las.platform_id(), "--session", "simple/app", "--", "true", env=cas_env.env)
    assert r.returncode == 0, r.stderr
    other = "02" + "AB" * 32
    r = cas_run("--cas-platform", other, "--session", "simple/app", "--", "true", env=cas_env.env)
    assert r.returncode == 1 and "NOT trustworthy" in r.stderr, r.stderr


def test_a_caller_word_that_names_a_file_is_measured_and_passed_as_dev_fd(tmp_path, cas_env):
    """@@N accepts any word; when it names a file, the program gets the sealed copy (/dev/fd/N)."""
    simple_service(cas_env, tmp_path, words=("cat", "@@1"))
    f = tmp_path / "note.txt"
    f.write_text("the bytes that were measured")
    r = cas_run("--session", "simple/app", "--", "cat", str(f), env=cas_env.env)
    assert r.returncode == 0 and r.stdout == "the bytes that were measured", r.stderr
    assert "1 argument names a file" in r.stderr
    # the program is told /dev/fd/N, not the path
    make_session(cas_env, tmp_path, "echoer", f"""  - name: app
    mrenclaves: ["{sha256_file(shutil.which('echo'))}"]
    command: echo @@1 plain
""")
    r = cas_run("--session", "echoer/app", "--", "echo", str(f), "plain", env=cas_env.env)
    assert r.returncode == 0 and r.stdout.startswith("/dev/fd/") and r.stdout.endswith(" plain\n"), r.stdout


def test_parent_mode_forwards_sigterm_and_removes_the_files(tmp_path, cas_env):
    inj = tmp_path / "run" / "token"
    make_session(cas_env, tmp_path, "sleeper", f"""  - name: app
    image_name: img
    mrenclaves: ["{sha256_file(shutil.which('sleep'))}"]
    command: sleep 60
""", f"""images:
  - name: img
    injection_files:
      - path: {inj}
        content: "$$CAS::password$$"
""")
    p = subprocess.Popen([binary("cas-run"), "--files-mode", "parent", "--session", "sleeper/app", "--", "sleep",
                          "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cas_env.env)
    try:
        wait_for(lambda: inj.exists(), timeout=30, what="the injection file")
        assert oct(inj.stat().st_mode & 0o777) == "0o600"
        time.sleep(0.2)
        p.send_signal(15)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    check_sanitizers(err, "cas-run")
    assert p.returncode == 128 + 15, err
    assert not inj.exists() and not inj.parent.exists(), "the file or the directory made for it is left"
    assert "cas-run stays the parent" in err


def test_python_runs_from_the_sealed_copy_with_a_protected_script(tmp_path, cas_env):
    """The design's advice for scripts: the interpreter is the program, the script a protected file."""
    path = "/usr/local/bin:/usr/bin:/bin"  # a system python3, not a shim (a script) that may come first in PATH
    python = shutil.which("python3", path=path)
    if not python:
        pytest.skip("no python3")
    with open(python, "rb") as f:
        if f.read(2) == b"#!":
            pytest.skip(f"{python} is a script")
    script = tmp_path / "hello.py"
    script.write_text("import os, sys\nprint('hello', os.environ['WHO'], sys.argv[0].startswith('/dev/fd/'))\n")
    make_session(cas_env, tmp_path, "py", f"""  - name: app
    mrenclaves: ["{sha256_file(python)}"]
    command: python3 {script}
    protected_files:
      - path: {script}
        sha256: "{sha256_file(str(script))}"
    environment:
      WHO: world
""")
    r = cas_run("--session", "py/app", "--", "python3", str(script), env=dict(cas_env.env, PATH=path))
    assert r.returncode == 0 and r.stdout == "hello world True\n", r.stdout + r.stderr
