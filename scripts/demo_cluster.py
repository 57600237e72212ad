#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The cluster demo (the default of scripts/demo.sh): docs/quickstart.md on the local control plane.

Usage: /usr/bin/python3 scripts/demo_cluster.py [--build DIR] [--workers N] [--keep]

etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 (scripts/kube-build.sh) on
127.0.0.1; a stand-in kubelet plays a control-plane node and N workers (3), runs each pod's container
as a process of the build directory (the charts' images name it) and maps PersistentVolumes to one
directory every node shares (network storage's stand-in). Then the guide's commands, with helm and
kubectl (scripts/helm.sh):
  1. helm install las, helm install cas (persistence on the shared volume), key hash and token from
     CAS's log, the owner identity with openssl, cas provision, a secret stored;
  2. the controller's session created (the registrar's identity inside, its file deleted), helm
     install cbc: a backup on every worker, nodes labelled (the controller's log lines and summary);
  3. the hello world (examples/hello-world): a session with a CAS-generated password, its program
     run by cas-run on CAS's node; a changed script is refused;
  4. helm upgrade cas --set backup.requireRegisteredNode=true: CAS restarts on a registered node;
  5. CAS's node is lost: NotReady, the force-delete of cas-0 (Kubernetes 1.20), the real scheduler puts
     CAS on another registered node, which opens the same database: the secret, and the hello world's
     password is the same.
One line per step, a summary at the end. Every process's output goes to files under a temporary
directory (removed at the end, kept with --keep or on failure). See tests/integration/quickstart.py.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QUICK_START_LINES = ("Using session", "Starting controller...", "Backup CAS resources will be named",
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

import quickstart as guide  # noqa: E402
from ctl_harness import require_binaries  # noqa: E402
from kube import KUBE_VERSION  # noqa: E402


class Interrupted(Exception):
    pass


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


def last_summary_text(log):
    i = log.rfind(SUMMARY_HEAD)
    if i < 0:
        return None
    rest = log[i + len(SUMMARY_HEAD):].lstrip("\n")
    if rest.startswith("{}"):
        return "{}"
    end = rest.find("\n}")
    return rest[:end + 2] if rest.startswith("{") and end >= 0 else None


def new_cas_pod(q, old_uid):
    p = q.pod("cas-0")
    return p if p and p["metadata"]["uid"] != old_uid and q.ready(p) else None


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    require_binaries(ARGS.build, "demo")
    tmp = tempfile.mkdtemp(prefix="custos-demo-cluster-")
    print(f"demo: the local cluster's files and logs: {tmp}", flush=True)
    q = None
    rc = 0
    try:
        q = guide.QuickStart(tmp, workers=ARGS.workers)
        step(f"starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler v{KUBE_VERSION}; "
             f"a stand-in kubelet for 1 control-plane node + {ARGS.workers} workers", q.start)
        show(f"API server {q.kube.url}; kubeconfig {q.kubeconfig}; the guide's working directory {q.work}")
        for n in ["cp"] + q.workers:
            show(f"node {n:<7} {q.kubelet.nodes[n].ip:<12} {'control-plane' if n == 'cp' else 'worker'}")

        step("helm install las charts/las: a LAS pod on every node (DaemonSet)", q.install_las)
        step("kubectl apply -f deploy/quickstart/shared-storage.yaml; helm install cas charts/cas "
             "--set persistence.enabled=true ...; key hash and token from `kubectl logs cas-0`", q.install_cas)
        first = q.pod("cas-0")
        show(f"cas-0 on {first['spec']['nodeName']} at {q.vars['CAS_IP']}:{q.vars['CAS_PORT']} (placed by the "
             f"scheduler), claim data-cas-0 bound to the shared volume; key hash {q.vars['CAS_KEY_HASH']}")
        step("owner identity (openssl genrsa + pkcs8); cas provision; a secret stored",
             lambda: (q.provision(), q.put_secret()))

        t_ctl = time.monotonic()
        step("cas owner make-registrar; the controller's session cbc created (registrar inside, files deleted)",
             q.create_session)
        step("helm install cbc charts/cas-backup-controller --set session=cbc/register ...",
             lambda: q.install_controller("--set retryBaseSeconds=2", "--set retryMaxSeconds=8"))
        summary = step("waiting for a backup on every worker", q.wait_registered)
        took = time.monotonic() - t_ctl
        log = q.controller_log()
        show("the controller's log (kubectl logs -l app.kubernetes.io/name=cas-backup-controller):")
        for line in log.splitlines():
            if any(k in line for k in QUICK_START_LINES):
                show("  " + line)
        show("  ... " + SUMMARY_HEAD)
        for line in (last_summary_text(log) or "").splitlines():
            show("  " + line)
        labelled = step("waiting for the node labels", lambda: q.wait(
            lambda: (lambda l: l if all(l[w] for w in q.workers) else None)(q.labelled()), 30, "node labels"))
        show(f"nodes labelled {q.label_key()}=true: {', '.join(n for n, v in sorted(labelled.items()) if v)}")

        node = first["spec"]["nodeName"]
        h = step("hello world: creating its session (a password generated by CAS)",
                 lambda: q.hello(node, "session").stdout.strip())
        show(f"session hello, hash {h}")
        r = step(f"hello world: print_env.py started by cas-run on {node}", lambda: q.hello(node, "run"))
        before = q.checksum(r)
        for line in r.stdout.splitlines()[:2]:
            show("  " + line)
        evil = os.path.join(tmp, "evil.py")
        with open(os.path.join(REPO, "examples", "hello-world", "print_env.py")) as f:
            text = f.read()
        with open(evil, "w") as f:
            f.write(text + '\nprint(os.environ["API_PASSWORD"])\n')
        r = step("hello world: a changed script is refused", lambda: q.hello(node, "run", check=False, SCRIPT=evil))
        if r.returncode == 0:
            raise RuntimeError("a changed script ran")
        for line in r.stderr.splitlines():
            if line.startswith("Error "):
                show("  " + line)

        uid = first["metadata"]["uid"]
        step("helm upgrade cas --set backup.requireRegisteredNode=true: CAS restarts on a registered node",
             lambda: (q.require_registered_node(), q.wait(lambda: new_cas_pod(q, uid), 120, "cas-0 restarted")))
        pod = q.pod("cas-0")
        node = pod["spec"]["nodeName"]
        show(f"cas-0 on {node} (labelled: {q.labelled()[node]}); secret: {q.read_secret()}")

        t_move = time.monotonic()
        step(f"{node}, CAS's node, is lost (its stand-in kubelet stops: processes killed, no heartbeat)",
             lambda: q.kubelet.stop_node(node))
        step(f"waiting for {node} NotReady (kubectl get nodes; grace {q.grace} s)",
             lambda: q.wait(lambda: q.node_ready(node) != "True", q.grace + 60, f"{node} NotReady"))
        step("kubectl delete pod cas-0 --grace-period=0 --force (a 1.20 StatefulSet pod on a lost node stays "
             "until then)", lambda: q.sh(guide.FORCE_DELETE))
        after = step("waiting for cas-0 Ready on another registered node (the real scheduler)",
                     lambda: q.wait(lambda: new_cas_pod(q, pod["metadata"]["uid"]), 120, "cas-0 Ready"))
        moved = time.monotonic() - t_move
        target = after["spec"]["nodeName"]
        secret = q.read_secret()
        opened = [l for l in q.sh('kubectl logs cas-0 --namespace "$NS"').splitlines() if "opened on platform" in l]
        show(f"cas-0 on {target} at {q.vars['CAS_IP']}, labelled {q.labelled()[target]}; "
             f"{opened[-1].split('INFO: ')[-1] if opened else 'NOT OPENED'}")
        show(f"secret read from CAS on {target}: {secret}")
        if secret != "s3cret" or not q.labelled()[target]:
            raise RuntimeError(f"CAS on {target}: secret {secret!r}, labelled {q.labelled()[target]}")
        r = step(f"hello world on {target}, from the moved CAS", lambda: q.hello(target, "run"))
        after_sum = q.checksum(r)
        show(f"password checksum before {before}, after {after_sum}: "
             f"{'the same password' if after_sum == before else 'CHANGED'}")
        if after_sum != before:
            raise RuntimeError("the hello world's password changed when CAS moved")

        registered = [n for n in q.workers if summary.get(n)]
        print("", flush=True)
        print("demo: summary", flush=True)
        show(f"nodes registered: {len(registered)} of {len(q.workers)} workers ({', '.join(registered)}); "
             f"control-plane node cp skipped (tainted)")
        show(f"CAS runs on {target} at {q.vars['CAS_IP']}:{q.vars['CAS_PORT']}; installed on {first['spec']['nodeName']}, "
             f"restarted on {node} by the upgrade, moved when {node} was lost; same database, same secret, "
             f"same hello-world password")
        show(f"time: {took:.1f} s from the session to every backup registered; {moved:.1f} s from the loss of "
             f"{node} to CAS Ready on {target}; {time.monotonic() - T0:.1f} s in all")
    except Interrupted as e:
        print(f"\ndemo: interrupted ({e}): stopping everything", flush=True)
        rc = 130
    except BaseException as e:  # noqa: BLE001
        print(f"\ndemo: FAILED: {type(e).__name__}: {str(e)[:3000]}", flush=True)
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if q is not None:
                q.stop()
        except BaseException as e:  # noqa: BLE001
            print(f"demo: stopping the local cluster: {str(e)[:500]}", flush=True)
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
