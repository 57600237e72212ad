# SPDX-License-Identifier: Apache-2.0
"""A real Kubernetes control plane for the integration tests, and a stand-in kubelet.

Real: etcd, kube-apiserver v1.20.2 (built by scripts/kube-build.sh from Debian's source package) with
TLS, static-token and client-certificate authentication, RBAC, service-account tokens (TokenRequest),
watches, the status subresource and the pods/log path; optionally kube-controller-manager and
kube-scheduler from the same source.

Stand-in: the kubelet. No kubelet or container runtime can run here (no container runtime, no root
mount/network namespaces, no cgroups to give it), so StandInKubelet plays the kubelet of each simulated
node through the same API a kubelet uses: it registers the Node, renews its Lease and Ready heartbeat,
watches the pods bound to its nodes, runs each container as a local process (the image names a
directory of binaries), reports the pod's status (IP, phase, conditions, container states, readiness
from the pod's own readiness probe), serves container logs to the apiserver over HTTPS, and completes
graceful deletion. Whatever a test observes through the API is what a real kubelet would report; what
is simulated is the isolation (see StandInKubelet).

Usage (see test_kube_harness.py):

    def test_x(kube, kube_ns, kubelet):            # fixtures from conftest.py
        kubelet.add_node("node-1", "127.0.0.11")
        kube.create(kube_ns, las_pod("node-1", "las-1"))
        pod = kubelet.wait_pod(kube_ns, "las-1", ready=True)
"""
import base64
import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import pytest
import yaml

from harness import BUILD, _started, _stop, check_sanitizers, free_port

KUBE_VERSION = "1.20.2"
KUBE_CACHE = os.environ.get("CUSTOS_KUBE_CACHE",
                            os.path.join(os.path.expanduser("~"), ".cache", "custos", f"kube-{KUBE_VERSION}"))
KUBE_BIN = os.path.join(KUBE_CACHE, "bin")
BUILD_COMMAND = "bash scripts/kube-build.sh"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def kube_binary(name):
    """The path of a control-plane binary built by scripts/kube-build.sh; fails (never skips) when absent."""
    path = os.path.join(KUBE_BIN, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build it with `{BUILD_COMMAND}` (from {REPO}; takes a few minutes, "
                    f"cached in {KUBE_CACHE})", pytrace=False)
    return path


def etcd_binary():
    path = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(path, os.X_OK):
        pytest.fail("etcd is missing: run scripts/install-deps.sh (etcd-server)", pytrace=False)
    return path


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(t=None):
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def microtime(t=None):
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")
    return r


class Pki:
    """The cluster's keys, made with openssl: a serving CA (apiserver and kubelet serving certificates),
    a client CA (client-certificate users, --client-ca-file), and the service-account RSA key pair."""

    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        for ca in ("ca", "client-ca"):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                     "-days", "30", "-subj", f"/CN=custos-test-{ca}", cwd=self.dir)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=self.dir)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=self.dir)
        self.ca = self.path("ca.crt")
        self.client_ca = self.path("client-ca.crt")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, subject, ca="ca", ips=(), dns=(), client=False):
        """A key and a certificate signed by `ca`; returns (cert path, key path)."""
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            if client:
                f.write("extendedKeyUsage=clientAuth\n")
            else:
                sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
                f.write("extendedKeyUsage=serverAuth\n")
                if sans:
                    f.write("subjectAltName=" + ",".join(sans) + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "30", "-extfile", ext, cwd=self.dir)
        return self.path(f"{name}.crt"), self.path(f"{name}.key")


