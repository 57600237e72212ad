# SPDX-License-Identifier: Apache-2.0
"""cas-backup-controller against a real kube-apiserver + etcd (kube.py), with real lasd pods, a real
primary casd, real backup casd pods and the real cas CLI. The kubelet is a stand-in (StandInKubelet:
no kubelet or container runtime can run here); everything the controller sees goes through the real
API (list, watch, pods/log, patches, Leases, Events, RBAC)."""
import json
import os
import re
import time
import types

import pytest

from ctl_harness import LAS_SELECTOR, Cluster, Controller, wait_all_registered
from harness import BackupCas, CasNode, provision_owner, wait_for


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
    assert " removed (its platform" not in log  # a label never flaps off right after a registration
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
    ctl.wait_log("No LAS_SELECTOR_LABEL", timeout=10)  # logged after the ready marker
    wait_all_registered(ctl, c.workers)
    assert ctl.count("Successfully registered backup on node node-2") == 1
    kubelet.set_ready("node-3", False)  # not Ready: skipped until it is again
    kubelet.restart_node("node-3")
    kubelet.restart_node("node-2")
    ctl.wait_log("Successfully registered backup on node node-2", count=2)
    assert c.labelled()["node-2"]
    time.sleep(2)
    assert ctl.count("Provisioning backup CAS on node node-3") == 1
    kubelet.set_ready("node-3", True)
    ctl.wait_log("Successfully registered backup on node node-3", count=2)
    assert " removed (its platform" not in ctl.log()  # a new boot ID alone never takes a label away


def test_failing_node_backs_off_while_others_succeed(cluster):
    """node-3's TCB is lower than the primary's: refused, retried with growing delays, while node-2 is
    registered; fewer than MIN_BACKUPS backups: a warning, an Event, a metric."""
    c = cluster(las_args={"node-3": ("--sim-tcb", "0")})
    ctl = c.controller(MIN_BACKUPS=2)
    ctl.wait_log("Successfully registered backup on node node-2")
    ctl.wait_log("Provisioning backup CAS on node node-3", count=4, timeout=60)

    def stamps(what):
        return [time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
                for m in re.finditer(r"^(\S+ \S+),(\d+) \S+ " + what, ctl.log(), re.M)]
    failed, tried = stamps("Failed to register backup on node node-3"), stamps("Provisioning backup CAS on node node-3")
    delays = [float(d) for d in re.findall(r"Failed to register backup on node node-3: .*; retrying in ([0-9.]+) s\)",
                                           ctl.log())]
    assert "TCB 0 is lower than the primary's TCB 1" in ctl.log()
    # RETRY_BASE_SECONDS=1, RETRY_MAX_SECONDS=4: 1, 2, 4, 4 s, each times a jitter of 0.5..1.5 ...
    for i, d in enumerate(delays[:4]):
        base = min(1 << i, 4)
        assert 0.5 * base - 0.05 <= d <= 1.5 * base + 0.05, delays
    # ... and no retry before its delay has passed
    for i in range(3):
        assert tried[i + 1] - failed[i] >= delays[i] - 0.1, (tried, failed, delays)
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
    # which one leads is known only once one says so (choosing at once picked the standby at times)
    wait_for(lambda: "became the leader" in a.log() + b.log(), timeout=30, what="a leader")
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


def test_in_cluster_credentials_follow_a_rotated_token(cluster, kube, tmp_path):
    """In a pod: KUBERNETES_SERVICE_HOST/PORT and the service account's token, CA and namespace. The
    token file is re-read when it changes (the kubelet rotates it): a token that stops being valid is
    seen at once (401 in the log), the next valid one is used without a restart."""
    c = cluster(workers=2)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    host, port = kube.url.replace("https://", "").rsplit(":", 1)
    (sa / "ca.crt").write_text(open(kube.pki.ca).read())
    (sa / "namespace").write_text(c.ns)
    (sa / "token").write_text(kube.service_account_token(c.ns, "cas-backup-controller"))
    env = dict(KUBECONFIG=None, KUBE_SERVICE_ACCOUNT_DIR=str(sa), KUBERNETES_SERVICE_HOST=host,
               KUBERNETES_SERVICE_PORT=port, MIN_BACKUPS=0)
    ctl = c.controller(**env)
    ctl.wait_log(f"credentials: in-cluster ({sa})", timeout=10)
    wait_all_registered(ctl, c.workers)
    tmp = sa / "token.new"
    tmp.write_text("not-a-valid-token")
    os.rename(tmp, sa / "token")
    c.kubelet.add_node("node-9", "127.0.0.59")
    ctl.wait_log("HTTP 401: Unauthorized", timeout=60)
    tmp.write_text(kube.service_account_token(c.ns, "cas-backup-controller"))
    os.rename(tmp, sa / "token")
    c.workers.append("node-9")
    c.start_las("node-9")
    wait_all_registered(ctl, c.workers, timeout=120)


