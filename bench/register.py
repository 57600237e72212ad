#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/register: backup registration latency against a running primary CAS.

Usage: /usr/bin/python3 bench/register.py [BUILD_DIR] [COUNT]   (defaults: build, 200)

Starts lasd on two simulated nodes and a provisioned casd on node 1 (127.0.0.2), then registers
node 2 COUNT times:
  - "excluded": a backup CAS (casd --backup) is started and ready first; the time is that of
    `cas register-backup` alone (CLI process start, 4 HTTPS requests, all checks, key-store write);
  - "included": from launching casd --backup to the end of `cas register-backup` (backup process
    start, its quote, TLS listener, registration).
Prints p50/p99 of both, beside the cost of the cryptographic operations of one registration
measured in the same run by bench_crypto_ops. The reference's controller took 13-33 s per node
(pod start included); the goal here is under 100 ms without pod start.
"""
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def port(ip):
    while True:
        p = random.randrange(20000, 60000)
        s = socket.socket()
        try:
            s.bind((ip, p))
            return p
        except OSError:
            continue
        finally:
            s.close()


def wait_log(path, marker, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            if marker.encode() in f.read():
                return
        if proc.poll() is not None:
            sys.exit(f"process exited: {open(path).read()}")
        time.sleep(0.001)
    sys.exit(f"timeout waiting for {marker} in {path}")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    d = tempfile.mkdtemp(prefix="custos-bench-register-")
    procs = []
    try:
        for n in ("n1", "n2"):
            os.makedirs(f"{d}/{n}")
            lp = subprocess.Popen([f"{BUILD}/lasd", "--socket", f"{d}/{n}/las.sock", "--platform-dir",
                                   f"{d}/{n}/platform"], stderr=open(f"{d}/{n}/lasd.log", "wb"))
            procs.append(lp)
            wait_log(f"{d}/{n}/lasd.log", "LAS listening", lp)
        addr = f"127.0.0.2:{port('127.0.0.2')}"
        cp = subprocess.Popen([f"{BUILD}/casd", "--db", f"{d}/db", "--las", f"{d}/n1/las.sock", "--listen", addr,
                               "--node-name", "n1"], stderr=open(f"{d}/casd.log", "wb"))
        procs.append(cp)
        wait_log(f"{d}/casd.log", "CAS listening", cp)
        log = open(f"{d}/casd.log").read()
        kh = [l.split()[6] for l in log.splitlines() if "CAS key hash" in l][-1]
        tok = [l.split()[6] for l in log.splitlines() if "CAS provisioning token" in l][-1]
        with open(f"{d}/owner.toml", "w") as f:
            f.write('[api_identity]\ncommon_name = "cas"\n')
        env = dict(os.environ, SCONE_CLI_CONFIG=f"{d}/cli.json")
        subprocess.run([f"{BUILD}/cas", "provision", addr, "-c", kh, "--token", tok, "--config-file",
                        f"{d}/owner.toml", "with-attestation", "--only_for_testing-ignore-signer",
                        "--only_for_testing-trust-any"], env=env, check=True, capture_output=True)
        excluded, included = [], []
        for i in range(COUNT):
            baddr = f"127.0.0.3:{port('127.0.0.3')}"
            blog = f"{d}/backup.log"
            t0 = time.perf_counter()
            bp = subprocess.Popen([f"{BUILD}/casd", "--backup", "--las", f"{d}/n2/las.sock", "--listen", baddr,
                                   "--node-name", "n2"], stderr=open(blog, "wb"))
            wait_log(blog, "ready on https://", bp)
            t1 = time.perf_counter()
            r = subprocess.run([f"{BUILD}/cas", "register-backup", baddr], env=env, capture_output=True, text=True)
            t2 = time.perf_counter()
            if r.returncode != 0:
                sys.exit(f"registration {i} failed: {r.stderr}")
            bp.wait(timeout=10)
            excluded.append((t2 - t1) * 1000)
            included.append((t2 - t0) * 1000)
        crypto = subprocess.run([f"{BUILD}/bench/bench_crypto_ops"], capture_output=True, text=True,
                                check=True).stdout
        total_us = float([l for l in crypto.splitlines() if l.startswith("total_per_registration")][0].split()[1])
        print(f"backup registrations against a running primary: {COUNT}")
        print(f"  backup start excluded (cas register-backup): p50 {pct(excluded, 50):7.2f} ms  "
              f"p99 {pct(excluded, 99):7.2f} ms  mean {statistics.mean(excluded):7.2f} ms")
        print(f"  backup start included (casd --backup + register): p50 {pct(included, 50):7.2f} ms  "
              f"p99 {pct(included, 99):7.2f} ms")
        print(f"  cryptographic operations of one registration (same run): {total_us / 1000:7.3f} ms "
              f"= {100 * total_us / 1000 / pct(excluded, 50):.1f}% of the p50 (the rest: process start, TLS "
              f"handshakes, LAS round trips, fsync of the key-store)")
        print("  per operation (microseconds):")
        for line in crypto.splitlines():
            print("    " + line)
        print("  reference (SCONE controller quick start): 13,000-33,000 ms per node, pod start included")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