class _Proc:
    """A control-plane process logging to a file."""

    def __init__(self, label, args, log_path):
        self.label, self.args, self.log_path = label, args, log_path
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        _started.append(self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        if self.proc is not None:
            _stop(self.proc, timeout=timeout)
            self.proc = None

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


class KubeError(AssertionError):
    pass


class KubeCluster:
    """etcd + kube-apiserver on 127.0.0.1 (free ports), RBAC on; optionally kube-controller-manager and
    kube-scheduler. All files under `tmpdir`."""

    ADMIN_TOKEN_USER = "custos-test-admin"

    def __init__(self, tmpdir, with_controller_manager=False, with_scheduler=False, node_monitor_grace_seconds=60):
        """node_monitor_grace_seconds: the controller-manager's --node-monitor-grace-period, how long
        after a node's last heartbeat (its Lease) it is marked NotReady and tainted; the kubelet's
        default is 40 s, tests that stop a node pass less (with a StandInKubelet heartbeat well below)."""
        self.dir = str(tmpdir)
        self.node_monitor_grace_seconds = int(node_monitor_grace_seconds)
        os.makedirs(self.dir, exist_ok=True)
        self.with_controller_manager = with_controller_manager
        self.with_scheduler = with_scheduler
        self.host = "127.0.0.1"
        self.admin_token = base64.b32encode(os.urandom(20)).decode().lower()
        self.etcd = self.apiserver = self.controller_manager = self.scheduler = None
        self.pki = None
        self.port = None
        self._ns_counter = 0
        self.client_certs = {}  # kubeconfig path -> (certificate file, key file), for api(cert=...)

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self):
        apiserver_bin = kube_binary("kube-apiserver")
        cm_bin = kube_binary("kube-controller-manager") if self.with_controller_manager else None
        sched_bin = kube_binary("kube-scheduler") if self.with_scheduler else None
        self.pki = Pki(os.path.join(self.dir, "pki"))
        self.pki.issue("apiserver", "/CN=kube-apiserver", ips=["127.0.0.1"],
                       dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"])
        self.pki.issue("front-proxy-client", "/CN=front-proxy-client", ca="client-ca", client=True)
        tokens = os.path.join(self.dir, "tokens.csv")
        with open(tokens, "w") as f:
            f.write(f'{self.admin_token},{self.ADMIN_TOKEN_USER},{self.ADMIN_TOKEN_USER},"system:masters"\n')

        etcd_client, etcd_peer = free_port(self.host), free_port(self.host)
        self.etcd = _Proc("etcd", [
            etcd_binary(), "--name", "custos-test", "--data-dir", os.path.join(self.dir, "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"custos-test=http://127.0.0.1:{etcd_peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port(self.host)}",
        ], os.path.join(self.dir, "etcd.log")).start()

        self.port = free_port(self.host)
        p = self.pki.path
        self.apiserver = _Proc("kube-apiserver", [
            apiserver_bin,
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}", "--insecure-port=0",
            f"--cert-dir={os.path.join(self.dir, 'apiserver-certs')}",
            f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
            f"--client-ca-file={p('client-ca.crt')}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # The apiserver reaches the (stand-in) kubelets on their InternalIP (127.0.0.x) for pods/log;
            # without --kubelet-certificate-authority it does not verify their serving certificates.
            "--kubelet-preferred-address-types=InternalIP",
            # The ServiceAccount admission plugin refuses every pod until the namespace's `default`
            # ServiceAccount (and its token Secret) exist; the controller-manager's serviceaccount and
            # token controllers make them, and it is not run by default. StandInKubelet mounts a
            # TokenRequest token itself for pods that name a serviceAccountName.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            # the aggregation-layer CA flags keep the controller-manager and scheduler quiet
            f"--requestheader-client-ca-file={p('client-ca.crt')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p('front-proxy-client.crt')}",
            f"--proxy-client-key-file={p('front-proxy-client.key')}",
            "--profiling=false", "--v=1",
        ], os.path.join(self.dir, "kube-apiserver.log")).start()
        self.wait_ready()

        if cm_bin:
            kc = self.kubeconfig_admin(os.path.join(self.dir, "admin.kubeconfig"))
            self.controller_manager = _Proc("kube-controller-manager", [
                cm_bin, f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port(self.host)}", "--port=0",
                "--leader-elect=false", "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p('sa.key')}", f"--root-ca-file={self.pki.ca}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
                # the stand-in kubelet renews Leases every `heartbeat` s (10 by default); the default
                # grace (60 s) is lenient with slow test machines
                f"--node-monitor-grace-period={self.node_monitor_grace_seconds}s",
                "--node-monitor-period=2s", "--node-startup-grace-period=120s",
                "--profiling=false", "--v=1",
            ], os.path.join(self.dir, "kube-controller-manager.log")).start()
        if sched_bin:
            kc = self.kubeconfig_admin(os.path.join(self.dir, "admin.kubeconfig"))
            self.scheduler = _Proc("kube-scheduler", [
                sched_bin, f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port(self.host)}", "--port=0",
                "--leader-elect=false", "--profiling=false", "--v=1",
            ], os.path.join(self.dir, "kube-scheduler.log")).start()
        return self

    def stop(self):
        for p in (self.scheduler, self.controller_manager, self.apiserver, self.etcd):
            if p is not None:
                p.stop()

    def restart_apiserver(self, grace=3):
        """Stops kube-apiserver (SIGTERM, SIGKILL after `grace` seconds: on SIGTERM it waits up to 60 s
        for open watches to end, and every stand-in kubelet holds one) and starts it again on the same
        port and etcd data."""
        self.apiserver.stop(timeout=grace)
        self.apiserver.start()
        self.wait_ready()

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in (self.etcd, self.apiserver):
                if not p.alive():
                    raise KubeError(f"{p.label} exited; log {p.log_path}:\n{p.tail()}")
            try:
                status, body = self.api("GET", "/readyz")
                if status == 200:
                    return self
                last = (status, body)
            except OSError as e:
                last = e
            time.sleep(0.25)
        raise KubeError(f"kube-apiserver not ready in {timeout} s ({last}); log {self.apiserver.log_path}:\n"
                        + self.apiserver.tail())

    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    # --- the API ---------------------------------------------------------------------------------------
    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        return ctx

    def connection(self, timeout=30, cert=None):
        ctx = self.ssl_context()
        if cert:
            ctx.load_cert_chain(*cert)
        return http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=timeout)

    def api(self, method, path, body=None, token=None, content_type="application/json", timeout=30, cert=None):
        """One request as the admin, or as `token`, or with the client certificate `cert` (a pair of
        file paths: certificate, key); returns (status, parsed JSON or text)."""
        conn = self.connection(timeout, cert)
        try:
            headers = {"Accept": "application/json"}
            if token or not cert:
                headers["Authorization"] = f"Bearer {token or self.admin_token}"
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text

    def must(self, method, path, body=None, ok=(200, 201), **kw):
        status, out = self.api(method, path, body, **kw)
        if status not in ok:
            raise KubeError(f"{method} {path}: {status} {out}")
        return out

    def patch_status(self, path, status, token=None):
        """A merge patch of an object's status subresource."""
        return self.api("PATCH", path + "/status", {"status": status}, token=token,
                        content_type="application/merge-patch+json")

    @staticmethod
    def object_path(obj, namespace=None):
        """The collection path of an object's kind (core, apps, rbac, coordination, ...)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural = _PLURALS.get(kind) or kind.lower() + "s"
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        ns = namespace or obj.get("metadata", {}).get("namespace")
        if kind in _CLUSTER_SCOPED:
            return f"{prefix}/{plural}"
        return f"{prefix}/namespaces/{ns}/{plural}"

    def create(self, namespace, obj, token=None):
        """Creates `obj` (a dict) in `namespace` (None for cluster-scoped kinds); returns the stored object."""
        return self.must("POST", self.object_path(obj, namespace), obj, token=token)

    def apply(self, obj, namespace=None):
        """Creates the object or replaces the existing one (by name), like `kubectl apply` for our needs."""
        path = self.object_path(obj, namespace)
        name = obj["metadata"]["name"]
        status, cur = self.api("GET", f"{path}/{name}")
        if status == 404:
            return self.must("POST", path, obj)
        if status != 200:
            raise KubeError(f"GET {path}/{name}: {status} {cur}")
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        return self.must("PUT", f"{path}/{name}", obj)

    def namespace(self, prefix="t"):
        """A fresh namespace (random suffix); returns its name. (No namespace controller runs unless
        with_controller_manager: namespaces are left behind, with the cluster's tmpdir.)"""
        self._ns_counter += 1
        name = f"{prefix}-{self._ns_counter}-{os.urandom(3).hex()}"
        self.must("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    # --- credentials -----------------------------------------------------------------------------------
    def _ca_data(self):
        with open(self.pki.ca, "rb") as f:
            return base64.b64encode(f.read()).decode()

    def _write_kubeconfig(self, path, user_name, user):
        cfg = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "custos-test", "cluster": {"server": self.url,
                                                            "certificate-authority-data": self._ca_data()}}],
            "users": [{"name": user_name, "user": user}],
            "contexts": [{"name": "custos-test", "context": {"cluster": "custos-test", "user": user_name}}],
            "current-context": "custos-test",
        }
        path = str(path)
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        os.chmod(path, 0o600)
        return path

    def kubeconfig_admin(self, path):
        """A kubeconfig with the CA (certificate-authority-data) and the admin's token (system:masters)."""
        return self._write_kubeconfig(path, "admin", {"token": self.admin_token})

    def kubeconfig_token(self, path, token, user_name="token-user"):
        return self._write_kubeconfig(path, user_name, {"token": token})

    def kubeconfig_client_cert(self, path, user, groups=()):
        """A kubeconfig with a client certificate (CN=user, O=each group) signed by the client CA."""
        subject = "/CN=" + user + "".join(f"/O={g}" for g in groups)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user) + "-" + os.urandom(3).hex()
        crt, key = self.pki.issue(f"user-{safe}", subject, ca="client-ca", client=True)
        with open(crt, "rb") as f:
            crt_data = base64.b64encode(f.read()).decode()
        with open(key, "rb") as f:
            key_data = base64.b64encode(f.read()).decode()
        self.client_certs[str(path)] = (crt, key)
        return self._write_kubeconfig(path, user, {"client-certificate-data": crt_data, "client-key-data": key_data})

    def ensure_service_account(self, namespace, name):
        status, out = self.api("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
        if status not in (201, 409):
            raise KubeError(f"creating ServiceAccount {namespace}/{name}: {status} {out}")

    def service_account_token(self, namespace, name, seconds=3600, bound_pod=None):
        """A token of ServiceAccount namespace/name through the TokenRequest API (the account is
        created when missing). bound_pod: (name, uid) to bind the token to a pod, as the kubelet does."""
        self.ensure_service_account(namespace, name)
        spec = {"expirationSeconds": int(seconds)}
        if bound_pod:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": bound_pod[0], "uid": bound_pod[1]}
        out = self.must("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return out["status"]["token"]

    def apply_rbac(self, yaml_path, namespace, sa_name):
        """Applies the RBAC documents of a multi-document YAML file (ServiceAccount, Role, ClusterRole,
        RoleBinding, ClusterRoleBinding; other kinds are ignored and returned): namespaced ones go to
        `namespace`, and every ServiceAccount subject of a binding becomes namespace/sa_name (created
        when missing). A ClusterRoleBinding that exists already keeps its other subjects, so several
        test namespaces can be bound by the same cluster-wide binding. Returns the ignored documents."""
        with open(yaml_path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        self.ensure_service_account(namespace, sa_name)
        ignored = []
        for d in docs:
            kind = d.get("kind")
            if kind not in ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
                ignored.append(d)
                continue
            d = json.loads(json.dumps(d))
            meta = d.setdefault("metadata", {})
            if kind in ("ServiceAccount", "Role", "RoleBinding"):
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if kind == "ServiceAccount":
                self.ensure_service_account(namespace, meta["name"])
                continue
            if kind.endswith("Binding"):
                subjects = []
                for s in d.get("subjects") or []:
                    if s.get("kind") == "ServiceAccount":
                        s = dict(s, namespace=namespace, name=sa_name)
                    subjects.append(s)
                if kind == "ClusterRoleBinding":
                    status, cur = self.api(
                        "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{meta['name']}")
                    if status == 200:
                        for s in cur.get("subjects") or []:
                            if s not in subjects:
                                subjects.append(s)
                d["subjects"] = subjects
            self.apply(d, namespace if kind in ("Role", "RoleBinding") else None)
        return ignored


_PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies", "PodSecurityPolicy": "podsecuritypolicies",
            "Ingress": "ingresses", "StorageClass": "storageclasses", "PriorityClass": "priorityclasses"}
_CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                   "CustomResourceDefinition", "PriorityClass", "ValidatingWebhookConfiguration",
                   "MutatingWebhookConfiguration", "CertificateSigningRequest"}


# ======================================================================================================
# The stand-in kubelet
# ======================================================================================================

_node_counter = [0]  # module-wide, so that two kubelets never hand out the same pod IPs
_node_counter_lock = threading.Lock()

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def _expand(s, env):
    """Kubernetes' $(VAR) expansion: $(VAR) becomes env[VAR] when VAR is defined, stays as is otherwise;
    $$ is an escaped $."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("$$", i):
            out.append("$")
            i += 2
        elif s.startswith("$(", i):
            j = s.find(")", i + 2)
            if j < 0:
                out.append(s[i:])
                break
            name = s[i + 2:j]
            out.append(env[name] if name in env else s[i:j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


class _Node:
    def __init__(self, name, ip, index, root, labels, control_plane):
        self.name, self.ip, self.index, self.root = name, ip, index, root
        self.labels, self.control_plane = labels, control_plane
        self.boot_id = str(uuid.uuid4())
        self.ready = True
        self.port = None
        self.server = None
        self.next_pod = 2
        self.running = True


class _Container:
    def __init__(self, spec):
        self.spec = spec
        self.name = spec["name"]
        self.proc = None
        self.restart_count = 0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.started_at = None
        self.ready = False
        self.probe_ok = 0
        self.probe_fail = 0
        self.next_probe = 0.0
        self.log_path = None
        self.prev_log_path = None
        self.backoff_until = 0.0
        self.image_error = None


class _PodWorker(threading.Thread):
    """Runs one pod: its containers as processes, its probes, its status, its deletion."""

    def __init__(self, kubelet, node, pod):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.k = kubelet
        self.node = node
        self.pod = pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.ip = kubelet._allocate_ip(node)
        self.dir = os.path.join(node.root, "pods", f"{self.ns}_{self.name}_{self.uid[:8]}")
        os.makedirs(self.dir, exist_ok=True)
        self.containers = [_Container(c) for c in pod["spec"]["containers"]]
        self.restart_policy = pod["spec"].get("restartPolicy", "Always")
        self.phase = "Pending"
        self.start_time = rfc3339()
        self.lock = threading.Lock()
        self.deleting = None  # grace seconds once a deletionTimestamp is seen
        self.gone = False  # the pod is no longer in the API
        self.reboot = False
        self.stopped = threading.Event()
        self.last_status = None
        self.last_conditions = {}
        self.volumes = {}
        self.sa_dir = None

    # --- volumes and environment -----------------------------------------------------------------------
    def _prepare_volumes(self):
        for v in self.pod["spec"].get("volumes") or []:
            name = v["name"]
            if "hostPath" in v:
                hp = v["hostPath"]
                path = os.path.join(self.node.root, hp["path"].lstrip("/"))
                if hp.get("type") in ("File", "FileOrCreate"):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    if hp.get("type") == "FileOrCreate" and not os.path.exists(path):
                        open(path, "a").close()
                else:
                    os.makedirs(path, exist_ok=True)
                self.volumes[name] = path
            elif "emptyDir" in v:
                self.volumes[name] = tempfile.mkdtemp(prefix=f"emptydir-{name}-", dir=self.dir)
            elif "secret" in v or "configMap" in v:
                self.volumes[name] = self._object_volume(v)
            elif "persistentVolumeClaim" in v:
                self.volumes[name] = self._claim_volume(v)
            else:
                raise KubeError(f"volume {name}: only hostPath, emptyDir, secret, configMap and "
                                f"persistentVolumeClaim are supported")
        spec = self.pod["spec"]
        if spec.get("serviceAccountName") and spec.get("automountServiceAccountToken", True):
            # What the ServiceAccount admission plugin (disabled) and the kubelet do together: a token
            # bound to this pod, the CA and the namespace at the usual path.
            self.sa_dir = os.path.join(self.dir, "serviceaccount")
            os.makedirs(self.sa_dir, exist_ok=True)
            token = self.k.cluster.service_account_token(self.ns, spec["serviceAccountName"], 3600,
                                                         bound_pod=(self.name, self.uid))
            with open(os.path.join(self.sa_dir, "token"), "w") as f:
                f.write(token)
            shutil.copy(self.k.cluster.pki.ca, os.path.join(self.sa_dir, "ca.crt"))
            with open(os.path.join(self.sa_dir, "namespace"), "w") as f:
                f.write(self.ns)

    def _claim_volume(self, v):
        """A PersistentVolumeClaim's volume: the claim must be Bound (the controller-manager's PV binder;
        the scheduler binds no pod before); its PersistentVolume's hostPath or local path lives in the
        kubelet's ONE shared storage directory, the same for every node: it stands for network storage
        that any node can mount."""
        claim = v["persistentVolumeClaim"]["claimName"]
        deadline = time.monotonic() + 30
        while True:
            status, pvc = self.k.cluster.api("GET", f"/api/v1/namespaces/{self.ns}/persistentvolumeclaims/{claim}")
            pv_name = (pvc.get("spec") or {}).get("volumeName") if status == 200 else None
            if pv_name and (pvc.get("status") or {}).get("phase") == "Bound":
                break
            if time.monotonic() > deadline:
                raise KubeError(f"volume {v['name']}: claim {claim} not bound: {status} {pvc}")
            time.sleep(0.2)
        pv = self.k.cluster.must("GET", f"/api/v1/persistentvolumes/{pv_name}")
        src = pv["spec"].get("hostPath") or pv["spec"].get("local")
        if not src:
            raise KubeError(f"volume {v['name']}: PersistentVolume {pv_name} is neither hostPath nor local")
        path = os.path.join(self.k.shared_storage, src["path"].lstrip("/"))
        os.makedirs(path, exist_ok=True)
        return path

    def _object_volume(self, v):
        kind, src = ("secrets", v["secret"]) if "secret" in v else ("configmaps", v["configMap"])
        oname = src.get("secretName") or src.get("name")
        status, obj = self.k.cluster.api("GET", f"/api/v1/namespaces/{self.ns}/{kind}/{oname}")
        if status != 200:
            if src.get("optional"):
                obj = {}
            else:
                raise KubeError(f"volume {v['name']}: {kind} {oname}: {status}")
        path = tempfile.mkdtemp(prefix=f"{v['name']}-", dir=self.dir)
        data = {k: base64.b64decode(x) for k, x in (obj.get("data") or {}).items()} if kind == "secrets" else \
            {k: x.encode() for k, x in (obj.get("data") or {}).items()}
        if kind == "configmaps":
            data.update({k: base64.b64decode(x) for k, x in (obj.get("binaryData") or {}).items()})
        items = src.get("items")
        for key, val in data.items():
            rel = key
            if items is not None:
                match = [i for i in items if i["key"] == key]
                if not match:
                    continue
                rel = match[0]["path"]
            dst = os.path.join(path, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(val)
        return path

    def _mounts(self, c):
        """(mountPath, local path) pairs of a container, longest mountPath first."""
        out = []
        for m in c.spec.get("volumeMounts") or []:
            if m["name"] not in self.volumes:
                raise KubeError(f"container {c.name}: volumeMount {m['name']} names no volume")
            local = self.volumes[m["name"]]
            if m.get("subPath"):
                local = os.path.join(local, m["subPath"])
                os.makedirs(local, exist_ok=True)
            out.append((m["mountPath"].rstrip("/") or "/", local))
        if self.sa_dir:
            out.append((SA_MOUNT, self.sa_dir))
        return sorted(out, key=lambda x: -len(x[0]))

    @staticmethod
    def _rewrite(value, mounts):
        """Stands in for the container's mount namespace: a value that starts with a mountPath (or
        `--flag=` and then a mountPath) gets the node-local path of that volume instead."""
        def one(v):
            for mp, local in mounts:
                if v == mp or v.startswith(mp + "/"):
                    return local + v[len(mp):]
            return None
        r = one(value)
        if r is not None:
            return r
        if value.startswith("-") and "=" in value:
            flag, _, rest = value.partition("=")
            r = one(rest)
            if r is not None:
                return f"{flag}={r}"
        return value

    def _field(self, path):
        fields = {"status.podIP": self.ip, "status.hostIP": self.node.ip, "spec.nodeName": self.node.name,
                  "metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                  "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "")}
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return (self.pod["metadata"].get(m.group(1)) or {}).get(m.group(2), "")
        if path not in fields:
            raise KubeError(f"fieldRef {path} is not supported by the stand-in kubelet")
        return fields[path]

    def _env(self, c):
        env = {}
        for src in c.spec.get("envFrom") or []:
            for kind, key in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                if kind in src:
                    status, obj = self.k.cluster.api("GET", f"/api/v1/namespaces/{self.ns}/{key}/{src[kind]['name']}")
                    data = obj.get("data", {}) if status == 200 else {}
                    for k, v in data.items():
                        env[src.get("prefix", "") + k] = base64.b64decode(v).decode() if key == "secrets" else v
        for e in c.spec.get("env") or []:
            if "value" in e:
                env[e["name"]] = _expand(e["value"], env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    env[e["name"]] = self._field(vf["fieldRef"]["fieldPath"])
                elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                    kind, ref = ("secrets", vf["secretKeyRef"]) if "secretKeyRef" in vf \
                        else ("configmaps", vf["configMapKeyRef"])
                    status, obj = self.k.cluster.api("GET", f"/api/v1/namespaces/{self.ns}/{kind}/{ref['name']}")
                    val = (obj.get("data") or {}).get(ref["key"]) if status == 200 else None
                    if val is None:
                        if ref.get("optional"):
                            continue
                        raise KubeError(f"env {e['name']}: {kind} {ref['name']} key {ref['key']} not found")
                    env[e["name"]] = base64.b64decode(val).decode() if kind == "secrets" else val
                else:
                    raise KubeError(f"env {e['name']}: valueFrom {list(vf)} is not supported by the stand-in kubelet")
            else:
                env[e["name"]] = ""
        return env

    # --- containers ------------------------------------------------------------------------------------
    def _start_container(self, c):
        image = c.spec.get("image", "")
        bindir = self.k.images.get(image)
        if bindir is None:
            c.image_error = ("ErrImagePull", f"image {image!r} is not known to the stand-in kubelet "
                             f"(known: {sorted(self.k.images)})")
            c.state = {"waiting": {"reason": c.image_error[0], "message": c.image_error[1]}}
            return
        cmd = list(c.spec.get("command") or []) + list(c.spec.get("args") or [])
        if not cmd:
            c.state = {"waiting": {"reason": "CreateContainerError",
                                   "message": "the stand-in kubelet needs a command (images have no entrypoint)"}}
            return
        exe = os.path.join(bindir, os.path.basename(cmd[0]))
        if not os.access(exe, os.X_OK):
            c.state = {"waiting": {"reason": "CreateContainerError",
                                   "message": f"{cmd[0]}: not found in image {image} ({bindir})"}}
            return
        mounts = self._mounts(c)
        env = self._env(c)
        # $(VAR) refers to the container's own environment, then each value is mapped to the node
        expanded = [_expand(a, env) for a in cmd[1:]]
        args = [exe] + [self._rewrite(a, mounts) for a in expanded]
        penv = {k: self._rewrite(v, mounts) for k, v in env.items()}
        base = {k: os.environ[k] for k in ("PATH", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                           "TPM2_SEAL_TOOL") if k in os.environ}
        base["HOSTNAME"] = self.name
        if self.sa_dir:
            base["KUBERNETES_SERVICE_HOST"] = self.k.cluster.host
            base["KUBERNETES_SERVICE_PORT"] = str(self.k.cluster.port)
            # no mount namespace puts the token at the standard path: kube/config.c's override
            base["KUBE_SERVICE_ACCOUNT_DIR"] = self.sa_dir
        base.update(penv)
        cwd = self._rewrite(c.spec["workingDir"], mounts) if c.spec.get("workingDir") else self.dir
        if c.log_path:
            c.prev_log_path = c.log_path
        c.log_path = os.path.join(self.dir, f"{c.name}-{c.restart_count}.log")
        with open(c.log_path, "wb") as logf:
            c.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                      env=base, cwd=cwd, start_new_session=True)
        _started.append(c.proc)
        c.started_at = rfc3339()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = False
        c.probe_ok = c.probe_fail = 0
        rp = c.spec.get("readinessProbe")
        c.next_probe = time.monotonic() + (rp.get("initialDelaySeconds", 0) if rp else 0)

    def _kill(self, c, sig):
        if c.proc is not None and c.proc.poll() is None:
            try:
                os.killpg(c.proc.pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self, c):
        """Notices an exited container; applies the restart policy."""
        if c.proc is None or c.proc.poll() is None:
            return
        rc = c.proc.returncode
        code = rc if rc >= 0 else 128 - rc
        c.last_state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                       "startedAt": c.started_at, "finishedAt": rfc3339(),
                                       "containerID": f"standin://{c.proc.pid}"}}
        c.state = c.last_state
        c.proc = None
        c.ready = False
        policy = self.restart_policy
        if self.deleting is None and (policy == "Always" or (policy == "OnFailure" and code != 0)):
            c.restart_count += 1
            # a short crash-loop back-off (the kubelet's starts at 10 s)
            c.backoff_until = time.monotonic() + min(0.5 * c.restart_count, 5)
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off restarting failed container {c.name}"}}

    def _probe(self, c):
        rp = c.spec.get("readinessProbe")
        if c.proc is None:
            return
        if not rp:
            c.ready = True
            return
        now = time.monotonic()
        if now < c.next_probe:
            return
        period = rp.get("periodSeconds") or 10
        if period == 10:
            # The apiserver stores a pod without periodSeconds with 10 (its default): the two cannot be
            # told apart, so 10 means "the kubelet's default" here, which tests make shorter.
            period = self.k.default_probe_period
        c.next_probe = now + period
        ok = self._probe_once(c, rp)
        if ok:
            c.probe_ok += 1
            c.probe_fail = 0
            if c.probe_ok >= rp.get("successThreshold", 1):
                c.ready = True
        else:
            c.probe_fail += 1
            c.probe_ok = 0
            if c.probe_fail >= rp.get("failureThreshold", 3) or not c.ready:
                c.ready = False

    def _port(self, c, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise KubeError(f"container {c.name}: no port named {port}")

    def _probe_once(self, c, rp):
        timeout = rp.get("timeoutSeconds", 1)
        try:
            if "httpGet" in rp:
                hg = rp["httpGet"]
                host, port = hg.get("host") or self.ip, self._port(c, hg["port"])
                if hg.get("scheme", "HTTP").upper() == "HTTPS":
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
                else:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                try:
                    headers = {h["name"]: h["value"] for h in hg.get("httpHeaders") or []}
                    conn.request("GET", hg.get("path", "/"), headers=headers)
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "tcpSocket" in rp:
                ts = rp["tcpSocket"]
                with socket.create_connection((ts.get("host") or self.ip, self._port(c, ts["port"])), timeout=timeout):
                    return True
            if "exec" in rp:
                mounts = self._mounts(c)
                cmd = [self._rewrite(a, mounts) for a in rp["exec"]["command"]]
                return subprocess.run(cmd, capture_output=True, timeout=timeout).returncode == 0
        except (OSError, subprocess.TimeoutExpired, ssl.SSLError, http.client.HTTPException):
            return False
        return False

    # --- status ----------------------------------------------------------------------------------------
    def _status(self):
        statuses = []
        for c in self.containers:
            s = {"name": c.name, "image": c.spec.get("image", ""), "imageID": "",
                 "ready": c.ready, "restartCount": c.restart_count, "started": c.proc is not None,
                 "state": c.state}
            if c.proc is not None:
                s["containerID"] = f"standin://{c.proc.pid}"
            if c.last_state and c.last_state is not c.state:
                s["lastState"] = c.last_state
            statuses.append(s)
        all_ready = all(c.ready for c in self.containers)
        terminated = [c.state.get("terminated") for c in self.containers]
        if all(terminated) and self.restart_policy != "Always":
            self.phase = "Succeeded" if all(t["exitCode"] == 0 for t in terminated) else "Failed"
            if self.restart_policy == "OnFailure" and self.phase == "Failed":
                self.phase = "Running"
        elif any(c.proc is not None for c in self.containers) or any(c.restart_count for c in self.containers):
            self.phase = "Running"
        ready = "True" if all_ready and self.phase == "Running" else "False"
        conds = [{"type": "Initialized", "status": "True"},
                 {"type": "Ready", "status": ready},
                 {"type": "ContainersReady", "status": ready},
                 {"type": "PodScheduled", "status": "True"}]
        return {"phase": self.phase, "hostIP": self.node.ip, "podIP": self.ip, "podIPs": [{"ip": self.ip}],
                "startTime": self.start_time, "conditions": conds, "containerStatuses": statuses}

    def _report(self):
        """Sends the pod's status when it changed (a merge patch of the status subresource)."""
        st = self._status()
        key = json.dumps(st, sort_keys=True)
        if key == self.last_status:
            return
        now = rfc3339()
        for cnd in st["conditions"]:  # lastTransitionTime only where the condition changed
            prev = self.last_conditions.get(cnd["type"])
            cnd["lastTransitionTime"] = prev[1] if prev and prev[0] == cnd["status"] else now
        try:
            status, out = self.k.cluster.patch_status(f"/api/v1/namespaces/{self.ns}/pods/{self.name}", st)
        except (OSError, http.client.HTTPException):
            status, out = None, None  # the apiserver is restarting: sent again on the next round
        if status == 200:
            self.last_status = key
            self.last_conditions = {c["type"]: (c["status"], c["lastTransitionTime"]) for c in st["conditions"]}
        elif status not in (None, 403, 404, 409, 500, 503):  # 403, 5xx: an apiserver just restarted
            self.k.errors.append(f"status of pod {self.ns}/{self.name}: {status} {out}")

    # --- the loop --------------------------------------------------------------------------------------
    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported to the test through the kubelet
            self.k.errors.append(f"pod {self.ns}/{self.name}: {type(e).__name__}: {e}")
            for c in self.containers:
                self._kill(c, signal.SIGKILL)
        finally:
            self.stopped.set()

    def _run(self):
        self._prepare_volumes()
        for c in self.containers:
            self._start_container(c)
        self._report()
        while True:
            with self.lock:
                deleting, gone, reboot = self.deleting, self.gone, self.reboot
                self.reboot = False
            if gone or not self.node.running:
                for c in self.containers:
                    self._kill(c, signal.SIGKILL)
                    if c.proc is not None:
                        c.proc.wait(timeout=10)
                return
            if deleting is not None:
                self._terminate(deleting)
                return
            if reboot:
                # the node rebooted: every container was killed with it; the kubelet starts them again
                for c in self.containers:
                    if c.proc is not None:
                        self._kill(c, signal.SIGKILL)
                        c.proc.wait(timeout=10)
                        c.last_state = {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": c.started_at,
                                                       "finishedAt": rfc3339(), "message": "node rebooted"}}
                        c.proc = None
                    c.restart_count += 1
                    c.backoff_until = 0
                    self._start_container(c)
            for c in self.containers:
                self._reap(c)
                if c.proc is None and c.state.get("waiting", {}).get("reason") == "CrashLoopBackOff" \
                        and time.monotonic() >= c.backoff_until:
                    self._start_container(c)
                self._probe(c)
            self._report()
            time.sleep(0.1)

    def _terminate(self, grace):
        """The kubelet's side of graceful deletion: SIGTERM, SIGKILL after the grace period, then the
        final DELETE (gracePeriodSeconds=0, uid precondition) that removes the pod from the API."""
        for c in self.containers:
            self._kill(c, signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0)
        for c in self.containers:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(c, signal.SIGKILL)
                c.proc.wait(timeout=10)
        for c in self.containers:
            self._reap(c)
        try:
            self._report()
        except OSError:
            pass
        # as the kubelet's status manager, retry while the apiserver is away (e.g. restarting)
        deadline = time.monotonic() + 90
        while True:
            try:
                status, out = self.k.cluster.api(
                    "DELETE", f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                    {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                     "preconditions": {"uid": self.uid}})
            except (OSError, http.client.HTTPException) as e:
                status, out = None, str(e)
            if (status in (200, 404, 409) or time.monotonic() > deadline or self.k.stopping.is_set()) \
                    and status not in (None, 403, 500, 503):
                break
            if time.monotonic() > deadline or self.k.stopping.is_set():
                break
            time.sleep(0.5)
        if status not in (200, 404, 409):
            self.k.errors.append(f"final delete of pod {self.ns}/{self.name}: {status} {out}")


