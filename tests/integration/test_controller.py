# SPDX-License-Identifier: Apache-2.0
"""cas-backup-controller against a real kube-apiserver + etcd (kube.py), with real lasd pods, a real
primary casd, real backup casd pods and the real cas CLI. The kubelet is a stand-in (StandInKubelet:
no kubelet or container runtime can run here); everything the controller sees goes through the real
API (list, watch, pods/log, patches, Leases, Events, RBAC)."""
import json
import os
import re
import shutil
import subprocess
import time
import types
import urllib.request

import pytest

from harness import (CasNode, Cli, Daemon, binary, free_port, provision_owner, wait_for)
from kube import las_pod, las_public_key

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


@pytest.fixture
def cluster(kube, kube_ns, kubelet, tmp_path):
    made = []

    def make(**kw):
        c = Cluster(kube, kube_ns, kubelet, tmp_path, **kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.stop()


def wait_all_registered(ctl, nodes, timeout=90):
    wait_for(lambda: ctl.summaries() and all(ctl.summaries()[-1].get(n) for n in nodes), timeout=timeout,
             what=f"every node registered:\n{ctl.log()[-4000:]}")


def test_registers_every_worker_then_cas_moves(cluster):
    """The quick start: every worker registered (one by its LAS key alone: CAS's own), the control-plane
    node skipped, the reference's log lines, labels and annotations, no pod left, metrics; then CAS,
    moved to a registered node, opens its database."""
    c = cluster()
    c.owner.run("secret", "put", "db-password", input="s3cret", check=True)
    ctl = c.controller()
    wait_all_registered(ctl, c.workers)
    log = ctl.log()
    for line in ["Using CLI configuration", "Starting controller...",
                 "Backup CAS resources will be named 'cas-backup'-<node_name>",
                 f"Selecting LAS pods that match selector {LAS_SELECTOR} on namespace {c.ns}",
                 "Provisioning backup CAS on node node-2: cas-backup-node-2",
                 "Successfully registered backup on node node-2",
                 "Provisioning backup CAS on node node-3: cas-backup-node-3",
                 "Successfully registered backup on node node-3", "Backup CAS registered"]:
        assert line in log, line
    assert "on node cp" not in log and "node node-1:" not in log  # control plane skipped; CAS's own node holds the primary
    summary = ctl.summaries()[-1]
    assert summary == {"node-1": True, "node-2": True, "node-3": True}
    backups = c.backups()
    for n in c.workers:
        assert c.las_key(n) in backups, n
    wait_for(lambda: c.labelled() == {"cp": False, "node-1": True, "node-2": True, "node-3": True}, timeout=10,
             what="labels")
    ann = c.node("node-2")["metadata"]["annotations"]
    assert ann[f"custos.io/platform-mycas.{c.ns}"] == c.las_key("node-2")
    assert ann[f"custos.io/boot-id-mycas.{c.ns}"] == c.node("node-2")["status"]["nodeInfo"]["bootID"]
    wait_for(lambda: c.backup_pods() == [], timeout=20, what="backup pods deleted")
    m = ctl.metrics()
    assert m["custos_backup_controller_nodes_eligible"] == 3
    assert m["custos_backup_controller_nodes_registered"] == 3
    assert m["custos_backup_controller_backup_nodes"] == 2
    assert m['custos_backup_controller_registrations_total{result="success"}'] == 2
    assert m['custos_backup_controller_registrations_total{result="failure"}'] == 0
    assert m["custos_backup_controller_registration_duration_seconds_count"] == 2
    assert m["custos_backup_controller_leader"] == 1
    assert m["custos_backup_controller_backups_below_minimum"] == 0
    wait_for(lambda: len(c.events("BackupRegistered")) == 2, timeout=10, what="an Event per registration")
    # CAS's node is lost: its database, moved to a registered node, opens there
    c.cas.stop()
    las2 = types.SimpleNamespace(root=c.las.root, name="node-2", socket=c.las_socket("node-2"))
    os.makedirs(os.path.join(las2.root, "node-2"), exist_ok=True)
    moved = CasNode(las2, "127.0.0.42", db=c.cas.db).start()
    try:
        assert f"database {moved.db} opened on platform {c.las_key('node-2')}" in moved.log()
        c.owner.run("attest", moved.addr, "--only_for_testing-ignore-signer", "--only_for_testing-trust-any", check=True)
        assert c.owner.run("secret", "get", "db-password", "--cas", moved.addr, check=True).stdout == "s3cret\n"
    finally:
        moved.stop()


def test_selector_cordon_and_new_node_without_resync(cluster, kubelet):
    """SELECTOR_LABEL honoured; a cordoned node skipped, registered once uncordoned; a node that joins
    is registered at once (the resync is an hour away)."""
    sel = {"custos.io/backup": "yes"}
    c = cluster(labels={"node-1": sel, "node-2": sel})
    kubelet.cordon("node-2")
    ctl = c.controller(SELECTOR_LABEL="custos.io/backup=yes", CONTROLLER_LOOP_INTERVAL_SECONDS=3600)
    wait_for(lambda: ctl.summaries(), timeout=30, what="a summary")
    assert ctl.summaries()[-1] == {"node-1": True, "node-2": False}  # node-3 is not selected
    assert ctl.count("Provisioning backup CAS on node node-2") == 0
    kubelet.uncordon("node-2")
    ctl.wait_log("Successfully registered backup on node node-2")
    kubelet.add_node("node-4", "127.0.0.44", labels=sel)
    c.workers.append("node-4")
    c.start_las("node-4")
    ctl.wait_log("Successfully registered backup on node node-4")
    assert ctl.count("Provisioning backup CAS on node node-3") == 0
    assert c.labelled()["node-3"] is False and c.labelled()["node-4"] is True


def test_reboots_keep_labels_and_a_new_platform_is_registered_again(cluster, kubelet):
    """Every node restarts (new boot IDs, same platforms): nothing is registered again and no label
    goes. Then node-3's hardware changes (new LAS key): its label is removed, it is registered again
    and labelled again."""
    c = cluster()
    ctl = c.controller()
    wait_all_registered(ctl, c.workers)
    wait_for(lambda: all(c.labelled()[n] for n in c.workers), timeout=10, what="labels")
    provisioned = ctl.count("Provisioning backup CAS")
    for n in ["cp"] + c.workers:
        kubelet.restart_node(n)
    for n in c.workers:
        wait_for(lambda n=n: c.kube.must("GET", f"/api/v1/namespaces/{c.ns}/pods/las-{n}")["status"]
                 ["containerStatuses"][0]["restartCount"] >= 1, timeout=20, what="LAS restarted")
    time.sleep(4)
    assert ctl.count("Provisioning backup CAS") == provisioned
    assert all(c.labelled()[n] for n in c.workers)
    old = c.las_key("node-3")
    kubelet.change_platform("node-3")
    c.restart_las("node-3")
    assert c.las_key("node-3") != old
    ctl.wait_log("LAS key of node node-3 changed")
    ctl.wait_log("Successfully registered backup on node node-3", count=2)
    assert "node node-3: label " + c.label_key() + " removed" in ctl.log()
    wait_for(lambda: c.labelled()["node-3"], timeout=10, what="node-3 labelled again")
    assert c.las_key("node-3") in c.backups()


def test_boot_id_change_without_las_pods(cluster, kubelet):
    """Without LAS_SELECTOR_LABEL a changed boot ID means register again (the reference's fallback)."""
    c = cluster()
    ctl = c.controller(LAS_SELECTOR_LABEL=None)
    assert "No LAS_SELECTOR_LABEL" in ctl.log()
    wait_all_registered(ctl, c.workers)
    assert ctl.count("Successfully registered backup on node node-2") == 1
    kubelet.restart_node("node-2")
    ctl.wait_log("Successfully registered backup on node node-2", count=2)
    assert c.labelled()["node-2"]


def test_failing_node_backs_off_while_others_succeed(cluster):
    """node-3's TCB is lower than the primary's: refused, retried with growing delays, while node-2 is
    registered; fewer than MIN_BACKUPS backups: a warning, an Event, a metric."""
    c = cluster(las_args={"node-3": ("--sim-tcb", "0")})
    ctl = c.controller(MIN_BACKUPS=2)
    ctl.wait_log("Successfully registered backup on node node-2")
    ctl.wait_log("Failed to register backup on node node-3", count=3, timeout=60)
    times = [time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
             for m in re.finditer(r"^(\S+ \S+),\d+ \S+ Failed to register backup on node node-3", ctl.log(), re.M)]
    assert "TCB 0 is lower than the primary's TCB 1" in ctl.log()
    assert len(times) >= 3
    ctl.wait_log("node(s) other than CAS's own hold a registered backup (MIN_BACKUPS=2)")
    m = ctl.metrics()
    assert m['custos_backup_controller_registrations_total{result="failure"}'] >= 3
    assert m["custos_backup_controller_backups_below_minimum"] == 1
    assert c.events("TooFewBackups") and c.events("BackupRegistrationFailed")
    assert ctl.summaries()[-1]["node-3"] is False


def test_restart_repeats_nothing_and_sigterm_cleans_up(cluster):
    """A restarted controller reads the registered state from CAS and the nodes: no pod, no
    registration. SIGTERM releases the Lease and leaves no pod behind."""
    c = cluster()
    ctl = c.controller()
    wait_all_registered(ctl, c.workers)
    ctl.stop()
    assert "Lease" in ctl.log() and "released" in ctl.log()
    lease = c.kube.must("GET", f"/apis/coordination.k8s.io/v1/namespaces/{c.ns}/leases/cas-backup-controller-mycas")
    assert lease["spec"].get("holderIdentity", "") == ""
    before = ctl.count("Provisioning backup CAS")
    ctl.start()
    wait_for(lambda: len(ctl.summaries()) >= 2, timeout=30, what="a second summary")
    assert ctl.summaries()[-1] == {"node-1": True, "node-2": True, "node-3": True}
    assert ctl.count("Provisioning backup CAS") == before
    assert c.backup_pods() == []


def test_two_replicas_one_leader(cluster):
    c = cluster()
    a = c.controller(name="a", POD_NAME="replica-a")
    b = c.controller(name="b", POD_NAME="replica-b")
    wait_all_registered(a if "became the leader" in a.log() else b, c.workers)
    leaders = [x for x in (a, b) if "became the leader" in x.log()]
    assert len(leaders) == 1
    standby = b if leaders[0] is a else a
    assert standby.count("Provisioning backup CAS") == 0
    assert standby.metrics()["custos_backup_controller_leader"] == 0
    leaders[0].stop()
    standby.wait_log("became the leader", timeout=30)


def test_apiserver_restart_mid_pass_converges(cluster, kube):
    c = cluster()
    ctl = c.controller()
    ctl.wait_log("Provisioning backup CAS on node")
    kube.restart_apiserver()
    wait_all_registered(ctl, c.workers, timeout=120)
    wait_for(lambda: c.backup_pods() == [], timeout=30, what="no backup pod left")


def test_backup_pod_never_ready_is_deleted_and_retried(cluster):
    c = cluster()
    ctl = c.controller(BACKUP_CAS_IMAGE="custos/nonexistent:1", BACKUP_READY_TIMEOUT_SECONDS=3, MIN_BACKUPS=0)
    ctl.wait_log("was not Ready within 3 s, waiting: ErrImagePull", count=2, timeout=60)
    wait_for(lambda: c.backup_pods() == [] or ctl.count("Failed to register") >= 4, timeout=30, what="pods deleted")
    ctl.stop()
    assert c.backup_pods() == []


def test_bad_inputs(cluster, kube, kubelet, tmp_path):
    """Garbage kubeconfig, a wrong token, an API that does not answer, a Node with an absurd field:
    each a clear line, no crash, no pod left."""
    c = cluster(workers=2)
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("clusters: [1, 2\n")
    bad = Controller(str(tmp_path), c.env(KUBECONFIG=str(garbage)), name="garbage")
    assert bad.start(expect_fail=True) == 2
    assert f"kubeconfig {garbage}: not YAML" in bad.log()
    wrong = tmp_path / "wrong-token"
    kube.kubeconfig_token(str(wrong), "not-a-valid-token")
    w = c.controller(name="wrong-token", KUBECONFIG=str(wrong))
    w.wait_log("HTTP 401: Unauthorized")
    w.stop()
    unreachable = tmp_path / "unreachable"
    unreachable.write_text(open(c.kubeconfig).read().replace(kube.url, "https://127.0.0.1:1"))
    u = c.controller(name="unreachable", KUBECONFIG=str(unreachable))
    u.wait_log("Couldn't connect to server (retrying)")
    u.stop()
    kubelet.add_node("node-x", "127.0.0.49")
    node = kube.must("GET", "/api/v1/nodes/node-x")
    node["status"]["nodeInfo"]["bootID"] = "b" * 100000
    kube.patch_status("/api/v1/nodes/node-x", node["status"])
    ctl = c.controller(MIN_BACKUPS=0)
    ctl.wait_log("node node-x skipped: status.nodeInfo.bootID: 100000 bytes, more than 64")
    wait_all_registered(ctl, c.workers)
    assert "node-x" not in ctl.summaries()[-1]
    wait_for(lambda: c.backup_pods() == [], timeout=20, what="no backup pod left")


def test_las_log_without_key_falls_back_to_the_boot_id(cluster):
    """node-2's LAS pod logs no key (lasd --log error): read again for a while, then a clear line and
    the boot ID fallback; node-2 is still registered."""
    c = cluster(las_args={"node-2": ("--log", "error")})
    ctl = c.controller(MIN_BACKUPS=0)
    ctl.wait_log("cannot read the LAS key of node node-2 from pod las-node-2: its log holds no public key; "
                 "using its boot ID", timeout=60)
    wait_all_registered(ctl, c.workers)
