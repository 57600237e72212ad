# SPDX-License-Identifier: Apache-2.0
"""Shared harness for the integration tests: real processes (swtpm, lasd, casd) on loopback
addresses and private directories. Every process started here is killed at exit, even on failure."""
import atexit
import hashlib
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

BUILD = os.path.abspath(os.environ.get("CUSTOS_BUILD",
                                       os.path.join(os.path.dirname(__file__), "..", "..", "build")))


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (set CUSTOS_BUILD to the meson build directory)")
    return path

_started = []  # every swtpm Popen this module started; all are killed, even on failure


def _kill_all():
    for p in _started:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all)


def _port_pair_free(port):
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Swtpm:
    def __init__(self, state_dir, log_dir):
        self.state_dir = str(state_dir)
        self.log_dir = str(log_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.proc = None
        self.port = None

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def start(self):
        assert self.proc is None
        last = ""
        for _ in range(20):
            port = random.randrange(20000, 60000, 2)
            if not _port_pair_free(port):
                continue
            log = os.path.join(self.log_dir, f"swtpm-{port}.log")
            with open(log, "wb") as logf:
                proc = subprocess.Popen(
                    ["swtpm", "socket", "--tpm2",
                     "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                     "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                     "--tpmstate", f"dir={self.state_dir}",
                     "--flags", "not-need-init,startup-clear"],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
            _started.append(proc)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.poll() is None:
                # only the control port is probed: it takes many connections, the server port one
                if _connectable(port + 1):
                    self.proc, self.port = proc, port
                    return self
                time.sleep(0.05)
            _stop(proc)
            with open(log, "rb") as f:
                last = f.read().decode(errors="replace")
        pytest.fail(f"could not start swtpm on a free port; last log:\n{last}")

    def stop(self):
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)



class LasNode:
    """One simulated node's lasd: a platform directory and a socket in a private directory."""

    def __init__(self, root, name, platform="sim", extra=()):
        self.root = str(root)
        self.name = name
        self.platform_dir = os.path.join(self.root, name, "platform")
        self.socket = os.path.join(self.root, name, "run", "las.sock")
        self.log_path = os.path.join(self.root, name, "lasd.log")
        self.platform = platform
        self.extra = list(extra)
        self.proc = None
        os.makedirs(os.path.join(self.root, name), exist_ok=True)

    def args(self):
        return [binary("lasd"), "--socket", self.socket, "--platform", self.platform,
                "--platform-dir", self.platform_dir] + self.extra

    def start(self, expect_fail=False, timeout=10):
        assert self.proc is None
        before = len(self.log())
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT)
        logf.close()
        _started.append(self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if expect_fail:
                    rc = self.proc.returncode
                    self.proc = None
                    return rc
                pytest.fail(f"lasd {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if "LAS listening" in self.log()[before:]:
                if expect_fail:
                    pytest.fail(f"lasd {self.name} started but should have refused:\n{self.log()}")
                return self
            time.sleep(0.02)
        pytest.fail(f"lasd {self.name} did not start in {timeout}s:\n{self.log()}")

    def stop(self):
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def platform_id(self):
        """The platform ID as the reference extracts it: grep 'public key' | awk '{print $8}'."""
        out = subprocess.run(f"grep 'public key' {self.log_path} | tail -n 1 | awk '{{print $8}}'",
                             shell=True, capture_output=True, text=True, check=True).stdout.strip()
        assert re.fullmatch(r"0[23][0-9A-F]{64}", out), out
        return out


def las_request(sock_path, payload, timeout=10):
    """Sends one framed request to lasd and returns (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(struct.pack(">I", len(payload)) + payload)
        return read_frame(s)


def read_frame(s):
    hdr = recv_exact(s, 4)
    n = struct.unpack(">I", hdr)[0]
    body = recv_exact(s, n)
    return body[0], body[1:]


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(args, check=False, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 60),
                          check=check, **kw)
