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
