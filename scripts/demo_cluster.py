#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The cluster demo (the default of scripts/demo.sh): cas-backup-controller on a small simulated cluster.

Usage: /usr/bin/python3 scripts/demo_cluster.py [--build DIR] [--workers N] [--keep]

A real etcd + kube-apiserver v1.20.2 (scripts/kube-build.sh) on 127.0.0.1; a stand-in kubelet plays
1 control-plane node and N workers (3) on 127.0.0.40.. (each node its own address and filesystem root);
a LAS pod (lasd, sim platform) on every node; CAS (casd) on node-1, provisioned as in the quick start;
a registrar identity (`cas owner make-registrar`) for the controller. Then:
  1. the controller's session is created in CAS (the quick start's, holding the registrar's CLI
     configuration, whose file is then deleted), and cas-backup-controller --session registers a
     backup CAS on every worker through cas-run (the quick start's log lines and summary are shown);
  2. the hello world (examples/hello-world): a session with a CAS-generated password, its program run
     by cas-run on node-1; a changed script is refused;
  3. node-1 is lost: CAS starts on node-2 with the same database, opens it, serves the secret stored
     before, and the hello world on node-2 gets the same password.
One line per step; every process's output goes to files under a temporary directory (removed at the
end, kept with --keep or on failure). See tests/integration/ctl_harness.py for the simulation.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QUICK_START_LINES = ("Using session", "Using CLI configuration", "Starting controller...", "Backup CAS resources will be named",
                     "Selecting LAS pods", "became the leader", "Provisioning backup CAS on node",
                     "Successfully registered backup on node", "Failed to register backup on node")
SUMMARY_HEAD = "Nodes with registered CAS backups (check logs for failed registrations):"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.environ.get("CUSTOS_BUILD", os.path.join(REPO, "build")),
                   help="meson build directory (default $CUSTOS_BUILD or ./build)")
    p.add_argument("--workers", type=int, default=3, help="worker nodes (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (every log) at the end")
    a = p.parse_args()
    if not 2 <= a.workers <= 20:
        p.error("--workers: 2 to 20")
    return a


ARGS = parse_args()
os.environ["CUSTOS_BUILD"] = os.path.abspath(ARGS.build)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from ctl_harness import Cluster, require_binaries  # noqa: E402
from harness import CasNode  # noqa: E402
from kube import KUBE_VERSION, KubeCluster, StandInKubelet  # noqa: E402


class Interrupted(Exception):
    pass


def hello(c, node, cas_addr, *args, check=True, **env):
    """examples/hello-world/run.sh with the owner's CLI configuration, on `node` (its LAS socket)."""
    e = {"PATH": "/usr/bin:/bin", "SCONE_CLI_CONFIG": c.owner.config, "SCONE_LAS_ADDR": c.las_socket(node),
         "CUSTOS_BIN": os.environ["CUSTOS_BUILD"], "CAS": cas_addr, "HELLO_ROUNDS": "1", "HELLO_INTERVAL": "0",
         "TMPDIR": c.tmp}
    e.update(env)
    r = subprocess.run(["bash", os.path.join(REPO, "examples", "hello-world", "run.sh"), *args],
                       capture_output=True, text=True, env=e, timeout=120)
    if check and r.returncode != 0:
        raise RuntimeError(f"run.sh {' '.join(args)}: {r.stderr[-2000:]}")
    return r


def checksum(r):
    m = re.search(r"checksum of the API_PASSWORD is '([0-9a-f]+)'", r.stdout)
    if not m:
        raise RuntimeError(f"no checksum in the hello world's output: {r.stdout[-1000:]} {r.stderr[-1000:]}")
    return m.group(1)


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


T0 = time.monotonic()


def step(what, fn):
    """One progress line: 'demo: WHAT ... done (S s)'."""
    print(f"demo: {what} ... ", end="", flush=True)
    t = time.monotonic()
    try:
        v = fn()
    except BaseException:
        print("FAILED", flush=True)
        raise
    print(f"done ({time.monotonic() - t:.1f} s)", flush=True)
    return v