def test_session_mode_registers_with_no_cli_configuration_in_the_cluster(cluster, tmp_path):
    """--session: each registration is `cas-run --session cbc/register -- cas register-backup ADDR`; CAS
    injects the registrar's configuration; the controller's environment names no CLI configuration,
    and after the session is created the registrar's key exists nowhere on disk but in CAS."""
    c = cluster(workers=3)
    with open(c.registrar) as f:
        config_text = f.read()
    key_pem = json.loads(config_text)["identity"]["private_key"]
    key_body = "".join(key_pem.strip().splitlines()[1:-1])
    ctl = c.session_controller()
    wait_all_registered(ctl, c.workers)
    log = ctl.log()
    assert "Using session cbc/register" in log
    assert "Connecting to CAS at" in log and "using service ID cbc/register" in log
    assert "Successfully registered backup on node node-2" in log
    wait_for(lambda: c.labelled() == {"cp": False, "node-1": True, "node-2": True, "node-3": True}, timeout=10,
             what="labels")
    # once each: cas-run's own log lines (naming CAS's platform) are not taken for the registered one
    time.sleep(3)
    assert ctl.count("Successfully registered backup on node") == 2, ctl.log()[-3000:]
    assert " removed (its platform" not in ctl.log()
    # the list at every resync runs quietly: its launcher's INFO lines are not logged (registrations' are)
    assert "key-store entries that can open its database" in ctl.log()
    assert "using service ID cbc/list" not in ctl.log(), ctl.log()[-3000:]
    for n in c.workers:
        assert c.las_key(n) in c.backups(), n
    # the registrar's key: in no file of the test tree (logs, node roots, pods' files) and not under /etc
    for d, _, names in os.walk(str(tmp_path)):
        for name in names:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    assert key_body[:64].encode() not in f.read(), f"the registrar's key is in {p}"
    assert not os.path.exists("/etc/custos/registrar.json"), "an injection file reached the real /etc"


def test_session_mode_needs_an_address_and_a_key_hash(cluster, tmp_path):
    c = cluster(workers=1)
    ctl = Controller(str(tmp_path), c.env(SCONE_CLI_CONFIG=None), name="session",
                     args=["--session", "cbc/register"])
    assert ctl.start(expect_fail=True) == 2
    assert "--session needs CAS" in ctl.log()
    ctl = Controller(str(tmp_path), c.env(SCONE_CLI_CONFIG=None, CAS=c.cas.addr), name="session2",
                     args=["--session", "cbc/register"])
    assert ctl.start(expect_fail=True) == 2
    assert "--session needs CAS_KEY_HASH" in ctl.log()
    ctl = Controller(str(tmp_path), c.env(SCONE_CLI_CONFIG=None, CAS=c.cas.addr), name="session3",
                     args=["--session", "nothing"])
    assert ctl.start(expect_fail=True) == 2
    assert "is not SESSION/SERVICE" in ctl.log()


def test_backup_pod_takes_offers_from_its_own_cas_only(cluster, kubelet, tmp_path):
    """The controller passes CAS's key hash to every backup pod; such a pod refuses the offer of
    another CAS (whose owner tries to register it)."""
    c = cluster(workers=2)
    ctl = c.controller(BACKUP_CAS_IMAGE="custos/nonexistent:1", BACKUP_READY_TIMEOUT_SECONDS=30, MIN_BACKUPS=0)
    wait_for(lambda: c.backup_pods(), timeout=30, what="a backup pod")
    pod = c.kube.must("GET", f"/api/v1/namespaces/{c.ns}/pods/{c.backup_pods()[0]}")
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--cas-key-hash") + 1] == c.cas.key_hash()
    ctl.stop()
    # the same arguments, run for real on node-2, offered a registration by another CAS
    other_las = types.SimpleNamespace(root=os.path.join(str(tmp_path), "other"), name="node-2",
                                   socket=c.las_socket("node-2"))
    os.makedirs(os.path.join(other_las.root, "node-2"), exist_ok=True)
    other = CasNode(other_las, "127.0.0.42").start()
    other_owner_dir = tmp_path / "other-owner"
    other_owner_dir.mkdir()
    owner2 = provision_owner(other, other_owner_dir)
    b = BackupCas(other_las, "127.0.0.42", extra=["--cas-key-hash", c.cas.key_hash()]).expect_no_registration()
    b.start()
    r = owner2.run("register-backup", b.addr)
    assert r.returncode != 0
    assert f"backup takes offers from CAS {c.cas.key_hash()} only (--cas-key-hash)" in r.stderr
    b.stop()
    other.stop()
