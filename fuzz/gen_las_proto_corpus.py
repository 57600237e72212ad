#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_las_proto (fuzz/corpus/las_proto/): valid lasd frames, requests
and answers, as lasd and the client library exchange them. Run from anywhere; rewrites the files."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "las_proto")
QUOTE, SEAL, INFO = 1, 2, 3


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def quote_body():
    """A well-formed 155-byte quote body (sim, TCB 1, uid 0); the key is a dummy compressed point."""
    return (b"CUSTOS-QUOTE-V1\0" + b"\x02" + bytes(range(32)) + b"\x01" + bytes(32) + struct.pack(">I", 1)
            + b"\x00" + bytes(range(64)) + struct.pack(">I", 0))


# a DER ECDSA signature's shape: SEQUENCE { INTEGER r, INTEGER s }, 32 bytes each
SIG = b"\x30\x44\x02\x20" + b"\x11" * 32 + b"\x02\x20" + b"\x22" * 32

SEEDS = {
    "req_quote.bin": frame(bytes([QUOTE]) + bytes(range(64))),
    "req_seal.bin": frame(bytes([SEAL]) + b"cas-db"),
    "req_info.bin": frame(bytes([INFO])),
    "req_stream.bin": frame(bytes([INFO])) + frame(bytes([SEAL]) + b"x") + frame(bytes([QUOTE]) + bytes(64)),
    "ans_quote.bin": frame(b"\x00" + quote_body() + SIG),
    "ans_seal.bin": frame(b"\x00" + bytes(range(32))),
    "ans_info.bin": frame(b'\x00{"platform_id":"02AB","platform_kind":"sim","tcb":1}'),
    "ans_error.bin": frame(b"\x01caller pid 7 runs code from /tmp/x.so, owned by uid 65534"),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")
