# SPDX-License-Identifier: Apache-2.0
"""A simulated cluster for cas-backup-controller: the real kube-apiserver (kube.py), a stand-in kubelet,
LAS pods, the primary casd on node-1 (provisioned), a registrar CLI configuration, and the controller
as a process. Used by tests/integration/test_controller.py, bench/controller.py and the demo."""
import hashlib
import json
import os
import re
import types
import urllib.request

from harness import CasNode, Daemon, binary, free_port, provision_owner, wait_for
from kube import KUBE_BIN, las_pod, las_public_key

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LAS_SELECTOR = "app.kubernetes.io/name=las"


class Controller(Daemon):
    """cas-backup-controller as a process, its settings in the environment as in a pod."""

    def __init__(self, path, env, name="controller", args=()):
        self.log_path = os.path.join(path, f"{name}.log")
        self.env = env
        self.extra = list(args)
        self.proc = None
        self.ready_marker = "Starting controller..."
        self.label = f"cas-backup-controller {name}"

    def args(self):
        return [binary("cas-backup-controller")] + self.extra

    def start(self, expect_fail=False, timeout=15):
        saved = os.environ.copy()
        os.environ.clear()
        os.environ.update(self.env)
        try:
            return super().start(expect_fail=expect_fail, timeout=timeout)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def count(self, text):
        return self.log().count(text)

    def wait_log(self, text, count=1, timeout=60):
        wait_for(lambda: self.count(text) >= count, timeout=timeout,
                 what=f"'{text}' x{count} in the controller log:\n{self.log()[-4000:]}")

    def summaries(self):
        """Every summary the controller printed, as dicts."""
        out = []
        for m in re.finditer(r"Nodes with registered CAS backups \(check logs for failed registrations\):\n(\{.*?\n\}|\{\})",
                             self.log(), re.S):
            out.append(json.loads(m.group(1)))
        return out

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.env['METRICS_ADDR']}/metrics", timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                values[k] = float(v)
        return values


