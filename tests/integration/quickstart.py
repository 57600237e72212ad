# SPDX-License-Identifier: Apache-2.0
"""The quick start (docs/quickstart.md) on the local control plane, step by step: used by
tests/integration/test_quickstart.py (which checks each step) and scripts/demo_cluster.py (which shows
them). The commands are docs/quickstart.md's, run by bash with the variables the guide exports (NS,
CAS_PORT, CAS_IP, CAS_KEY_HASH, CAS_PROVISIONING_TOKEN, SCONE_CLI_CONFIG), helm and kubectl
(scripts/helm.sh) and the build's programs on PATH, in a working directory of its own.

The control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 (kube.py);
a stand-in kubelet plays a control-plane node and the workers, maps the charts' images to the build
directory and every PersistentVolume to one shared directory (network storage's stand-in)."""
import json
import os
import random
import re
import shutil
import subprocess
import time

import kube as kube_mod
from ctl_harness import controller_session
from harness import BUILD, free_port
from kube import REPO, KubeCluster, StandInKubelet

NS = "custos"
STORAGE = "deploy/quickstart/shared-storage.yaml"

# docs/quickstart.md's commands, in its order (test_quickstart.py checks that the guide shows each one)
CREATE_NS = 'kubectl create namespace "$NS"'
LAS = 'helm install las charts/las --namespace "$NS"'
STORAGE_APPLY = f"kubectl apply -f {STORAGE}"
CAS = ('helm install cas charts/cas --namespace "$NS" --set persistence.enabled=true '
       '--set persistence.storageClass=custos-shared --set service.port="$CAS_PORT"')
CAS_READY = 'kubectl wait --namespace "$NS" --for=condition=Ready pod/cas-0 --timeout=120s'
CAS_IP = """kubectl get pod cas-0 --namespace "$NS" -o jsonpath='{.status.podIP}'"""
KEY_HASH = """kubectl logs cas-0 --namespace "$NS" | grep "CAS key hash" | awk '{ print $7 }'"""
TOKEN = """kubectl logs cas-0 --namespace "$NS" | grep "CAS provisioning token" | awk '{ print $7 }'"""
OWNER_CONFIG = '''mkdir -p owner-config
cat > owner-config/config.toml <<EOF
[api_identity]
common_name = "mycas"
alt_names = ["mycas", "cas", "cas.$NS", "localhost", "$CAS_IP"]

[dcap]
subscription_key = "00000000000000000000000000000000"
EOF'''
IDENTITY = '''mkdir -p identity
openssl genrsa -out identity/keypair.pem 2048
openssl pkcs8 -topk8 -inform PEM -outform PEM -nocrypt -in identity/keypair.pem -out identity/pkcs8.key'''
PROVISION = ('cas provision "$CAS_IP:$CAS_PORT" -c "$CAS_KEY_HASH" --token "$CAS_PROVISIONING_TOKEN" '
             '--config-file owner-config/config.toml --identity identity/pkcs8.key '
             'with-attestation -GCS --only_for_testing-debug --only_for_testing-ignore-signer '
             '--only_for_testing-trust-any')
SECRET_PUT = 'echo -n s3cret | cas secret put db-password'
REGISTRAR = 'cas owner make-registrar --out registrar.json'
SESSION_FILE = '''export CLI_CONFIG="$(sed 's/^/          /' registrar.json)"
export CAS_MRENCLAVE="$(SCONE_HASH=1 cas)"
cat > cbc.yaml <<EOF
name: cbc
version: "0.3"
services:
  - name: register
    image_name: cli
    mrenclaves: ["$CAS_MRENCLAVE"]
    command: cas register-backup @@2
    environment:
      SCONE_CLI_CONFIG: /etc/custos/registrar.json
      "@@SCONE_LAS_ADDR": ""
    pwd: /
  - name: list
    image_name: cli
    mrenclaves: ["$CAS_MRENCLAVE"]
    command: cas backups list --json
    environment:
      SCONE_CLI_CONFIG: /etc/custos/registrar.json
      "@@SCONE_LAS_ADDR": ""
    pwd: /
images:
  - name: cli
    injection_files:
      - path: /etc/custos/registrar.json
        content: |
$CLI_CONFIG
EOF'''
SESSION_CREATE = 'cas session create cbc.yaml && rm cbc.yaml registrar.json'
CBC = ('helm install cbc charts/cas-backup-controller --namespace "$NS" --set cas="$CAS_IP:$CAS_PORT" '
       '--set session=cbc/register --set casKeyHash="$CAS_KEY_HASH" --set casName=cas')
CBC_LOG = 'kubectl logs -l app.kubernetes.io/name=cas-backup-controller --namespace "$NS" --tail -1'
LABELS = 'kubectl get nodes -L "cas-registered-cas.$NS"'
REQUIRE = ('helm upgrade cas charts/cas --namespace "$NS" --reuse-values '
           '--set backup.requireRegisteredNode=true')