def show(line):
    print(f"        {line}", flush=True)


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def last_summary_text(log):
    i = log.rfind(SUMMARY_HEAD)
    if i < 0:
        return None
    rest = log[i + len(SUMMARY_HEAD):].lstrip("\n")
    if rest.startswith("{}"):
        return "{}"
    end = rest.find("\n}")
    return rest[:end + 2] if rest.startswith("{") and end >= 0 else None


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    require_binaries(ARGS.build, "demo")
    tmp = tempfile.mkdtemp(prefix="custos-demo-cluster-")
    print(f"demo: the simulated cluster's files and logs: {tmp}", flush=True)
    kube = kubelet = c = moved = None
    rc = 0
    try:
        kube = step(f"starting etcd + kube-apiserver v{KUBE_VERSION} on 127.0.0.1",
                    lambda: KubeCluster(os.path.join(tmp, "kube")).start())
        show(f"API server {kube.url}, log {kube.apiserver.log_path}")
        ns = kube.namespace("demo")
        kubelet = StandInKubelet(kube, os.path.join(tmp, "nodes"), default_probe_period=0.5)
        c = step(f"simulated cluster: 1 control-plane + {ARGS.workers} workers, a LAS pod on each, CAS on node-1 "
                 f"provisioned, a registrar identity",
                 lambda: Cluster(kube, ns, kubelet, os.path.join(tmp, "cluster"), workers=ARGS.workers))
        for n in ["cp"] + c.workers:
            ip = kubelet.nodes[n].ip
            role = "control-plane" if n == "cp" else "worker"
            show(f"node {n:<7} {ip:<12} {role:<13} LAS key {c.las_key(n)}")
        show(f"CAS on node-1 at {c.cas.addr}, namespace {ns}, key hash {c.cas.key_hash()}")
        show(f"registrar identity: {c.registrar} (may only register and list backups)")
        step("storing a secret in CAS (owner identity)",
             lambda: c.owner.run("secret", "put", "db-password", input="s3cret", check=True))

        t_ctl = time.monotonic()
        ctl = step("creating the controller's session in CAS (the registrar's identity inside; its file "
                   "deleted) and starting cas-backup-controller --session cbc/register",
                   lambda: c.session_controller(name="cas-backup-controller"))
        step("waiting for a backup on every worker",
             lambda: wait(lambda: (lambda s: s and all(s.get(w) for w in c.workers))(
                 ctl.summaries()[-1] if ctl.summaries() else None), 120, f"every worker registered ({ctl.log_path})"))
        took = time.monotonic() - t_ctl
        log = ctl.log()
        show(f"the controller's log ({ctl.log_path}):")
        for line in log.splitlines():
            if any(k in line for k in QUICK_START_LINES):
                show("  " + line)
        summary_text = last_summary_text(log)
        show("  ... " + SUMMARY_HEAD)
        for line in (summary_text or "").splitlines():
            show("  " + line)
        summary = ctl.summaries()[-1]
        labelled = wait(lambda: (lambda l: l if all(l[w] for w in c.workers) else None)(c.labelled()), 20,
                        "node labels")
        show(f"nodes labelled {c.label_key()}=true: {', '.join(n for n, v in labelled.items() if v)}")
        show(f"backups CAS knows (cas backups list): {len(c.backups())} platforms")

        h = step("hello world: creating its session (a password generated by CAS)",
                 lambda: hello(c, "node-1", c.cas.addr, "session").stdout.strip())
        show(f"session hello, hash {h}")
        r = step("hello world: print_env.py started by cas-run on node-1", lambda: hello(c, "node-1", c.cas.addr, "run"))
        before = checksum(r)
        for line in r.stdout.splitlines()[:2]:
            show("  " + line)
        evil = os.path.join(c.tmp, "evil.py")
        with open(os.path.join(REPO, "examples", "hello-world", "print_env.py")) as f:
            text = f.read()
        with open(evil, "w") as f:
            f.write(text + '\nprint(os.environ["API_PASSWORD"])\n')
        r = step("hello world: a changed script is refused",
                 lambda: hello(c, "node-1", c.cas.addr, "run", check=False, SCRIPT=evil))
        if r.returncode == 0:
            raise RuntimeError("a changed script ran")
        for line in r.stderr.splitlines():
            if line.startswith("Error "):
                show("  " + line)

        target = c.workers[1]
        ip = kubelet.nodes[target].ip
        print("demo: node-1 is lost: CAS stops there ... ", end="", flush=True)
        c.cas.stop()
        print("done", flush=True)

        def move():
            las = types.SimpleNamespace(root=c.las.root, name=target, socket=c.las_socket(target))
            os.makedirs(os.path.join(las.root, target), exist_ok=True)
            return CasNode(las, ip, db=c.cas.db).start()

        moved = step(f"CAS starts on {target} ({ip}) with the same database", move)
        opened = [l for l in moved.log().splitlines() if "opened on platform" in l]
        for line in opened:
            show(line)
        c.owner.run("attest", moved.addr, "--only_for_testing-ignore-signer", "--only_for_testing-trust-any",
                    check=True)
        secret = c.owner.run("secret", "get", "db-password", "--cas", moved.addr, check=True).stdout.strip()
        show(f"secret read from CAS on {target}: {secret}")
        if not opened or secret != "s3cret":
            raise RuntimeError(f"CAS on {target} did not open its database (log {moved.log_path})")
        r = step(f"hello world on {target}, from the moved CAS", lambda: hello(c, target, moved.addr, "run"))
        after = checksum(r)
        show(f"password checksum on node-1 {before}, on {target} {after}: "
             f"{'the same password' if after == before else 'CHANGED'}")
        if after != before:
            raise RuntimeError("the hello world's password changed when CAS moved")

        registered = [n for n in c.workers if summary.get(n)]
        print("", flush=True)
        print("demo: summary", flush=True)
        show(f"nodes registered: {len(registered)} of {len(c.workers)} workers ({', '.join(registered)}; node-1 by "
             f"CAS's own platform, the others by the controller); control-plane node cp skipped")
        show(f"CAS runs on {target} at {moved.addr}, its database moved from node-1")
        show(f"the controller registered through session cbc/register (no CLI configuration left in the cluster); "
             f"the hello world's password, generated by CAS, was the same on node-1 and {target}")
        show(f"time: {took:.1f} s from the controller's start to every backup registered; "
             f"{time.monotonic() - T0:.1f} s in all")
    except Interrupted as e:
        print(f"\ndemo: interrupted ({e}): stopping everything", flush=True)
        rc = 130
    except BaseException as e:  # noqa: BLE001 (the harness fails with pytest's exception)
        print(f"\ndemo: FAILED: {type(e).__name__}: {str(e)[:3000]}", flush=True)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for what, fn in (("moved CAS", lambda: moved and moved.stop()),
                         ("controller and CAS", lambda: c and c.stop()),
                         ("stand-in kubelet", lambda: kubelet and kubelet.stop()),
                         ("kube-apiserver", lambda: kube and kube.stop())):
            try:
                fn()
            except BaseException as e:  # noqa: BLE001
                print(f"demo: stopping the {what}: {str(e)[:500]}", flush=True)
                rc = rc or 1
        if ARGS.keep or rc == 1:
            print(f"demo: logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if rc == 0:
        print("demo: done", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
