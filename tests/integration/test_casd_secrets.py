# SPDX-License-Identifier: Apache-2.0
"""No secret on disk or in any output: after a full flow (provisioning with an RSA identity, secrets
stored, restart), the database key (derived here independently from the key-store), the secret
values, the spent provisioning token and the owner's private key appear in no file and no captured
output, except where a secret legitimately lives."""
import base64
import json
import os
import secrets
import subprocess

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness import (OWNER_TOML, Cli, binary, db_record_values, keystore_aad, keystore_mac, rsa_identity,
                     seal_key, unseal_dbkey, wait_for)


def encodings(data):
    """The forms a leaked value could take: raw, hex (both cases), base64 (standard and URL-safe, at
    each of the three alignments a value can have inside a longer base64 text)."""
    forms = {data, data.hex().encode(), data.hex().upper().encode()}
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(b"\0" * shift + data)
            # drop the characters that depend on the bytes before or after the value
            start = (shift * 8 + 5) // 6
            end = (len(data) + shift) * 8 // 6
            forms.add(text[start:end])
    return {f for f in forms if len(f) >= 16}


def all_files(root):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def leaks(needles, haystacks):
    """[(where, which needle)] for every needle found in any (name, bytes) haystack."""
    found = []
    for where, data in haystacks:
        for label, forms in needles.items():
            for f in forms:
                if f in data:
                    found.append((where, label, f[:24]))
                    break
    return found


