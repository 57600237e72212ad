# SPDX-License-Identifier: Apache-2.0
"""docs/quickstart.md, run as written on the local control plane (quickstart.py): etcd,
kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2, a stand-in kubelet for a
control-plane node and three workers. The charts are installed with helm, CAS is provisioned, the
controller's session created and the controller installed; every worker is registered and labelled;
CAS's node dies and the real scheduler restarts CAS on a registered node, where it opens its database
with the data intact. With backup.requireRegisteredNode=true and no registered node, CAS stays Pending.

Runs in the normal build only (scripts/test.sh leaves it out under ASan: a control plane of its own,
about 0.5 GB and a few minutes on 2 cores, for code the other tests already run under ASan)."""
import os
import re
import time

import pytest

from harness import free_port
from kube import REPO
from quickstart import DOC_COMMANDS, NS, QuickStart

DOC = os.path.join(REPO, "docs", "quickstart.md")


@pytest.fixture(scope="module")
def qs(tmp_path_factory):
    q = QuickStart(tmp_path_factory.mktemp("qs"))
    try:
        yield q.start()
    finally:
        q.stop()
    q.kubelet.check()


def test_the_guide_shows_every_command_the_test_runs():
    with open(DOC) as f:
        text = f.read()
    missing = [c for c in DOC_COMMANDS if c not in text]
    assert not missing, "commands run by the test but not in docs/quickstart.md:\n" + "\n".join(missing)


def test_quick_start_then_cas_survives_the_loss_of_its_node(qs):
    # LAS on every node (a DaemonSet: the controller-manager makes the pods, the scheduler binds them)
    qs.install_las()
    # CAS with persistence: its claim is bound by the PV binder to the volume any node can mount
    qs.install_cas()
    pvc = qs.kube.must("GET", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-cas-0")
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["volumeName"] == "custos-cas-data"
    first = qs.pod("cas-0")
    assert qs.scheduled_by(first), "cas-0 was not bound by the scheduler"
    assert re.fullmatch(r"[0-9a-f]{64}", qs.vars["CAS_KEY_HASH"]) and len(qs.vars["CAS_PROVISIONING_TOKEN"]) == 64
    assert qs.vars["CAS_IP"] == first["status"]["podIP"] and qs.vars["CAS_IP"].startswith("127.0.")

    out = qs.provision()
    assert "You are now the owner of the CAS." in out, out
    qs.put_secret()
    qs.create_session()
    assert not os.path.exists(os.path.join(qs.work, "registrar.json"))
    qs.install_controller("--set retryBaseSeconds=1", "--set retryMaxSeconds=4")
    summary = qs.wait_registered()
    log = qs.controller_log()
    assert "Using session cbc/register" in log, log
    for w in qs.workers:
        assert f"Successfully registered backup on node {w}" in log or summary[w], log
    assert "cp" not in summary or not summary["cp"]  # the control-plane node (tainted) gets no backup
    labelled = qs.wait(lambda: (lambda l: l if all(l[w] for w in qs.workers) else None)(qs.labelled()), 30,
                       "every worker labelled")
    assert not labelled["cp"]

    # from now on CAS runs on registered nodes only: the upgrade restarts it under the node affinity
    qs.require_registered_node()
    qs.wait(lambda: (lambda p: p if p and p["metadata"]["uid"] != first["metadata"]["uid"] and qs.ready(p) else None)(
        qs.pod("cas-0")), 120, "cas-0 restarted under the registered-node rule")
    before = qs.pod("cas-0")
    node = before["spec"]["nodeName"]
    assert qs.labelled()[node]
    assert qs.read_secret() == "s3cret"

    # CAS's node dies: NotReady after the grace period; the 1.20 StatefulSet pod stays until force-deleted
    t0 = time.monotonic()
    qs.kubelet.stop_node(node)
    qs.wait(lambda: qs.node_ready(node) != "True", qs.grace + 60, f"{node} NotReady")
    assert "NotReady" in qs.sh("kubectl get nodes")
    assert qs.pod("cas-0")["metadata"]["uid"] == before["metadata"]["uid"]  # not replaced by itself
    qs.sh('kubectl delete pod cas-0 --namespace "$NS" --grace-period=0 --force')
    after = qs.wait(lambda: (lambda p: p if p and p["metadata"]["uid"] != before["metadata"]["uid"] and qs.ready(p)
                             else None)(qs.pod("cas-0")), 120, "cas-0 Ready on another node")
    moved = time.monotonic() - t0
    new_node = after["spec"]["nodeName"]
    assert new_node != node and new_node != "cp"
    assert qs.labelled()[new_node], f"CAS restarted on {new_node}, which holds no registered backup"
    ev = qs.scheduled_by(after)
    assert ev and new_node in ev["message"], ev
    assert (ev.get("source") or {}).get("component") == "default-scheduler" or ev.get("reportingComponent"), ev
    assert qs.cas_node() == new_node
    # the same database (the claim's volume, on the storage every node mounts), opened with the backup
    assert qs.read_secret() == "s3cret"
    cas_log = qs.sh('kubectl logs cas-0 --namespace "$NS"')
    assert "opened on platform" in cas_log, cas_log
    assert "CAS provisioning token" not in cas_log  # provisioned: no new token, the same database
    print(f"CAS moved from {node} to {new_node} in {moved:.1f} s (grace {qs.grace} s)")


def test_cas_stays_pending_without_a_registered_node(qs):
    """A second CAS (its own namespace, so its label cas-registered-cas.<ns> is on no node) with
    backup.requireRegisteredNode=true: the scheduler leaves it Pending (Unschedulable, FailedScheduling)
    instead of starting it where it could not open its database."""
    ns = qs.kube.namespace("pending")
    qs.sh(f'helm install cas charts/cas --namespace {ns} --set backup.requireRegisteredNode=true '
          f'--set service.port={free_port("127.0.0.1")}')
    pod = qs.wait(lambda: qs.pod("cas-0", ns=ns), 60, "pod cas-0")

    def unschedulable():
        p = qs.pod("cas-0", ns=ns)
        cond = [c for c in (p.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"]
        return p if cond and cond[0]["status"] == "False" and cond[0].get("reason") == "Unschedulable" else None
    pod = qs.wait(unschedulable, 60, "cas-0 Unschedulable")
    events = qs.kube.must("GET", f"/api/v1/namespaces/{ns}/events")["items"]
    failed = [e for e in events if e.get("reason") == "FailedScheduling"]
    assert failed and re.search(r"didn't match (node selector|Pod's node affinity)", failed[-1]["message"]), failed
    time.sleep(5)
    pod = qs.pod("cas-0", ns=ns)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    assert not qs.kubelet._worker_by_name(ns, "cas-0")  # nothing was started anywhere
