#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench/controller: cas-backup-controller against a real kube-apiserver (a private one, started here).

Usage: /usr/bin/python3 bench/controller.py [--nodes 10,50,100] [--idle-seconds 60] [--watch-nodes 1000]
                                            [--build DIR] [--keep]

The simulated cluster is tests/integration/ctl_harness.Cluster: etcd + kube-apiserver v1.20.2 (built
by scripts/kube-build.sh), a stand-in kubelet playing every node (this process's threads), a LAS pod
(lasd, sim platform) per node, the primary casd on node-1 (provisioned) and a registrar CLI
configuration. The controller runs with its shipped defaults (MAX_PARALLEL_REGISTRATIONS 4, lease 15 s,
retries from 10 s) except its namespace, selectors, metrics address and backup image.

a. registration: for each --nodes count N, a fresh namespace and kubelet with N workers (+ the
   control-plane node); time from launching the controller to its summary listing every worker
   registered (node-1 holds the primary: registered by its own key, so N-1 registrations), and each
   registration's time from its log lines (Provisioning ... -> Successfully registered ...) and from
   the registration_duration histogram (mean = sum / count).
b. idle API traffic: with the largest N registered, custos_backup_controller_api_requests_total read
   from /metrics at the start and the end of an idle window, with CONTROLLER_LOOP_INTERVAL_SECONDS=5
   and 3600; extrapolated per hour and per node.
c. memory: --watch-nodes Node objects created through the API (cordoned: watched, listed in the
   summary, never registered; realistic status, no kubelet), the controller started; once /readyz
   answers and its summary lists them all, RssAnon and VmRSS from /proc/PID/status.
Every process started is stopped at the end (also on Ctrl-C or SIGTERM).
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SUMMARY_HEAD = "Nodes with registered CAS backups (check logs for failed registrations):"
TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.](\d+) ")
GOAL_100_SECONDS = 60.0
REFERENCE_PER_NODE = (13.0, 33.0)
GOAL_RSS_KB = 10 * 1024


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", default="10,50,100", help="worker counts, comma-separated (default 10,50,100)")
    p.add_argument("--idle-seconds", type=float, default=60, help="idle window per loop interval (default 60)")
    p.add_argument("--watch-nodes", type=int, default=1000, help="Node objects for the memory figure (default 1000)")
    p.add_argument("--build", default=os.environ.get("CUSTOS_BUILD", os.path.join(REPO, "build")),
                   help="meson build directory (default $CUSTOS_BUILD or ./build)")
    p.add_argument("--heartbeat", type=float, default=30,
                   help="the stand-in kubelet's Node status + Lease period in seconds (default 30; a real kubelet "
                        "renews its Lease every 10 s and posts an unchanged status every 5 min); each is a new "
                        "HTTPS connection, which costs the apiserver most of its CPU at 100 nodes")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) at the end")
    a = p.parse_args()
    a.nodes = [int(x) for x in a.nodes.split(",") if x.strip()]
    if not a.nodes or min(a.nodes) < 1:
        p.error("--nodes: one or more counts >= 1")
    # ctl_harness.Cluster gives the control-plane node 127.0.0.40 and worker i 127.0.0.(40+i): 214 at most
    if max(a.nodes) > 214:
        p.error("--nodes: at most 214 workers (ctl_harness.Cluster gives worker i the address 127.0.0.(40+i))")
    return a


ARGS = parse_args()
os.environ["CUSTOS_BUILD"] = os.path.abspath(ARGS.build)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from ctl_harness import Cluster, require_binaries  # noqa: E402
from kube import KUBE_BIN, KubeCluster, StandInKubelet, rfc3339  # noqa: E402


def out(line=""):
    print(line, flush=True)


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# --- machine facts --------------------------------------------------------------------------------------
def machine_facts(build):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    opts = {}
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError):
        pass
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    apiserver = subprocess.run([os.path.join(KUBE_BIN, "kube-apiserver"), "--version"], capture_output=True,
                               text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[:3]
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"machine: {os.cpu_count()} CPU(s) ({cpu}), {mem} RAM, Linux {platform.release()}, load average "
        f"{' '.join(load)} at start",
        f"build: {build} (buildtype {opts.get('buildtype', '?')}, b_sanitize {opts.get('b_sanitize', '?')}), "
        f"commit {commit}{' + local changes' if dirty else ''}",
        f"kubernetes: {apiserver or '?'} + etcd, stand-in kubelet (Python threads of this process; Node status "
        f"and Lease every {ARGS.heartbeat:g} s), lasd --platform sim per node",
    ]


