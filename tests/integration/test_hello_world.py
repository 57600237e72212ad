# SPDX-License-Identifier: Apache-2.0
"""The hello-world example (examples/hello-world) run as its README says, with real lasd, casd, cas
and cas-run: the program gets its user and a CAS-generated password; a changed script, a changed
interpreter and a caller's own API_PASSWORD change nothing it runs with; a new session version gets
a new password and an old version cannot come back (and bringing its content back brings a new
password, not the old one); the password is in no file and no output of the whole flow."""
import base64
import json
import os
import re
import shutil
import subprocess

from harness import BUILD, db_record_values, provision_owner, sha256_file, unseal_dbkey

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

RUN_SH = os.path.join(REPO, "examples", "hello-world", "run.sh")
SYSTEM_PATH = "/usr/bin:/bin"  # Debian's python3 (a pyenv shim first on PATH is a script: cas-run refuses it)


class Hello:
    def __init__(self, tmp_path, cas, owner):
        self.tmp, self.cas, self.owner = tmp_path, cas, owner
        self.script = tmp_path / "app" / "print_env.py"  # a copy: the walkthrough edits it
        self.script.parent.mkdir()
        shutil.copy(os.path.join(REPO, "examples", "hello-world", "print_env.py"), self.script)
        self.outputs = []

    def sh(self, *args, check=True, **env):
        e = {"PATH": SYSTEM_PATH, "SCONE_CLI_CONFIG": self.owner.config, "SCONE_LAS_ADDR": self.cas.las.socket,
             "CUSTOS_BIN": BUILD, "SCRIPT": str(self.script), "TMPDIR": str(self.tmp),
             "HELLO_ROUNDS": "2", "HELLO_INTERVAL": "0"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                e[k] = os.environ[k]
        e.update(env)
        r = subprocess.run(["bash", RUN_SH, *args], capture_output=True, text=True, env=e, timeout=120)
        self.outputs.append(r.stdout + r.stderr)
        if check:
            assert r.returncode == 0, f"run.sh {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r

    def checksum(self, r):
        m = re.search(r"The checksum of the API_PASSWORD is '([0-9a-f]{32})'", r.stdout)
        assert m, r.stdout + r.stderr
        return m.group(1)

    def password(self):
        dbkey = unseal_dbkey(self.cas.db + ".key-store", self.cas.las.platform_dir)
        secrets = json.loads(db_record_values(self.cas.db, dbkey, "session-secrets/hello")[-1])
        return base64.b64decode(secrets["password"]["value"])


def test_hello_world_walkthrough(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    h = Hello(tmp_path, cas, owner)
    v1_file = tmp_path / "v1.yaml"
    h1 = h.sh("session", "--out", str(v1_file)).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", h1)

    # 2. it runs: the user in clear, a checksum of the password, twice the same
    r = h.sh("run")
    assert "Hello, 'myself': CAS passed the API_PASSWORD along" in r.stdout
    assert "Connecting to CAS at" in r.stderr and "using service ID hello/app" in r.stderr
    first = h.checksum(r)
    assert r.stdout.count(f"password checksum '{first}'") == 2
    pw1 = h.password()
    assert len(pw1) == 24 and first == __import__("hashlib").sha256(pw1).hexdigest()[:32]
    # a caller's own API_PASSWORD does not reach the program
    assert h.checksum(h.sh("run", API_PASSWORD="set-by-the-caller", API_USER="mallory")) == first

    # 3. integrity: the script edited in place
    original = h.script.read_bytes()
    h.script.write_bytes(original + b'\nprint(os.environ["API_PASSWORD"])\n')
    r = h.sh("run", check=False)
    assert r.returncode == 1 and "Hello" not in r.stdout
    assert f"Error 1 of 1: Unexpected file hash ({h.script}, {sha256_file(str(h.script))}) - Expected " \
           f"{__import__('hashlib').sha256(original).hexdigest()}" in r.stderr, r.stderr
    h.script.write_bytes(original)
    # ... another script in its place (a path the session does not name)
    evil = tmp_path / "evil.py"
    evil.write_bytes(original + b'\nprint(os.environ["API_PASSWORD"])\n')
    r = h.sh("run", check=False, SCRIPT=str(evil))
    assert r.returncode == 1 and "Hello" not in r.stdout
    assert f"Command word 1 is '{evil}' - Expected '{h.script}'" in r.stderr, r.stderr
    # ... another interpreter: a python3 that is not the measured one
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "python3"
    shutil.copy(os.path.realpath(shutil.which("python3", path="/usr/bin")), fake)
    with open(fake, "ab") as f:
        f.write(b"\0")
    r = h.sh("run", check=False, PATH=f"{bindir}:{SYSTEM_PATH}")
    want = sha256_file(os.path.realpath("/usr/bin/python3"))
    assert f"Unexpected enclave measurement (MRENCLAVE, {sha256_file(str(fake))}) - Expected {want}" in r.stderr, \
        r.stderr
    assert h.checksum(h.sh("run")) == first

    # 4. consistency: version 2 has a new password
    h2 = h.sh("session", "--update", "--password-size", "32").stdout.strip()
    second = h.checksum(h.sh("run"))
    assert second != first and len(h.password()) == 32
    # version 1's file cannot come back (it names no predecessor) ...
    r = owner.run("session", "update", str(v1_file))
    assert r.returncode != 0 and f"must name the current version's hash ({h2})" in r.stderr, r.stderr
    # ... nor with the predecessor it had (h1 is version 1, not the current one) ...
    replay = tmp_path / "replay.yaml"
    replay.write_text(v1_file.read_text().replace('version: "0.3"', f'version: "0.3"\npredecessor: "{h1}"'))
    r = owner.run("session", "update", str(replay))
    assert r.returncode != 0 and f"predecessor {h1} is version 1 of session 'hello'" in r.stderr, r.stderr
    # ... and its content as a new version brings a new password, never the old one
    again = tmp_path / "again.yaml"
    again.write_text(v1_file.read_text().replace('version: "0.3"', f'version: "0.3"\npredecessor: "{h2}"'))
    owner.run("session", "update", str(again), check=True)
    third = h.checksum(h.sh("run"))
    assert third not in (first, second)

    # the password (each of them) is in no file of the flow and no output
    pw3 = h.password()
    forms = set()
    for pw in (pw1, pw3):
        forms |= {pw, pw.hex().encode(), base64.b64encode(pw)[:len(pw) * 4 // 3 - 1]}
    leaks = []
    for root in (str(tmp_path), os.path.join(REPO, "examples", "hello-world")):
        for d, _, names in os.walk(root):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    data = open(p, "rb").read()
                    leaks += [p for f in forms if f in data]
    leaks += ["run.sh output" for out in h.outputs for f in forms if f in out.encode()]
    assert not leaks, f"a password is in {sorted(set(leaks))}"