def test_no_secret_on_disk_or_in_output(tmp_path, cas_nodes, monkeypatch):
    monkeypatch.setenv("CUSTOS_LOG", "debug")  # every process logs all it can
    outputs = []  # every captured process output that must not carry a secret

    def cli_run(cli, *args, input=None, legit=False):
        r = cli.run(*args, input=input)
        assert r.returncode == 0, f"cas {' '.join(args)}: {r.stdout}\n{r.stderr}"
        if not legit:
            outputs.append((f"cas {args[0]} {args[1] if len(args) > 1 else ''} output",
                            (r.stdout + r.stderr).encode()))
        return r

    cas = cas_nodes("n1", "127.0.0.2").start()
    identity_dir = tmp_path / "identity"
    key_pem_path = rsa_identity(str(tmp_path))
    cli = Cli(tmp_path / "cli" / "config.json")
    toml = tmp_path / "owner.toml"
    toml.write_text(OWNER_TOML.format(ip=cas.ip))
    token, key_hash = cas.token(), cas.key_hash()
    casd_log_at_provisioning = len(open(cas.log_path, "rb").read())
    las_log_at_provisioning = len(open(cas.las.log_path, "rb").read())

    cli_run(cli, "provision", cas.addr, "-c", key_hash, "--token", token, "--config-file", str(toml),
            "--identity", key_pem_path, "with-attestation", "--only_for_testing-ignore-signer",
            "--only_for_testing-trust-any")
    wait_for(lambda: "TLS certificate renewed with the owner's names" in cas.log(), what="certificate renewal")
    values = {
        "db-password": "pw-" + secrets.token_hex(16),
        "api-token": "tok-" + secrets.token_urlsafe(24),
        "tls-note": "multi word secret " + secrets.token_hex(12) + " with spaces",
    }
    for name, value in values.items():
        cli_run(cli, "secret", "put", name, input=value)
    cas.stop()
    cas.start()
    assert "CAS is provisioned" in cas.log()[casd_log_at_provisioning:]
    for name, value in values.items():
        # the one output that legitimately carries a value: the owner reading it back
        assert cli_run(cli, "secret", "get", name, legit=True).stdout == value + "\n"
    cli_run(cli, "owner", "show")
    cas.stop()

    # ---- the database key, derived independently of casd ------------------------------------------
    ks = cas.db + ".key-store"
    dbkey = unseal_dbkey(ks, cas.las.platform_dir)
    stored_mac, mac = keystore_mac(ks, dbkey)
    assert mac == stored_mac, "the derived key does not authenticate the key-store"
    for name, value in values.items():
        # the records on disk open with it: what is searched for below is the real key
        assert value.encode() in db_record_values(cas.db, dbkey, "secret/" + name), name
    # and a wrong derivation does not open the entry
    lasd_measurement = bytes.fromhex(subprocess.run(["sha256sum", binary("lasd")], capture_output=True,
                                                    text=True, check=True).stdout.split()[0])
    with pytest.raises(InvalidTag):
        unseal_dbkey(ks, cas.las.platform_dir, measurement=lasd_measurement)
    with pytest.raises(InvalidTag):
        unseal_dbkey(ks, cas.las.platform_dir, label=b"cas-db2")
    entry = json.load(open(ks))["entries"][0]
    with pytest.raises(InvalidTag):
        AESGCM(seal_key(os.urandom(32), lasd_measurement)).decrypt(
            base64.b64decode(entry["nonce"]), base64.b64decode(entry["sealed"]), keystore_aad(entry))

    # ---- what to look for ----------------------------------------------------------------------------
    key_pem = open(key_pem_path, "rb").read()
    assert b"-----BEGIN PRIVATE KEY-----" in key_pem
    key_lines = [ln for ln in key_pem.splitlines() if ln and not ln.startswith(b"-----") and len(ln) >= 16]
    key_der = base64.b64decode(b"".join(key_pem.splitlines()[1:-1]))
    # raw DER pieces from the middle of the key (the private exponent and primes)
    key_raw = [key_der[i:i + 32] for i in range(64, len(key_der) - 32, 32)]
    assert len(key_lines) > 20 and len(key_raw) > 20
    secrets_needles = {"dbkey": encodings(dbkey)}
    for name, value in values.items():
        secrets_needles[f"secret value {name}"] = encodings(value.encode())
    token_needles = {"provisioning token": encodings(token.encode()) | encodings(bytes.fromhex(token))}
    key_needles = {"owner private key": set(key_lines) | set(key_raw)}
    pk_needle = {"PRIVATE KEY literal": {b"PRIVATE KEY"}}

    # ---- where to look ---------------------------------------------------------------------------------
    files = {p: open(p, "rb").read() for p in all_files(tmp_path)}
    casd_log = files.pop(cas.log_path)
    las_log = files[cas.las.log_path]
    legit_key_homes = {cli.config} | {p for p in files if p.startswith(str(identity_dir) + os.sep)}
    db_files = {p: d for p, d in files.items() if p.startswith(cas.db + os.sep) or p == ks}
    assert {os.path.basename(p) for p in db_files} >= {"data.mdb", "lock.mdb", os.path.basename(ks)}
    assert len(casd_log) > casd_log_at_provisioning and token.encode() in casd_log[:casd_log_at_provisioning]
    assert b"DEBUG" in casd_log and b"DEBUG" in las_log, "debug logging is not on"

    found = []
    # the database key and the secret values: nowhere at all
    found += leaks(secrets_needles, list(files.items()) + [(cas.log_path, casd_log)] + outputs)
    # the token: not in the database, not in any file but the casd log, and only in what casd
    # logged before the provisioning started; not in any output
    found += leaks(token_needles, [(p, d) for p, d in files.items() if p != cas.las.log_path] + outputs +
                   [("casd log after provisioning started", casd_log[casd_log_at_provisioning:]),
                    ("lasd log after provisioning started", las_log[las_log_at_provisioning:])])
    # the owner's private key: only in the CLI configuration and the identity files
    found += leaks(key_needles, [(p, d) for p, d in files.items() if p not in legit_key_homes] +
                   [(cas.log_path, casd_log)] + outputs)
    # no PEM private key in plaintext in what casd stores or logs (its own key is in the database)
    found += leaks(pk_needle, list(db_files.items()) + [(cas.log_path, casd_log)])
    assert not found, "secrets found:\n" + "\n".join(map(repr, found))

    # the searches are able to find what they look for
    assert leaks(secrets_needles, [("probe", b"x" + dbkey.hex().upper().encode())])
    assert leaks(secrets_needles, [("probe", b'"' + base64.b64encode(b"ab" + dbkey) + b'"')])
    assert leaks(key_needles, [("probe", json.dumps({"k": key_pem.decode()}).encode())])
    assert leaks(key_needles, [(cli.config, files[cli.config])]), "the CLI config should hold the key"
    assert leaks(token_needles, [("casd log before provisioning", casd_log[:casd_log_at_provisioning])])