class Cluster:
    """A control-plane node and workers, a LAS pod on each, the primary CAS on node-1 (provisioned),
    a registrar CLI configuration, and controllers."""

    def __init__(self, kube, ns, kubelet, tmp_path, workers=3, las=True, las_args=None, labels=None):
        self.kube, self.ns, self.kubelet, self.tmp = kube, ns, kubelet, str(tmp_path)
        self.controllers = []
        kubelet.add_node("cp", "127.0.0.40", control_plane=True)
        self.workers = [f"node-{i}" for i in range(1, workers + 1)]
        for i, n in enumerate(self.workers, 1):
            kubelet.add_node(n, f"127.0.0.{40 + i}", labels=(labels or {}).get(n))
        for n in ["cp"] + self.workers:
            self.start_las(n, (las_args or {}).get(n, ()))
        # the primary: casd on node-1 with node-1's lasd (the LAS pod's socket on that node)
        las = types.SimpleNamespace(root=os.path.join(self.tmp, "cas"), name="node-1",
                                    socket=self.las_socket("node-1"))
        os.makedirs(os.path.join(las.root, las.name), exist_ok=True)
        self.cas = CasNode(las, "127.0.0.41").start()
        self.owner = provision_owner(self.cas, tmp_path)
        self.registrar = os.path.join(self.tmp, "registrar", "config")
        self.owner.run("owner", "make-registrar", "--out", self.registrar, check=True)
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        kube.apply_rbac(os.path.join(REPO, "deploy", "rbac.yaml"), ns, "cas-backup-controller")
        kube.kubeconfig_token(self.kubeconfig, kube.service_account_token(ns, "cas-backup-controller"))
        self.las = las

    def las_socket(self, node):
        return os.path.join(self.kubelet.node_root(node), "run/custos/las.sock")

    def start_las(self, node, extra=()):
        name = f"las-{node}"
        self.kube.create(self.ns, las_pod(node, name, extra_args=extra))
        self.kubelet.wait_pod(self.ns, name, ready=True)
        if "--log" in extra:  # it logs no key: wait for its socket
            wait_for(lambda: os.path.exists(self.las_socket(node)), timeout=10, what=f"LAS socket of {node}")
            return
        wait_for(lambda: las_public_key(self.kubelet.pod_log(self.ns, name) or ""), timeout=10,
                 what=f"LAS key of {node}")

    def las_key(self, node):
        return las_public_key(self.kubelet.pod_log(self.ns, f"las-{node}"))

    def restart_las(self, node):
        name = f"las-{node}"
        self.kube.must("DELETE", f"/api/v1/namespaces/{self.ns}/pods/{name}", ok=(200, 202))
        self.kubelet.wait_gone(self.ns, name)
        self.start_las(node)

    def env(self, **extra):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp,
               "KUBECONFIG": self.kubeconfig, "SCONE_CLI_CONFIG": self.registrar, "NAMESPACE": self.ns,
               "LAS_SELECTOR_LABEL": LAS_SELECTOR, "LAS_NAMESPACE": self.ns, "BACKUP_CAS_IMAGE": "custos/cas:dev",
               "METRICS_ADDR": f"127.0.0.1:{free_port('127.0.0.1')}", "RETRY_BASE_SECONDS": "1",
               "RETRY_MAX_SECONDS": "4", "BACKUP_READY_TIMEOUT_SECONDS": "20", "LEASE_DURATION_SECONDS": "6",
               "CAS_CLI": binary("cas")}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update({k: str(v) for k, v in extra.items() if v is not None})
        for k in [k for k, v in extra.items() if v is None]:
            env.pop(k, None)
        return env

    def controller(self, name="controller", args=(), **extra):
        c = Controller(self.tmp, self.env(**extra), name=name, args=args)
        self.controllers.append(c)
        return c.start()

    def session_controller(self, name="controller", **extra):
        """The controller in --session mode (the reference's recommended one): the owner creates the
        quick start's session holding the registrar's CLI configuration, the registrar's file is
        deleted, and the controller's environment names CAS's address and key hash, no configuration."""
        with open(self.registrar) as f:
            config_text = f.read()
        spec = os.path.join(self.tmp, "cbc.yaml")
        with open(spec, "w") as f:
            f.write(controller_session(config_text))
        self.owner.run("session", "create", spec, check=True)
        os.unlink(spec)
        os.unlink(self.registrar)
        return self.controller(name=name, SCONE_CLI_CONFIG=None, CAS_SESSION="cbc/register", CAS=self.cas.addr,
                               CAS_KEY_HASH=self.cas.key_hash(), CAS_NAME="mycas", CAS_RUN=binary("cas-run"),
                               CAS_RUN_LAS_ADDR=self.las_socket("node-1"), **extra)

    def node(self, name):
        return self.kube.must("GET", f"/api/v1/nodes/{name}")

    def label_key(self):
        return f"cas-registered-mycas.{self.ns}"

    def labelled(self):
        key = self.label_key()
        return {n: (self.node(n)["metadata"].get("labels") or {}).get(key) == "true" for n in ["cp"] + self.workers}

    def backups(self):
        r = self.owner.run("backups", "list", "--json", check=True)
        return {b["platform_id"]: b for b in json.loads(r.stdout)}

    def backup_pods(self):
        items = self.kube.must("GET", f"/api/v1/namespaces/{self.ns}/pods?labelSelector="
                                      "app.kubernetes.io%2Fmanaged-by%3Dcas-backup-controller")["items"]
        return [p["metadata"]["name"] for p in items]

    def events(self, reason):
        """This test's Events: node Events live in `default` (cluster-scoped objects), the Lease's here."""
        items = self.kube.must("GET", f"/api/v1/namespaces/{self.ns}/events")["items"] + \
            self.kube.must("GET", "/api/v1/namespaces/default/events")["items"]
        return [e for e in items if e.get("reason") == reason and f"(namespace {self.ns})" in e.get("message", "")]

    def stop(self):
        for c in self.controllers:
            c.stop()
        self.cas.stop()




def controller_session(config_text, path="/etc/custos/registrar.json"):
    """The quick start's session for the controller: the registrar's CLI configuration as an
    injection file, `cas register-backup @@2` and `cas backups list --json`, cas's measurement."""
    with open(binary("cas"), "rb") as f:
        cas_hash = hashlib.sha256(f.read()).hexdigest()
    content = "\n".join("          " + line for line in config_text.splitlines())
    service = """  - name: {name}
    image_name: cli
    mrenclaves: ["{cas}"]
    command: {command}
    environment:
      SCONE_CLI_CONFIG: {path}
      "@@SCONE_LAS_ADDR": ""
    pwd: /
"""
    return ('name: cbc\nversion: "0.3"\nservices:\n' +
            service.format(name="register", cas=cas_hash, command="cas register-backup @@2", path=path) +
            service.format(name="list", cas=cas_hash, command="cas backups list --json", path=path) +
            f"images:\n  - name: cli\n    injection_files:\n      - path: {path}\n        content: |\n{content}\n")


def wait_all_registered(ctl, nodes, timeout=90):
    wait_for(lambda: ctl.summaries() and all(ctl.summaries()[-1].get(n) for n in nodes), timeout=timeout,
             what=f"every node registered:\n{ctl.log()[-4000:]}")


def require_binaries(build, prog):
    """Exits naming what to run when a binary the simulated cluster needs is missing (bench, demo)."""
    import sys
    for b in ("cas-backup-controller", "casd", "lasd", "cas"):
        if not os.access(os.path.join(build, b), os.X_OK):
            sys.exit(f"{prog}: {build}/{b} missing: build first (scripts/build.sh build)")
    if not os.access(os.path.join(KUBE_BIN, "kube-apiserver"), os.X_OK):
        sys.exit(f"{prog}: no kube-apiserver in {KUBE_BIN}: run bash scripts/kube-build.sh first")
