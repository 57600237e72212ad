# SPDX-License-Identifier: Apache-2.0
"""Sessions through the real cas CLI and casd: create, update, read, list; consistency (an update
names the current hash; stale and replayed versions are refused); access policies; registrars;
imports of secrets that are not exported; generated secrets kept across updates unless their
definition changes; every change in the audit records (read from the database with the key derived
here, independently of casd)."""
import json
import os
import re

from harness import Cli, db_record_values, provision_owner, unseal_dbkey

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def session_text(name="app", predecessor=None, extra_service="", secrets=None, access=None, more=""):
    lines = [f"name: {name}", 'version: "0.3"']
    if predecessor:
        lines.append(f'predecessor: "{predecessor}"')
    if access:
        lines.append(access)
    lines += ["services:", "  - name: svc", "    mrenclaves: [\"" + "ab" * 32 + "\"]",
              "    command: prog --flag @@2", "    environment:", "      USER_NAME: me",
              '      PASSWORD: "$$CAS::password$$"']
    if extra_service:
        lines.append(extra_service)
    lines += ["secrets:"] + (secrets or ["  - name: password", "    kind: ascii", "    size: 20"])
    return "\n".join(lines) + "\n" + more


def write(tmp_path, text, name="session.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def create(cli, path, check=True):
    r = cli.run("session", "create", path)
    if check:
        assert r.returncode == 0, r.stderr
        assert HEX64.match(r.stdout.strip()), r.stdout
    return r


def dbkey_of(cas):
    return unseal_dbkey(cas.db + ".key-store", cas.las.platform_dir)


def record(cas, name):
    values = db_record_values(cas.db, dbkey_of(cas), name)
    assert values, f"no record {name}"
    return json.loads(values[-1])


def audit_events(cas):
    key, events, seq = dbkey_of(cas), [], 0
    while True:
        v = db_record_values(cas.db, key, f"audit/{seq:020d}")
        if not v:
            return events
        events.append(json.loads(v[-1]))
        seq += 1


def test_session_lifecycle_hashes_versions_and_audit(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    h1 = create(owner, write(tmp_path, session_text())).stdout.strip()
    r = owner.run("session", "read", "app", "--hash", check=True)
    assert r.stdout.strip() == h1
    doc = json.loads(owner.run("session", "read", "app", check=True).stdout)
    assert doc["version"] == 1 and doc["hash"] == h1
    assert doc["session"]["services"][0]["command"] == ["prog", "--flag", "@@2"]
    # CREATOR became the owner's key hash
    assert doc["session"]["access_policy"]["update"] == [identity_hash(owner)]
    assert "value" not in json.dumps(doc["session"]["secrets"]), "a generated value left CAS"
    h2 = owner.run("session", "update", write(tmp_path, session_text(predecessor=h1), "v2.yaml"), check=True)
    h2 = h2.stdout.strip()
    assert HEX64.match(h2) and h2 != h1
    listed = owner.run("session", "list", check=True).stdout.split()
    assert listed == ["app", "2", h2]
    events = [(e["event"], e["details"].get("name"), e["details"].get("hash")) for e in audit_events(cas)]
    assert ("session created", "app", h1) in events
    assert ("session updated", "app", h2) in events
    cas.stop()
    cas.start()  # sessions live in the database
    assert owner.run("session", "read", "app", "--hash", check=True).stdout.strip() == h2


def test_unknown_field_is_named_with_its_path(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    text = session_text().replace("    environment:", "    enviroment:")
    r = create(owner, write(tmp_path, text), check=False)
    assert r.returncode != 0
    assert "services[0].enviroment: unknown field" in r.stderr, r.stderr
    r = owner.run("session", "list", check=True)
    assert r.stdout.strip() == "", "a refused session was stored"


def test_stale_and_replayed_predecessors_are_refused(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    h1 = create(owner, write(tmp_path, session_text())).stdout.strip()
    v2 = write(tmp_path, session_text(predecessor=h1), "v2.yaml")
    h2 = owner.run("session", "update", v2, check=True).stdout.strip()
    h3 = owner.run("session", "update", write(tmp_path, session_text(predecessor=h2, more="images: []\n"), "v3.yaml"),
                   check=True).stdout.strip()
    # v2's file again: its predecessor is version 1, no longer the current one
    r = owner.run("session", "update", v2)
    assert r.returncode != 0
    assert f"predecessor {h1} is version 1" in r.stderr and h3 in r.stderr, r.stderr
    # a hash that never was a version
    r = owner.run("session", "update", write(tmp_path, session_text(predecessor="cd" * 32), "x.yaml"))
    assert r.returncode != 0 and "is not a version of session 'app'" in r.stderr, r.stderr
    # an update without predecessor
    r = owner.run("session", "update", write(tmp_path, session_text(), "nopred.yaml"))
    assert r.returncode != 0 and "predecessor: an update must name the current version's hash" in r.stderr
    # a create of an existing name, and a create with a predecessor
    r = owner.run("session", "create", write(tmp_path, session_text(), "again.yaml"))
    assert r.returncode != 0 and "session 'app' exists" in r.stderr, r.stderr
    r = owner.run("session", "create", write(tmp_path, session_text(name="other", predecessor=h3), "p.yaml"))
    assert r.returncode != 0 and "a new session has no predecessor" in r.stderr, r.stderr
    assert owner.run("session", "read", "app", "--hash", check=True).stdout.strip() == h3


def stranger(tmp_path, cas, name="stranger"):
    cli = Cli(os.path.join(str(tmp_path), name, "config.json"))
    cli.run("attest", cas.addr, "-c", cas.key_hash(), "--only_for_testing-trust-any",
            "--only_for_testing-ignore-signer", check=True)
    return cli


def identity_hash(cli):
    with open(cli.config) as f:
        cert = json.load(f)["identity"]["certificate"]
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    spki = x509.load_pem_x509_certificate(cert.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def test_access_policy_decides_who_reads_and_updates(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    other = stranger(tmp_path, cas)
    other.run("session", "list")  # creates its identity
    h1 = create(owner, write(tmp_path, session_text())).stdout.strip()
    # a stranger: no read, no update, not listed, no create
    r = other.run("session", "read", "app")
    assert r.returncode != 0 and "no session named 'app' that identity" in r.stderr, r.stderr
    r = other.run("session", "update", write(tmp_path, session_text(predecessor=h1), "v2.yaml"))
    assert r.returncode != 0 and "may not update session 'app'" in r.stderr, r.stderr
    assert other.run("session", "list", check=True).stdout.strip() == ""
    r = other.run("session", "create", write(tmp_path, session_text(name="mine"), "mine.yaml"))
    assert r.returncode != 0 and "only the CAS owner" in r.stderr, r.stderr
    # the owner lets the stranger update (and read); the stranger's update then works
    access = f'access_policy:\n  read: [CREATOR, "{identity_hash(other)}"]\n  update: ["{identity_hash(other)}"]'
    h2 = owner.run("session", "update", write(tmp_path, session_text(predecessor=h1, access=access), "v2.yaml"),
                   check=True).stdout.strip()
    h3 = other.run("session", "update", write(tmp_path, session_text(predecessor=h2, access=access), "v3.yaml"),
                   check=True).stdout.strip()
    assert other.run("session", "read", "app", "--hash", check=True).stdout.strip() == h3
    # ... and the owner, no longer in update, may not
    r = owner.run("session", "update", write(tmp_path, session_text(predecessor=h3, access=access), "v4.yaml"))
    assert r.returncode != 0 and "may not update" in r.stderr, r.stderr


def test_registrar_may_not_create_sessions(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    out = tmp_path / "registrar.json"
    owner.run("owner", "make-registrar", "--out", str(out), check=True)
    reg = Cli(out)
    r = reg.run("session", "create", write(tmp_path, session_text()))
    assert r.returncode != 0 and "registrar" in r.stderr, r.stderr


EXPORTING = ["  - name: password", "    kind: ascii", "    size: 20",
             "  - name: shared", "    kind: hex", "    size: 16", "    export: [friend]"]


def test_import_of_a_secret_not_exported_is_refused(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    create(owner, write(tmp_path, session_text(name="exporter", secrets=EXPORTING)))
    importing = ["  - name: password", "    import:", "      session: exporter", "      secret: shared"]
    # friend is named in the export list: allowed
    create(owner, write(tmp_path, session_text(name="friend", secrets=importing), "friend.yaml"))
    # stranger is not
    r = owner.run("session", "create", write(tmp_path, session_text(name="stranger", secrets=importing), "s.yaml"))
    assert r.returncode != 0
    assert "session 'exporter' does not export secret 'shared' to 'stranger'" in r.stderr, r.stderr
    # nor is a secret that exporter does not export at all
    private = ["  - name: password", "    import:", "      session: exporter", "      secret: password"]
    r = owner.run("session", "create", write(tmp_path, session_text(name="friend2", secrets=private), "f2.yaml"))
    assert r.returncode != 0 and "does not export secret 'password'" in r.stderr, r.stderr
    r = owner.run("session", "create", write(tmp_path, session_text(name="x", secrets=[
        "  - name: password", "    import:", "      session: nobody", "      secret: s"]), "x.yaml"))
    assert r.returncode != 0 and "no session named 'nobody'" in r.stderr, r.stderr


def test_generated_secrets_kept_across_updates_unless_their_definition_changes(tmp_path, cas_nodes):
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    secrets = EXPORTING
    h1 = create(owner, write(tmp_path, session_text(secrets=secrets))).stdout.strip()
    s1 = record(cas, "session-secrets/app")
    assert set(s1) == {"password", "shared"}
    # a new environment entry and a new export list: values kept
    changed = [line.replace("[friend]", "[friend, other]") for line in secrets]
    h2 = owner.run("session", "update", write(tmp_path, session_text(
        predecessor=h1, secrets=changed, extra_service="      MORE: x"), "v2.yaml"), check=True).stdout.strip()
    s2 = record(cas, "session-secrets/app")
    assert s2["password"]["value"] == s1["password"]["value"]
    assert s2["shared"]["value"] == s1["shared"]["value"]
    # a new size: a new value for that secret only
    bigger = [line.replace("size: 20", "size: 30") for line in changed]
    owner.run("session", "update", write(tmp_path, session_text(predecessor=h2, secrets=bigger), "v3.yaml"),
              check=True)
    s3 = record(cas, "session-secrets/app")
    assert s3["password"]["value"] != s1["password"]["value"]
    assert s3["shared"]["value"] == s1["shared"]["value"]
    import base64
    pw = base64.b64decode(s3["password"]["value"])
    assert len(pw) == 30 and re.fullmatch(rb"[A-Za-z0-9]{30}", pw)


def test_an_update_names_the_session_of_its_url(tmp_path, cas_nodes):
    """The CLI takes the URL from the document; a raw request whose document names another session
    is refused (it would otherwise replace session B under the name of A)."""
    from harness import https
    cas = cas_nodes("node-1", "127.0.0.1").start()
    owner = provision_owner(cas, tmp_path)
    h = create(owner, write(tmp_path, session_text())).stdout.strip()
    create(owner, write(tmp_path, session_text(name="other"), "other.yaml"))
    cert = owner.identity_files(str(tmp_path))
    body = json.dumps({"session": session_text(name="other", predecessor=h)})
    status, data = https(cas.addr, "PUT", "/v1/sessions/app", body, cert=cert)
    assert status == 400, data
    assert "the document names session 'other', the request 'app'" in json.loads(data)["error"]["message"]
    status, data = https(cas.addr, "PUT", "/v1/sessions/..", body, cert=cert)
    assert status == 400 and b"not a session name" in data, data