# --- the controller's log and metrics ------------------------------------------------------------------
def log_time(line):
    m = TS.match(line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    return t.timestamp() + int(m.group(2)) / 10 ** len(m.group(2))


def last_summary(text):
    """The last complete summary the controller printed, as a dict, or None."""
    i = text.rfind(SUMMARY_HEAD)
    while i >= 0:
        rest = text[text.index("\n", i) + 1:] if "\n" in text[i:] else ""
        if rest.startswith("{}"):
            return {}
        end = rest.find("\n}")
        if rest.startswith("{") and end >= 0:
            try:
                return json.loads(rest[:end + 2])
            except ValueError:
                pass
        i = text.rfind(SUMMARY_HEAD, 0, i)
    return None


def wait(cond, timeout, what, period=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(period)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def registration_times(text):
    """Seconds from 'Provisioning backup CAS on node X' to 'Successfully registered backup on node X'."""
    started, took = {}, []
    for line in text.splitlines():
        m = re.search(r"Provisioning backup CAS on node (\S+):", line)
        if m:
            started[m.group(1)] = log_time(line)
            continue
        m = re.search(r"Successfully registered backup on node (\S+)$", line)
        if m and m.group(1) in started and started[m.group(1)] is not None:
            took.append(log_time(line) - started.pop(m.group(1)))
    return took


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def readyz(ctl):
    try:
        with urllib.request.urlopen(f"http://{ctl.env['METRICS_ADDR']}/readyz", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def proc_status(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "VmRSS", "VmHWM", "Threads"):
                values[k] = int(v.split()[0])
    return values


def cpu_seconds(pid, children=False):
    """utime + stime of a live process (or of its ended children), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        i = 13 if children else 11
        return (int(fields[i]) + int(fields[i + 1])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def shipped_defaults():
    """The controller's settings: its defaults, except what the simulated cluster must name."""
    return dict(LEASE_DURATION_SECONDS=None, RETRY_BASE_SECONDS=None, RETRY_MAX_SECONDS=None,
                BACKUP_READY_TIMEOUT_SECONDS=None)


# --- the rounds -----------------------------------------------------------------------------------------
class Bench:
    def __init__(self, tmp):
        self.tmp = tmp
        self.kube = None
        self.kubelet = None
        self.cluster = None
        self.results = {}

    def new_cluster(self, tag, workers):
        self.teardown_cluster()
        ns = self.kube.namespace("bench")
        self.kubelet = StandInKubelet(self.kube, os.path.join(self.tmp, f"nodes-{tag}"), default_probe_period=0.5,
                                      heartbeat=ARGS.heartbeat)
        path = os.path.join(self.tmp, f"round-{tag}")
        os.makedirs(path)
        t0 = time.monotonic()
        self.cluster = Cluster(self.kube, ns, self.kubelet, path, workers=workers)
        return time.monotonic() - t0

    def teardown_cluster(self):
        errors = []
        if self.cluster is not None:
            c, self.cluster = self.cluster, None
            for x in c.controllers:
                try:
                    x.stop()
                except BaseException as e:  # noqa: BLE001 (pytest.fail from the harness)
                    errors.append(f"{x.label}: {e}")
            c.controllers = []
            try:
                c.cas.stop()
            except BaseException as e:  # noqa: BLE001
                errors.append(f"casd: {e}")
        if self.kubelet is not None:
            k, self.kubelet = self.kubelet, None
            try:
                k.stop()
            except BaseException as e:  # noqa: BLE001
                errors.append(f"kubelet: {e}")
        for e in errors:
            out(f"  (cleanup: {str(e)[:300]})")

    def registration(self, n):
        setup = self.new_cluster(f"n{n}", n)
        c = self.cluster
        workers = c.workers
        kpids = [p.proc.pid for p in (self.kube.apiserver, self.kube.etcd)]
        k0, me0, t0 = [cpu_seconds(p) for p in kpids], os.times(), time.monotonic()
        ctl = c.controller(name=f"controller-{n}", **shipped_defaults())
        summary = wait(lambda: (lambda s: s if s and all(s.get(w) for w in workers) else None)(last_summary(ctl.log())),
                       timeout=max(300, 6 * n), what=f"every one of {n} workers registered (log {ctl.log_path})")
        wall = time.monotonic() - t0
        me1, k1 = os.times(), [cpu_seconds(p) for p in kpids]
        cpu = dict(controller=cpu_seconds(ctl.proc.pid), cli=cpu_seconds(ctl.proc.pid, children=True), apiserver=k1[0] - k0[0], etcd=k1[1] - k0[1],
                   kubelet=(me1.user + me1.system) - (me0.user + me0.system),
                   pods=(me1.children_user + me1.children_system) - (me0.children_user + me0.children_system))
        log = ctl.log()
        lines = log.splitlines()
        t_start = next((log_time(l) for l in lines if "Starting controller..." in l), None)
        t_last = max((log_time(l) for l in lines if "Successfully registered backup on node" in l), default=None)
        took = registration_times(log)
        m = ctl.metrics()
        count = m.get("custos_backup_controller_registration_duration_seconds_count", 0)
        hsum = m.get("custos_backup_controller_registration_duration_seconds_sum", 0)
        failures = m.get('custos_backup_controller_registrations_total{result="failure"}', 0)
        r = dict(n=n, setup=setup, wall=wall, log_span=(t_last - t_start) if t_start and t_last else None,
                 took=took, hist_mean=(hsum / count) if count else None, count=count, failures=failures,
                 registered=sum(1 for w in workers if summary.get(w)), log=ctl.log_path, cpu=cpu,
                 load=open("/proc/loadavg").read().split()[0])
        self.results.setdefault("registration", []).append(r)
        self.print_registration(r)
        return ctl

    def print_registration(self, r):
        n = r["n"]
        goal = GOAL_100_SECONDS * n / 100
        line = (f"  {n:4d} workers: {r['wall']:7.1f} s from launch to all {r['registered']} registered"
                f" ({r['count']:.0f} registrations, {r['failures']:.0f} failed attempts")
        if r["log_span"] is not None:
            line += f"; log: 'Starting controller...' to the last success {r['log_span']:.1f} s"
        out(line + ")")
        if r["took"]:
            t = r["took"]
            out(f"        per registration (log lines, pod creation to success): mean {statistics.mean(t):5.2f} s  "
                f"p50 {pct(t, 50):5.2f} s  max {max(t):5.2f} s;  histogram mean (sum/count) "
                f"{r['hist_mean']:.2f} s")
        ref_lo, ref_hi = (REFERENCE_PER_NODE[0] * n, REFERENCE_PER_NODE[1] * n)
        out(f"        goal pro rata (100 in 60 s): {goal:.0f} s -> ratio {r['wall'] / goal:.2f} "
            f"({'met' if r['wall'] <= goal else 'NOT met'}); reference one at a time {ref_lo:,.0f}-{ref_hi:,.0f} s "
            f"-> {ref_lo / r['wall']:,.0f}-{ref_hi / r['wall']:,.0f}x faster")
        cpu = r["cpu"]
        out(f"        CPU seconds in that time: controller {cpu['controller']:.1f} + its cas CLI runs {cpu['cli']:.1f}, "
            f"kube-apiserver {cpu['apiserver']:.1f}, etcd {cpu['etcd']:.1f}, stand-in kubelet (this process) "
            f"{cpu['kubelet']:.1f}, backup casd pods {cpu['pods']:.1f}; {os.cpu_count() * r['wall']:.0f} available on {os.cpu_count()} cores; 1-min load average {r['load']}")
        out(f"        (simulated cluster set up in {r['setup']:.1f} s, not counted; controller log {r['log']})")

    def idle(self, seconds):
        c = self.cluster
        n = len(c.workers)
        rates = {}
        for interval in (5, 3600):
            ctl = c.controller(name=f"idle-{interval}", CONTROLLER_LOOP_INTERVAL_SECONDS=interval,
                               **shipped_defaults())
            wait(lambda: (lambda s: s and all(s.get(w) for w in c.workers))(last_summary(ctl.log())), timeout=120,
                 what=f"the summary of the controller with interval {interval}")
            wait(lambda: readyz(ctl), timeout=30, what="/readyz")
            time.sleep(3)  # the first pass's label checks and cleanups are done
            provisioned = ctl.count("Provisioning backup CAS")
            m0, t0 = ctl.metrics(), time.monotonic()
            time.sleep(seconds)
            m1, t1 = ctl.metrics(), time.monotonic()
            k = "custos_backup_controller_"
            req = m1[k + "api_requests_total"] - m0[k + "api_requests_total"]
            ev = m1[k + "api_watch_events_total"] - m0[k + "api_watch_events_total"]
            rel = m1[k + "api_relists_total"] - m0[k + "api_relists_total"]
            err = m1[k + "api_errors_total"] - m0[k + "api_errors_total"]
            per_hour = req / (t1 - t0) * 3600
            rates[interval] = per_hour
            out(f"  CONTROLLER_LOOP_INTERVAL_SECONDS={interval:<5d}: {req:.0f} requests in {t1 - t0:.0f} s -> "
                f"{per_hour:,.0f} per hour, {per_hour / n:,.1f} per node per hour ({n} workers); "
                f"{rel:.0f} relists, {err:.0f} errors, {ev:.0f} watch events received; "
                f"{ctl.count('Provisioning backup CAS') - provisioned} registrations")
            ctl.stop()
            c.controllers.remove(ctl)
        ratio = rates[5] / rates[3600] if rates[3600] else float("inf")
        out(f"        goal: idle traffic independent of the loop interval (watches, not relists): "
            f"interval 5 s / interval 3600 s = {ratio:.2f} (goal 1.00: {'met' if ratio <= 1.2 else 'NOT met'})")
        out("        (watch events: the stand-in kubelet's Node status heartbeats; the Lease is renewed every "
            "LEASE_DURATION_SECONDS/3 = 5 s with a GET and a PUT)")
        self.results["idle"] = rates

    def memory(self, count):
        self.new_cluster("mem", 1)
        c = self.cluster
        base = c.controller(name="mem-base", **shipped_defaults())
        wait(lambda: readyz(base) and last_summary(base.log()) is not None, 60, "the first summary")
        time.sleep(1)
        st0 = proc_status(base.proc.pid)
        base.stop()
        c.controllers.remove(base)
        t0 = time.monotonic()
        size = create_nodes(self.kube, count)
        made = time.monotonic() - t0
        ctl = c.controller(name="mem", **shipped_defaults())
        t1 = time.monotonic()
        wait(lambda: readyz(ctl), 120, "/readyz")
        ready = time.monotonic() - t1
        wait(lambda: (lambda s: s is not None and len(s) >= count + 1)(last_summary(ctl.log())), 120,
             f"a summary listing {count} + 1 nodes")
        listed = time.monotonic() - t1
        time.sleep(1)
        st = proc_status(ctl.proc.pid)
        time.sleep(10)
        st2 = proc_status(ctl.proc.pid)
        m = ctl.metrics()
        out(f"  {count} cordoned Node objects (+ node-1 holding the primary, + the control-plane node) created "
            f"through the API in {made:.1f} s, {size / 1024:.1f} KiB of JSON each")
        out(f"  controller: /readyz after {ready:.1f} s, summary listing {count + 1} nodes after {listed:.1f} s, "
            f"{m['custos_backup_controller_nodes_eligible']:.0f} eligible, "
            f"{ctl.count('Provisioning backup CAS')} registrations")
        out(f"  RssAnon {st['RssAnon'] / 1024:6.2f} MB  VmRSS {st['VmRSS'] / 1024:6.2f} MB  (peak VmHWM "
            f"{st['VmHWM'] / 1024:.2f} MB, {st['Threads']} threads); 10 s later RssAnon {st2['RssAnon'] / 1024:.2f} MB")
        out(f"  same controller with 2 nodes: RssAnon {st0['RssAnon'] / 1024:6.2f} MB  VmRSS {st0['VmRSS'] / 1024:6.2f} MB"
            f" -> {(st['RssAnon'] - st0['RssAnon']) / count:.2f} KB per watched node")
        out(f"        goal RssAnon < 10 MB: ratio {st['RssAnon'] / GOAL_RSS_KB:.2f} "
            f"({'met' if st['RssAnon'] < GOAL_RSS_KB else 'NOT met'})")
        self.results["memory"] = st


def node_object(i):
    """A Node as a kubelet would report it (labels, addresses, conditions, capacity, nodeInfo, images),
    cordoned."""
    name = f"watch-{i:05d}"
    now = rfc3339()
    meta = {"name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "m5.xlarge", "topology.kubernetes.io/zone": f"zone-{i % 3}",
        "topology.kubernetes.io/region": "region-1"},
        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true"}}
    status = {
        "conditions": [{"type": t, "status": s, "reason": r, "message": f"kubelet {r}", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}
                       for t, s, r in (("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                                       ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                                       ("PIDPressure", "False", "KubeletHasSufficientPID"),
                                       ("Ready", "True", "KubeletReady"))],
        "addresses": [{"type": "InternalIP", "address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"bootID": f"{i:08x}-0000-4000-8000-000000000000", "machineID": f"{i:032x}",
                     "systemUUID": f"{i:08x}-1111-4000-8000-000000000000", "kernelVersion": platform.release(),
                     "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "containerd://1.6.20",
                     "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2", "operatingSystem": "linux",
                     "architecture": "amd64"},
        "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
        "allocatable": {"cpu": "4", "memory": "15Gi", "pods": "110", "ephemeral-storage": "92Gi"},
        "images": [{"names": [f"registry.example/team/image-{k}@sha256:{(i * 31 + k):064x}",
                              f"registry.example/team/image-{k}:v1.{k}"], "sizeBytes": 10_000_000 + k}
                   for k in range(10)],
    }
    return name, {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": {"unschedulable": True}}, status


def create_nodes(kube, count):
    def one(i):
        name, obj, status = node_object(i)
        kube.must("POST", "/api/v1/nodes", obj)
        st, body = kube.patch_status(f"/api/v1/nodes/{name}", status)
        if st != 200:
            raise RuntimeError(f"status of {name}: {st} {body}")
        return len(json.dumps(kube.must("GET", f"/api/v1/nodes/{name}"))) if i == 1 else 0

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(one, range(1, count + 1)))
    return max(sizes)


def main():
    cmd = "/usr/bin/python3 bench/controller.py " + " ".join(sys.argv[1:])
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    require_binaries(ARGS.build, "bench/controller")
    out(f"$ {cmd.strip()}")
    for line in machine_facts(ARGS.build):
        out(line)
    tmp = tempfile.mkdtemp(prefix="custos-bench-controller-")
    out(f"work directory: {tmp}{' (kept)' if ARGS.keep else ' (removed at the end)'}")
    bench = Bench(tmp)
    rc = 0
    try:
        bench.kube = KubeCluster(os.path.join(tmp, "kube")).start()
        out("")
        out(f"a. registration, MAX_PARALLEL_REGISTRATIONS=4 (default); goal 100 workers in under "
            f"{GOAL_100_SECONDS:.0f} s; reference {REFERENCE_PER_NODE[0]:.0f}-{REFERENCE_PER_NODE[1]:.0f} s "
            f"per node, one at a time")
        for n in sorted(ARGS.nodes):
            ctl = bench.registration(n)
            ctl.stop()
            bench.cluster.controllers.remove(ctl)
        if ARGS.idle_seconds > 0:
            n = len(bench.cluster.workers)
            out("")
            out(f"b. idle Kubernetes API requests ({n} workers registered, window {ARGS.idle_seconds:.0f} s each)")
            bench.idle(ARGS.idle_seconds)
        if ARGS.watch_nodes > 0:
            out("")
            out(f"c. controller memory with {ARGS.watch_nodes} Node objects watched")
            bench.memory(ARGS.watch_nodes)
    except Interrupted as e:
        out(f"\ninterrupted ({e}): stopping everything")
        rc = 130
    except BaseException as e:  # noqa: BLE001 (pytest.fail from the harness is a BaseException)
        out(f"\nFAILED: {type(e).__name__}: {str(e)[:3000]}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        out("")
        out(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])} "
            f"(other work on this machine skews every figure)")
        bench.teardown_cluster()
        if bench.kube is not None:
            bench.kube.stop()
        if ARGS.keep or rc == 1:
            out(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
