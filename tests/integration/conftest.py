# SPDX-License-Identifier: Apache-2.0
import pytest

from harness import CasNode, LasNode, Swtpm, stop_all


@pytest.fixture
def swtpms(tmp_path):
    """Factory of running swtpm instances; all are stopped at the end of the test."""
    made = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def make(name):
        t = Swtpm(tmp_path / f"tpmstate-{name}", logs).start()
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.stop()


@pytest.fixture
def nodes(tmp_path):
    """Factory of simulated nodes' lasd processes; all are stopped at the end of the test."""
    made = []

    def make(name, **kw):
        n = LasNode(tmp_path, name, **kw)
        made.append(n)
        return n

    try:
        yield make
    finally:
        stop_all(made)


@pytest.fixture
def cas_nodes(tmp_path, nodes):
    """Factory of casd processes, each on its own simulated node (lasd) and 127.0.0.x address."""
    made = []

    def make(name, ip, **kw):
        las = nodes(name)
        if las.proc is None:
            las.start()
        c = CasNode(las, ip, **kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        stop_all(made)


# --- A real Kubernetes control plane (kube.py): one per session, a fresh namespace and a stand-in
# kubelet (no real kubelet can run here) per test.
from kube import KubeCluster, StandInKubelet  # noqa: E402


@pytest.fixture(scope="session")
def kube(tmp_path_factory):
    """etcd + kube-apiserver (RBAC on) on 127.0.0.1, shared by the session's tests."""
    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def kube_ns(kube):
    """A fresh namespace of the session cluster."""
    return kube.namespace()


@pytest.fixture
def kubelet(kube, tmp_path):
    """The stand-in kubelet (fast readiness probes: 0.5 s when the spec gives no period); its nodes,
    pods and processes are gone at the end of the test."""
    k = StandInKubelet(kube, tmp_path / "nodes", default_probe_period=0.5)
    try:
        yield k
    finally:
        k.stop()
    k.check()