CAS_NODE = """kubectl get pod cas-0 --namespace "$NS" -o jsonpath='{.spec.nodeName}'"""
NODES = 'kubectl get nodes'
FORCE_DELETE = 'kubectl delete pod cas-0 --namespace "$NS" --grace-period=0 --force'
ATTEST = ('cas attest "$CAS_IP:$CAS_PORT" -c "$CAS_KEY_HASH" --only_for_testing-ignore-signer '
          '--only_for_testing-trust-any')
SECRET_GET = 'cas secret get db-password --cas "$CAS_IP:$CAS_PORT"'
# docs/operations.md, "Upgrading CAS", "On Kubernetes, with the charts and the controller" (its order)
UPGRADE_OLD = """cas backups list --cas "$CAS_IP:$CAS_PORT" | awk '/\\(primary, current\\)/ { print $7 }'"""
UPGRADE_NEW = "sha256sum cas-new/casd | cut -c1-64"
UPGRADE_ALLOW = 'cas owner allow-measurement "$NEW" --cas "$CAS_IP:$CAS_PORT"'
UPGRADE_CBC = ('helm upgrade cbc charts/cas-backup-controller --namespace "$NS" --reuse-values '
               '--set backup.image=custos/cas:new --set backup.measurement="$NEW"')
UPGRADE_LIST = 'cas backups list --cas "$CAS_IP:$CAS_PORT" --json'
UPGRADE_CAS = ('helm upgrade cas charts/cas --namespace "$NS" --reuse-values '
               '--set image.repository=custos/cas --set image.tag=new')
UPGRADE_PRUNE = 'cas backups prune --measurement "$OLD" --cas "$CAS_IP:$CAS_PORT"'
UPGRADE_COMMANDS = [UPGRADE_OLD, UPGRADE_NEW, UPGRADE_ALLOW, UPGRADE_CBC, UPGRADE_LIST, UPGRADE_CAS, CAS_READY, CAS_IP,
                    KEY_HASH, ATTEST, SECRET_GET, UPGRADE_PRUNE]

DOC_COMMANDS = [CREATE_NS, LAS, STORAGE_APPLY, CAS, CAS_READY, CAS_IP, KEY_HASH, TOKEN, OWNER_CONFIG, IDENTITY, PROVISION,
                SECRET_PUT, REGISTRAR, SESSION_FILE, SESSION_CREATE, CBC, CBC_LOG, LABELS, REQUIRE, CAS_NODE, NODES, FORCE_DELETE,
                ATTEST, SECRET_GET]


# What the local control plane adds to the guide's `helm install cbc`:
# - the stand-in kubelet has no mount namespaces: it rewrites every argument and environment value that
#   starts with one of the container's mountPaths to the node's directory. SCONE_LAS_ADDR and LAS_HOST_DIR
#   (las.socketPath, las.hostDir: /run/custos) name paths of the backup pods and of the node, not of the
#   controller's container, so the controller's own LAS mount (cas-run's socket) goes elsewhere;
# - the metrics port: pods share the machine's network here, so a free one (added by install_controller).
LOCAL_CBC = ["--set las.casRunSocketPath=/run/cbc-las/las.sock"]


def tools():
    """(helm, kubectl): scripts/helm.sh's, from the npm package (with --check: installs nothing)."""
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "helm.sh"), "--check"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"helm and kubectl are not installed: run `bash scripts/helm.sh` ({r.stderr.strip()})")
    helm = r.stdout.strip()
    kubectl = os.path.join(os.path.dirname(helm), "kubectl")
    return helm, kubectl