class _LogHandler(http.server.BaseHTTPRequestHandler):
    """GET /containerLogs/{namespace}/{pod}/{container}: what the apiserver asks a kubelet for pods/log."""
    kubelet = None

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        parts = u.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "the stand-in kubelet serves only /containerLogs")
            return
        _, ns, pod, container = parts
        w = self.kubelet._worker_by_name(ns, pod)
        c = next((c for c in w.containers if c.name == container), None) if w else None
        if c is None:
            self.send_error(404, f"container {container} of pod {ns}/{pod} not found on this node")
            return
        path = c.prev_log_path if q.get("previous", ["false"])[0] == "true" else c.log_path
        if not path or not os.path.exists(path):
            self.send_error(400, f"container {container} has no {'previous ' if 'previous' in q else ''}log")
            return
        with open(path, "rb") as f:
            data = f.read()
        if "tailLines" in q:
            n = int(q["tailLines"][0])
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n > 0 else b""
        if "limitBytes" in q:
            data = data[:int(q["limitBytes"][0])]
        follow = q.get("follow", ["false"])[0] == "true"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if not follow:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
            pos = os.path.getsize(path)
            while c.proc is not None and c.log_path == path and not w.stopped.is_set():
                time.sleep(0.2)
                with open(path, "rb") as f:
                    f.seek(pos)
                    more = f.read()
                if more:
                    self.wfile.write(more)
                    self.wfile.flush()
                    pos += len(more)
        except OSError:
            pass


