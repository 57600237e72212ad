# SPDX-License-Identifier: Apache-2.0
"""A scripted backup CAS for tests: it knows a sim node's machine secret, so it can sign quotes of
its own (any time, TCB, debug flag) with that node's platform key, unwrap the primary's offer and
answer with any completion. Every derivation follows the C code and is checked against it (the
platform ID the node's lasd logs, the database key in the primary's key-store)."""
import base64
import hashlib
import hmac
import json
import os
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import harness

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def hkdf(ikm, info, length=32, salt=None):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def b64(b):
    return base64.b64encode(b).decode()


class FakeBackup:
    """Speaks for the sim node `las` (a started LasNode): requests, offers, completions."""

    def __init__(self, las):
        self.las = las
        with open(os.path.join(las.platform_dir, "machine-secret"), "rb") as f:
            self.secret = f.read()
        # platform/platform.c and lib/crypto.c custos_p256_from_seed
        seed = hkdf(self.secret, b"identity", salt=b"custos-platform-v1")
        d = int.from_bytes(hkdf(seed, b"custos-p256-scalar", 48), "big") % (P256_N - 1) + 1
        self.key = ec.derive_private_key(d, ec.SECP256R1())
        self.pub = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                      serialization.PublicFormat.CompressedPoint)
        self.platform_id = self.pub.hex().upper()
        assert self.platform_id == las.platform_id(), "platform key derivation differs from lasd's"
        self.x25519 = X25519PrivateKey.generate()

    def quote(self, report_data, tcb=1, debug=0, kind=1, measurement=None, uid=0):
        """(155-byte body, DER signature): docs/design.md 'Quotes'."""
        m = harness.casd_measurement() if measurement is None else measurement
        body = (b"CUSTOS-QUOTE-V1\0" + self.pub + bytes([kind]) + m + struct.pack(">I", tcb) + bytes([debug]) +
                report_data + struct.pack(">I", uid))
        assert len(body) == 155
        return body, self.key.sign(body, ec.ECDSA(hashes.SHA256()))

    def request(self, created_at, node=None, **quote_fields):
        """A backup request (casd/backup_proto.h) whose quote binds its key, time and node."""
        self.node = node or self.las.name
        self.created_at = created_at
        self.public_key = self.x25519.public_key().public_bytes(serialization.Encoding.Raw,
                                                                serialization.PublicFormat.Raw)
        rd = hashlib.sha256(b"custos-backup-request-v1" + self.public_key + struct.pack(">q", created_at) +
                            self.node.encode()).digest() + bytes(32)
        self.body, sig = self.quote(rd, **quote_fields)
        self.tcb = quote_fields.get("tcb", 1)
        return {"quote": {"format": "custos-quote-v1", "body": b64(self.body), "signature": b64(sig)},
                "public_key": b64(self.public_key), "node_name": self.node, "created_at": created_at}

    def unwrap(self, offer):
        """The database key from the primary's offer; sets self.transcript."""
        eph = base64.b64decode(offer["ephemeral_key"])
        self.transcript = hashlib.sha256(
            b"custos-backup-transcript-v1" + self.body + self.public_key + self.node.encode() + b"\0" +
            struct.pack(">q", self.created_at) + offer["primary_platform_id"].encode() +
            offer["primary_key_hash"].encode() + eph).digest()
        shared = self.x25519.exchange(X25519PublicKey.from_public_bytes(eph))
        wrap = hkdf(shared, b"custos-backup-wrap-v1", salt=self.transcript)
        self.request_id = offer["request_id"]
        return AESGCM(wrap).decrypt(base64.b64decode(offer["nonce"]), base64.b64decode(offer["wrapped"]),
                                    self.transcript)

    def entry(self, dbkey, **override):
        """This node's key-store node entry, made as casd --backup makes it (an X25519 key pair whose
        private key is sealed with the node's seal key); fields can be overridden."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        e = {"platform_id": self.platform_id, "kind": "sim", "node": self.node, "tcb": self.tcb, "time": 1,
             "measurement": harness.casd_measurement().hex()}
        e.update(override)
        priv = X25519PrivateKey.generate()
        raw = priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        nonce = os.urandom(12)
        key = harness.seal_key(self.secret, harness.casd_measurement())
        e["public_key"] = b64(pub)
        e["nonce"], e["sealed"] = b64(nonce), b64(AESGCM(key).encrypt(nonce, raw, harness.keystore_aad(e)))
        return e

    def completion(self, dbkey, entry):
        """{"completion": ...} with the proof over the transcript and the entry (casd backup_proof)."""
        msg = (self.transcript + entry["platform_id"].encode() + entry["kind"].encode() + b"\0" +
               entry["node"].encode() + b"\0" + struct.pack(">I", entry["tcb"]) +
               base64.b64decode(entry["nonce"]) + base64.b64decode(entry["sealed"]) +
               base64.b64decode(entry["public_key"]) + entry.get("measurement", "").encode())
        proof = hmac.new(hkdf(dbkey, b"custos-backup-proof-v1"), msg, hashlib.sha256).digest()
        return {"completion": {"request_id": self.request_id, "entry": entry, "proof": b64(proof)}}


def owner_post(owner, cas, tmp, path, body):
    """POST with the owner's client certificate: (status, decoded JSON answer)."""
    st, resp = harness.https(cas.addr, "POST", path, json.dumps(body), cert=owner.identity_files(str(tmp)))
    return st, json.loads(resp)