class QuickStart:
    """The local control plane and the quick start's state (variables, working directory)."""

    def __init__(self, tmp, workers=3, grace=20, heartbeat=3):
        self.tmp = str(tmp)
        self.workers = [f"node-{i}" for i in range(1, workers + 1)]
        self.grace, self.heartbeat = grace, heartbeat
        self.kube = self.kubelet = None
        self.work = os.path.join(self.tmp, "work")
        os.makedirs(self.work, exist_ok=True)
        helm, kubectl = tools()
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.bin, exist_ok=True)
        for name, path in (("helm", helm), ("kubectl", kubectl), ("cas", os.path.join(BUILD, "cas")),
                           ("cas-run", os.path.join(BUILD, "cas-run"))):
            link = os.path.join(self.bin, name)
            if not os.path.lexists(link):
                os.symlink(path, link)
        self.vars = {"NS": NS, "CAS_PORT": str(free_port("127.0.0.1"))}
        self.transcript = []  # (command, exit status, stdout, stderr)

    # --- the control plane ---------------------------------------------------------------------------
    def start(self):
        self.kube = KubeCluster(os.path.join(self.tmp, "kube"), with_controller_manager=True, with_scheduler=True,
                                node_monitor_grace_seconds=self.grace).start()
        # Pod addresses 127.0.n.m: start n far from other test processes of this machine (each counts
        # from 1), so their pods and ours do not share an address and a port.
        with kube_mod._node_counter_lock:
            kube_mod._node_counter[0] = max(kube_mod._node_counter[0], random.randint(100, 200))
        self.kubelet = StandInKubelet(self.kube, os.path.join(self.tmp, "nodes"), default_probe_period=0.5,
                                      heartbeat=self.heartbeat,
                                      shared_storage=os.path.join(self.tmp, "shared-storage"))
        self.kubelet.add_node("cp", "127.0.0.90", control_plane=True)
        for i, n in enumerate(self.workers, 1):
            self.kubelet.add_node(n, f"127.0.0.{90 + i}")
        self.kubeconfig = self.kube.kubeconfig_admin(os.path.join(self.tmp, "kubeconfig"))
        self.sh(CREATE_NS)
        return self

    def stop(self):
        try:
            if self.kubelet is not None:
                self.kubelet.stop()
        finally:
            if self.kube is not None:
                self.kube.stop()

    # --- commands --------------------------------------------------------------------------------------
    def env(self, **extra):
        e = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": self.work, "KUBECONFIG": self.kubeconfig,
             "SCONE_CLI_CONFIG": os.path.join(self.work, "identity", "config.json"), "LANG": "C.UTF-8"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                e[k] = os.environ[k]
        e.update({f"HELM_{k}_HOME": os.path.join(self.tmp, "helm", k.lower()) for k in ("CACHE", "CONFIG", "DATA")})
        e.update(self.vars)
        e.update(extra)
        return e

    def sh(self, command, *extra, check=True, timeout=180):
        """Runs a command of the guide (plus `extra` arguments) with bash in the working directory;
        returns its stdout, stripped."""
        cmd = command + "".join(f" {a}" for a in extra)
        # the charts are the checkout's: the guide's relative paths (charts/, deploy/) from the repository
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", f"REPO={REPO}; {_relative(cmd)}"], cwd=self.work,
                           env=self.env(), capture_output=True, text=True, timeout=timeout)
        self.transcript.append((cmd, r.returncode, r.stdout, r.stderr))
        if check and r.returncode != 0:
            raise RuntimeError(f"`{cmd}` failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r.stdout.strip()

    def set(self, name, command):
        self.vars[name] = self.sh(command)
        return self.vars[name]

    # --- the guide's steps -----------------------------------------------------------------------------
    def install_las(self):
        self.sh(LAS)
        for n in ["cp"] + self.workers:
            self.wait(lambda n=n: self.pod_on("app.kubernetes.io/name=las", n, ready=True), 60, f"LAS on {n}")

    def install_cas(self):
        self.sh(STORAGE_APPLY)
        self.sh(CAS)
        self.wait(lambda: self.pod("cas-0"), 60, "pod cas-0")
        self.sh(CAS_READY)
        self.set("CAS_IP", CAS_IP)
        self.set("CAS_KEY_HASH", KEY_HASH)
        self.set("CAS_PROVISIONING_TOKEN", TOKEN)

    def provision(self):
        self.sh(OWNER_CONFIG)
        self.sh(IDENTITY)
        return self.sh(PROVISION)

    def put_secret(self):
        self.sh(SECRET_PUT)

    def create_session(self):
        self.sh(REGISTRAR)
        self.sh(SESSION_FILE)
        with open(os.path.join(self.work, "registrar.json")) as f:
            want = controller_session(f.read())
        with open(os.path.join(self.work, "cbc.yaml")) as f:
            got = f.read()
        if got != want:  # the guide's heredoc is the session the controller's tests use
            raise AssertionError(f"the guide's cbc.yaml differs from ctl_harness.controller_session:\n{got}\n---\n{want}")
        self.sh(SESSION_CREATE)

    def install_controller(self, *extra):
        """The guide's command plus LOCAL_CBC and `extra` (the test's and demo's: short retry delays)."""
        self.sh(CBC, *LOCAL_CBC, f"--set metrics.port={free_port('127.0.0.1')}", *extra)

    def controller_log(self):
        return self.sh(CBC_LOG, check=False)

    def require_registered_node(self):
        self.sh(REQUIRE)

    def cas_node(self):
        return self.sh(CAS_NODE)

    def read_secret(self):
        """CAS's address again (its pod, hence its address, is new), attested, then the secret."""
        self.set("CAS_IP", CAS_IP)
        self.sh(ATTEST)
        return self.sh(SECRET_GET)

    # --- an upgrade (docs/operations.md) ----------------------------------------------------------------
    def new_cas_image(self, name="custos/cas:new"):
        """A "new CAS build": the image `name`, which the stand-in kubelet maps to cas-new/ in the working
        directory, a copy of the build's casd, cas and cas-run where casd has bytes appended (another
        measurement, the same code)."""
        d = os.path.join(self.work, "cas-new")
        os.makedirs(d, exist_ok=True)
        for b in ("casd", "cas", "cas-run"):
            shutil.copy2(os.path.join(BUILD, b), os.path.join(d, b))
        with open(os.path.join(d, "casd"), "ab") as f:
            f.write(b"\0custos-quickstart-upgrade-build-2")
        self.kubelet.images[name] = d
        return d

    def backups(self):
        """`cas backups list --json`: (node, measurement) of every key-store entry, and the entry CAS runs on."""
        entries = json.loads(self.sh(UPGRADE_LIST))
        current = [(b["node"], b["measurement"]) for b in entries if b.get("current")]
        return {(b["node"], b["measurement"]) for b in entries}, (current[0] if current else None)

    # --- the hello world (examples/hello-world): a session whose password CAS generates ----------------
    def hello(self, node, *args, check=True, **env):
        """run.sh with the owner's CLI configuration, on `node` (its LAS socket), against CAS at
        CAS_IP:CAS_PORT; returns the CompletedProcess."""
        e = {"PATH": "/usr/bin:/bin", "SCONE_CLI_CONFIG": self.env()["SCONE_CLI_CONFIG"],
             "SCONE_LAS_ADDR": os.path.join(self.kubelet.node_root(node), "run/custos/las.sock"),
             "CUSTOS_BIN": BUILD, "CAS": f"{self.vars['CAS_IP']}:{self.vars['CAS_PORT']}",
             "HELLO_ROUNDS": "1", "HELLO_INTERVAL": "0", "TMPDIR": self.tmp}
        e.update(env)
        r = subprocess.run(["bash", os.path.join(REPO, "examples", "hello-world", "run.sh"), *args],
                           capture_output=True, text=True, env=e, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"run.sh {' '.join(args)}: {r.stderr[-2000:]}")
        return r

    @staticmethod
    def checksum(r):
        """The checksum of the generated password print_env.py printed."""
        m = re.search(r"checksum of the API_PASSWORD is '([0-9a-f]+)'", r.stdout)
        if not m:
            raise RuntimeError(f"no checksum in the hello world's output: {r.stdout[-1000:]} {r.stderr[-1000:]}")
        return m.group(1)

    # --- observations through the API ------------------------------------------------------------------
    def pod(self, name, ns=NS):
        status, pod = self.kube.api("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return pod if status == 200 else None

    def pods(self, selector, ns=NS):
        q = f"?labelSelector={selector.replace('/', '%2F').replace('=', '%3D')}" if selector else ""
        return self.kube.must("GET", f"/api/v1/namespaces/{ns}/pods{q}")["items"]

    @staticmethod
    def ready(pod):
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (pod.get("status") or {}).get("conditions") or [])

    def pod_on(self, selector, node, ready=False):
        return [p for p in self.pods(selector) if p["spec"].get("nodeName") == node and (not ready or self.ready(p))]

    def label_key(self):
        return f"cas-registered-cas.{NS}"

    def labelled(self):
        nodes = self.kube.must("GET", "/api/v1/nodes")["items"]
        return {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(self.label_key()) == "true"
                for n in nodes}

    def node_ready(self, name):
        node = self.kube.must("GET", f"/api/v1/nodes/{name}")
        return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), None)

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kubelet is not None:
                self.kubelet.check()
            v = cond()
            if v:
                return v
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")

    def summary(self):
        """The controller's last summary (the reference's), as a dict, or None."""
        found = re.findall(r"Nodes with registered CAS backups \(check logs for failed registrations\):\n(\{.*?\n\}|\{\})",
                           self.controller_log(), re.S)
        return json.loads(found[-1]) if found else None

    def wait_registered(self, timeout=180):
        try:
            return self.wait(lambda: (lambda s: s if s and all(s.get(w) for w in self.workers) else None)(
                self.summary()), timeout, "a backup on every worker (the controller's summary)")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; the controller's log:\n{self.controller_log()[-5000:]}") from None

    def scheduled_by(self, pod):
        """The Scheduled Event of a pod (the real scheduler's), or None."""
        items = self.kube.must("GET", f"/api/v1/namespaces/{NS}/events")["items"]
        evs = [e for e in items if e.get("reason") == "Scheduled" and e["involvedObject"].get("uid") == pod["metadata"]["uid"]]
        return evs[-1] if evs else None


def _relative(cmd):
    """charts/ and deploy/ are the checkout's."""
    return re.sub(r"(?<![\w/])(charts|deploy)/", r"$REPO/\1/", cmd)