class StandInKubelet:
    """Plays the kubelet of simulated nodes against a real kube-apiserver.

    Why a stand-in: no kubelet can run here (it needs a container runtime, root, cgroups and mount and
    network namespaces). What it simulates, and how:
    - Images: `images` maps an image name to a directory of binaries; a container's command[0] is
      looked up there by its basename (e.g. {"custos/cas:dev": BUILD_DIR}). An unknown image leaves the
      container Waiting with reason ErrImagePull (the pod is never Ready). Containers need a command.
    - Addresses: each node has its own loopback address (the `ip` given to add_node, 127.0.0.x). Each
      pod gets its own address too, as pods do in Kubernetes: node number n (1, 2, ... in the order
      nodes are added, module-wide) hands out 127.0.n.m with m = 2, 3, ...; n >= 1 keeps pod addresses
      apart from node addresses (127.0.0.x). The pod's process binds to it itself (env fieldRef
      status.podIP); nothing enforces it.
    - Filesystems: stand in for mount namespaces. A hostPath volume is <nodes_root>/<node>/<hostPath>;
      an emptyDir a fresh directory under the pod's directory; secret/configMap volumes are files
      written there. Every env value and argument that starts with a volumeMount's mountPath (or is
      `--flag=` followed by one) is rewritten to the node-local path of that volume, and so is
      workingDir. A pod with spec.serviceAccountName gets a TokenRequest token bound to it, ca.crt and
      namespace as if mounted at /var/run/secrets/kubernetes.io/serviceaccount, plus
      KUBERNETES_SERVICE_HOST/PORT naming the apiserver (127.0.0.1, not a Service IP).
    - Probes: readinessProbe httpGet (HTTP, or HTTPS without verification), tcpSocket and exec; the
      period from the spec, or `default_probe_period` (10 s as in Kubernetes, tests pass less) when the
      spec gives none (the apiserver fills in 10 s then, so a period of exactly 10 s counts as none).
      No liveness or startup probes, no init containers, no resource limits.
    - Logs: each container's stdout+stderr goes to <node root>/pods/<ns>_<pod>_<uid>/<container>-<restart>.log,
      served over HTTPS on the node's InternalIP at its kubeletEndpoint port as
      /containerLogs/{ns}/{pod}/{container} (tailLines, limitBytes, previous, follow), so the
      apiserver's pods/log works. stop() fails the test when a pod's log holds a sanitizer report.
    - Lifecycle: restartPolicy Always/OnFailure restart an exited container (short back-off,
      restartCount + 1), Never leaves the pod Succeeded or Failed. A deletionTimestamp means SIGTERM to
      the container's process group, SIGKILL after the grace period, then the final DELETE
      (gracePeriodSeconds=0, uid precondition). restart_node is a reboot: new bootID, every container
      killed and started again. No pod sandbox: the pod keeps its address across restarts.
    - Unix sockets in hostPath volumes live under the test's tmp directory: keep node names and test
      names short enough for the 108-byte socket path limit.
    """

    def __init__(self, cluster, nodes_root, images=None, default_probe_period=10.0, heartbeat=10.0,
                 shared_storage=None):
        self.cluster = cluster
        self.nodes_root = str(nodes_root)
        os.makedirs(self.nodes_root, exist_ok=True)
        # PersistentVolumes (hostPath or local) of every node: one directory, network storage's stand-in
        self.shared_storage = str(shared_storage or os.path.join(self.nodes_root, "..", "shared-storage"))
        os.makedirs(self.shared_storage, exist_ok=True)
        self.images = dict(images if images is not None else default_images())
        self.default_probe_period = default_probe_period
        self.heartbeat = heartbeat
        self.nodes = {}
        self.workers = {}  # pod uid -> _PodWorker
        self.pods = {}  # pod uid -> last seen pod
        self.errors = []  # what went wrong in the background threads; check() fails the test with them
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self._watch_conn = None
        self._synced = threading.Event()
        self._watch_thread = threading.Thread(target=self._watch_loop, daemon=True, name="kubelet-watch")
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, daemon=True, name="kubelet-heartbeat")
        self._watch_thread.start()
        self._hb_thread.start()
        if not self._synced.wait(30):
            raise KubeError(f"stand-in kubelet: no pod list from the apiserver: {self.errors}")

    # --- nodes -----------------------------------------------------------------------------------------
    def node_root(self, name):
        return os.path.join(self.nodes_root, name)

    def add_node(self, name, ip, labels=None, control_plane=False):
        with _node_counter_lock:
            _node_counter[0] += 1
            index = (_node_counter[0] - 1) % 254 + 1
        node = _Node(name, ip, index, self.node_root(name), dict(labels or {}), control_plane)
        os.makedirs(node.root, exist_ok=True)
        self._serve_logs(node)
        lbl = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
               "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
        spec = {}
        if control_plane:
            lbl["node-role.kubernetes.io/master"] = ""
            spec["taints"] = [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]
        lbl.update(node.labels)
        self.cluster.must("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                    "metadata": {"name": name, "labels": lbl}, "spec": spec})
        with self.lock:
            self.nodes[name] = node
        self._node_status(node, full=True)
        self._renew_lease(node)
        # pods that were bound to this node before it existed
        with self.lock:
            pending = list(self.pods.values())
        for p in pending:
            self._sync(p)
        return node

    def _node_status(self, node, full=False):
        now = rfc3339()
        ready = {"type": "Ready", "status": "True" if node.ready else "False",
                 "reason": "KubeletReady" if node.ready else "KubeletNotReady",
                 "message": "stand-in kubelet is posting ready status" if node.ready else "set not ready by the test",
                 "lastHeartbeatTime": now}
        st = {"conditions": [ready] + [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": now}
            for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                         ("PIDPressure", "SufficientPID"))]}
        if full or getattr(node, "_ready_sent", None) != node.ready:
            ready["lastTransitionTime"] = now
            for c in st["conditions"][1:]:
                c["lastTransitionTime"] = now
            node._ready_sent = node.ready
        if full:
            st.update({
                "addresses": [{"type": "InternalIP", "address": node.ip}, {"type": "Hostname", "address": node.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": node.port}},
                "nodeInfo": self._node_info(node),
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi"},
            })
        # strategic merge: conditions merge by type
        status, out = self.cluster.api("PATCH", f"/api/v1/nodes/{node.name}/status", {"status": st},
                                       content_type="application/strategic-merge-patch+json")
        if status != 200:
            raise KubeError(f"node {node.name} status: {status} {out}")

    @staticmethod
    def _node_info(node):
        return {"bootID": node.boot_id, "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, node.name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, node.name)),
                "kernelVersion": os.uname().release, "osImage": "custos stand-in node",
                "containerRuntimeVersion": "standin://1", "kubeletVersion": f"v{KUBE_VERSION}",
                "kubeProxyVersion": f"v{KUBE_VERSION}", "operatingSystem": "linux", "architecture": "amd64"}

    def _renew_lease(self, node):
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        spec = {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": microtime()}
        status, out = self.cluster.api("PATCH", f"{path}/{node.name}", {"spec": spec},
                                       content_type="application/merge-patch+json")
        if status == 404:
            status, out = self.cluster.api("POST", path, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node.name, "namespace": "kube-node-lease"}, "spec": spec})
        if status not in (200, 201):
            raise KubeError(f"lease of node {node.name}: {status} {out}")

    def _heartbeat_loop(self):
        while not self.stopping.wait(self.heartbeat):
            with self.lock:
                nodes = [n for n in self.nodes.values() if n.running]
            for n in nodes:
                try:
                    self._renew_lease(n)
                    self._node_status(n)
                except OSError:
                    pass  # the apiserver is restarting: the next beat retries, as a kubelet does
                except KubeError as e:
                    if not self.stopping.is_set() and n.running:
                        self.errors.append(f"heartbeat of {n.name}: {e}")

    def _node(self, name):
        with self.lock:
            if name not in self.nodes:
                raise KubeError(f"no node {name} on this stand-in kubelet")
            return self.nodes[name]

    def set_ready(self, name, ready):
        node = self._node(name)
        node.ready = bool(ready)
        self._node_status(node)

    def cordon(self, name):
        self.cluster.must("PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}},
                          content_type="application/merge-patch+json")

    def uncordon(self, name):
        self.cluster.must("PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": None}},
                          content_type="application/merge-patch+json")

    def node_object(self, name):
        return self.cluster.must("GET", f"/api/v1/nodes/{name}")

    def restart_node(self, name):
        """A reboot: a new bootID; the node's pods' processes are killed and their containers started
        again (restartCount + 1), as the kubelet does after a reboot."""
        node = self._node(name)
        node.boot_id = str(uuid.uuid4())
        self._node_status(node, full=True)
        for w in self._workers_on(name):
            with w.lock:
                w.reboot = True

    def _power_off(self, name):
        """Kills the node's pods' processes and stops its heartbeats and log server."""
        node = self._node(name)
        node.running = False
        for w in self._workers_on(name):
            w.stopped.wait(15)
        if node.server:
            node.server.shutdown()
            node.server.server_close()
            node.server = None

    def delete_node(self, name):
        """The node goes away: its pods' processes are killed, its log server and Lease stop and the
        Node is deleted. Its pods stay in the API (the controller-manager's pod GC would delete them)."""
        self._power_off(name)
        self.cluster.api("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
        self.cluster.api("DELETE", f"/api/v1/nodes/{name}")
        with self.lock:
            del self.nodes[name]

    def stop_node(self, name):
        """The node dies (power lost): its pods' processes are killed, its heartbeats (Lease, Ready) and
        log server stop; the Node, its Lease and its pods stay in the API as they were. The
        controller-manager marks it NotReady (and taints it) node_monitor_grace_seconds later; its
        pods stay until deleted (a StatefulSet pod on Kubernetes 1.20: until force-deleted)."""
        self._power_off(name)

    def change_platform(self, name):
        """A hardware change on the node: its sim platform directory is replaced by an empty one, so
        lasd makes a new machine secret (and a new public key) when its pod restarts."""
        d = os.path.join(self.node_root(name), LAS_PLATFORM_DIR.lstrip("/"))
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)

    # --- logs server -----------------------------------------------------------------------------------
    def _serve_logs(self, node):
        crt, key = self.cluster.pki.issue(f"kubelet-{node.name}-{os.urandom(3).hex()}", f"/CN=system:node:{node.name}",
                                          ips=[node.ip], dns=[node.name])
        handler = type("Handler", (_LogHandler,), {"kubelet": self})
        for _ in range(20):
            try:
                server = http.server.ThreadingHTTPServer((node.ip, free_port(node.ip)), handler)
                break
            except OSError:
                continue
        else:
            raise KubeError(f"no port for the log server of {node.name}")
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        node.server = server
        node.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True, name=f"kubelet-logs-{node.name}").start()

    # --- pods ------------------------------------------------------------------------------------------
    def _allocate_ip(self, node):
        with self.lock:
            m = node.next_pod
            node.next_pod += 1
        if m > 254:
            raise KubeError(f"node {node.name}: out of pod addresses")
        return f"127.0.{node.index}.{m}"

    def _workers_on(self, node_name):
        with self.lock:
            return [w for w in self.workers.values() if w.node.name == node_name]

    def _worker_by_name(self, ns, name):
        with self.lock:
            ws = [w for w in self.workers.values() if w.ns == ns and w.name == name]
        return ws[-1] if ws else None

    def _sync(self, pod, deleted=False):
        uid = pod["metadata"]["uid"]
        node_name = pod["spec"].get("nodeName")
        with self.lock:
            if deleted:
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            node = self.nodes.get(node_name)
            w = self.workers.get(uid)
            if node is None or not node.running:
                return
            if w is None and not deleted:
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    return
                if pod["metadata"].get("deletionTimestamp"):
                    # nothing runs: complete the deletion at once
                    threading.Thread(target=self.cluster.api, daemon=True, args=(
                        "DELETE", f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}",
                        {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                         "preconditions": {"uid": uid}})).start()
                    return
                w = _PodWorker(self, node, pod)
                self.workers[uid] = w
                w.start()
                return
        if w is None:
            return
        with w.lock:
            if deleted:
                w.gone = True
            elif pod["metadata"].get("deletionTimestamp") and w.deleting is None:
                w.deleting = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)

    def _watch_loop(self):
        rv = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    lst = self.cluster.must("GET", "/api/v1/pods")
                    rv = lst["metadata"]["resourceVersion"]
                    for p in lst["items"]:
                        p.setdefault("apiVersion", "v1")
                        self._sync(p)
                    self._synced.set()
                rv = self._watch(rv)
            except (OSError, KubeError, http.client.HTTPException, ValueError) as e:
                if self.stopping.is_set():
                    return
                if not isinstance(e, OSError):
                    self.errors.append(f"pod watch: {type(e).__name__}: {e}")
                time.sleep(0.5)  # the apiserver may be restarting: list and watch again
                rv = None

    def _watch(self, rv):
        conn = self.cluster.connection(timeout=None)
        self._watch_conn = conn
        try:
            conn.request("GET", f"/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=60",
                         headers={"Authorization": f"Bearer {self.cluster.admin_token}"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise KubeError(f"watch: {resp.status} {resp.read()[:200]}")
            while not self.stopping.is_set():
                line = resp.readline()
                if not line:
                    return rv
                ev = json.loads(line)
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    return None  # e.g. 410 Gone: list again
                rv = obj["metadata"].get("resourceVersion", rv)
                if ev["type"] == "BOOKMARK":
                    continue
                self._sync(obj, deleted=ev["type"] == "DELETED")
            return rv
        finally:
            conn.close()

    # --- test helpers ----------------------------------------------------------------------------------
    def check(self):
        """Fails the test with what went wrong in the background (pod workers, heartbeats, watch)."""
        if self.errors:
            pytest.fail("stand-in kubelet:\n" + "\n".join(self.errors), pytrace=False)

    def wait_pod(self, namespace, name, ready=None, phase=None, timeout=30, cond=None):
        """Waits until the pod is Ready (ready=True), in `phase`, or cond(pod) holds; returns the pod."""
        deadline = time.monotonic() + timeout
        pod = None
        while time.monotonic() < deadline:
            self.check()
            status, pod = self.cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            if status == 200:
                st = pod.get("status") or {}
                is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
                if (ready is None or is_ready == ready) and (phase is None or st.get("phase") == phase) \
                        and (cond is None or cond(pod)):
                    return pod
            time.sleep(0.1)
        raise KubeError(f"pod {namespace}/{name} not ready={ready} phase={phase} in {timeout} s: "
                        f"{json.dumps((pod or {}).get('status'), indent=1)}\n"
                        f"log: {self.pod_log(namespace, name)[-2000:]}")

    def wait_gone(self, namespace, name, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            status, _ = self.cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
            if status == 404:
                return
            time.sleep(0.1)
        raise KubeError(f"pod {namespace}/{name} still there after {timeout} s")

    def pod_log(self, namespace, name, container=None):
        """The current log file of a container (the first one by default), read directly (for debugging)."""
        w = self._worker_by_name(namespace, name)
        if w is None:
            return ""
        c = next((c for c in w.containers if container in (None, c.name)), None)
        if c is None or not c.log_path:
            return ""
        with open(c.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def pod_processes(self, namespace, name):
        """The live processes (Popen) of the pod's containers."""
        w = self._worker_by_name(namespace, name)
        return [c.proc for c in w.containers if c.proc is not None] if w else []

    def stop(self):
        """Kills every pod process, force-deletes the pods of its nodes and deletes its Nodes and Leases
        (the API stays clean for the next test on a session cluster), then checks the pods' logs for
        sanitizer reports."""
        self.stopping.set()
        if self._watch_conn is not None and self._watch_conn.sock is not None:
            try:
                self._watch_conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            nodes = list(self.nodes.values())
            workers = list(self.workers.values())
        for n in nodes:
            n.running = False
        for w in workers:
            w.stopped.wait(15)
        logs = []
        for w in workers:
            self.cluster.api("DELETE", f"/api/v1/namespaces/{w.ns}/pods/{w.name}",
                             {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                              "preconditions": {"uid": w.uid}})
            for c in w.containers:
                for p in (c.prev_log_path, c.log_path):
                    if p and os.path.exists(p):
                        logs.append(p)
        for n in nodes:
            if n.server:
                n.server.shutdown()
                n.server.server_close()
            self.cluster.api("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{n.name}")
            self.cluster.api("DELETE", f"/api/v1/nodes/{n.name}")
        for p in sorted(set(logs)):
            with open(p, "rb") as f:
                check_sanitizers(f.read().decode(errors="replace"), f"pod log {p}")


def chart_app_version():
    """The charts' appVersion (charts/*/Chart.yaml, the images' default tag: meson.build's version)."""
    with open(os.path.join(REPO, "charts", "cas", "Chart.yaml")) as f:
        return str(yaml.safe_load(f)["appVersion"])


def default_images():
    """The images of this project as the stand-in kubelet knows them: the build directory's binaries,
    under the tests' names (custos/*:dev) and the charts' (custos/las, custos/cas and
    custos/cas-backup-controller at the charts' appVersion, what scripts/images.sh builds)."""
    v = chart_app_version()
    images = {"custos/cas:dev": BUILD, "custos/las:dev": BUILD}
    images.update({f"custos/{name}:{v}": BUILD for name in ("las", "cas", "cas-backup-controller")})
    return images


LAS_PLATFORM_DIR = "/var/lib/custos/platform"
LAS_RUN_DIR = "/run/custos"


def las_pod(node, name, labels=None, image="custos/las:dev", extra_args=()):
    """A Pod running lasd (sim platform) on `node` (spec.nodeName: no scheduler needed), its platform
    directory and socket directory as hostPath volumes, labelled app.kubernetes.io/name=las."""
    lbl = {"app.kubernetes.io/name": "las"}
    lbl.update(labels or {})
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": lbl},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "las", "image": image,
                "command": ["lasd"],
                "args": ["--platform", "sim", "--platform-dir", LAS_PLATFORM_DIR,
                         "--socket", f"{LAS_RUN_DIR}/las.sock", *extra_args],
                "volumeMounts": [{"name": "platform", "mountPath": LAS_PLATFORM_DIR},
                                 {"name": "run", "mountPath": LAS_RUN_DIR}],
            }],
            "volumes": [{"name": "platform", "hostPath": {"path": LAS_PLATFORM_DIR, "type": "DirectoryOrCreate"}},
                        {"name": "run", "hostPath": {"path": LAS_RUN_DIR, "type": "DirectoryOrCreate"}}],
        },
    }


def las_public_key(log_text):
    """The last `LAS started, public key: X` in a log, or None."""
    keys = re.findall(r"LAS started, public key: (\S+)", log_text)
    return keys[-1] if keys else None
