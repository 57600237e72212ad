# SPDX-License-Identifier: Apache-2.0
"""The Kubernetes test harness (kube.py) against the real kube-apiserver: the control plane is real
(etcd, kube-apiserver, RBAC, watches, pods/log); the kubelet is a stand-in (no kubelet or container
runtime can run here) that must report what a kubelet would."""
import os
import re
import subprocess
import textwrap
import time
import uuid

import yaml

from kube import BUILD_COMMAND, KUBE_VERSION, KubeCluster, StandInKubelet, kube_binary, las_pod, las_public_key

NODE_IP = "127.0.0.201"


def test_control_plane_binaries_are_built():
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        r = subprocess.run([kube_binary(name), "--version"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and f"v{KUBE_VERSION}" in r.stdout, \
            f"{name} --version: {r.stdout}{r.stderr} (rebuild: {BUILD_COMMAND})"


def test_node_registered(kube, kubelet):
    kubelet.add_node("node-a", NODE_IP, labels={"custos.test/zone": "a"})
    kubelet.add_node("cp-1", "127.0.0.202", control_plane=True)
    node = kubelet.node_object("node-a")
    info = node["status"]["nodeInfo"]
    uuid.UUID(info["bootID"])
    assert {"type": "InternalIP", "address": NODE_IP} in node["status"]["addresses"]
    assert {"type": "Hostname", "address": "node-a"} in node["status"]["addresses"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-a"
    assert node["metadata"]["labels"]["custos.test/zone"] == "a"
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    lease = kube.must("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a")
    assert lease["spec"]["holderIdentity"] == "node-a"

    cp = kubelet.node_object("cp-1")
    assert cp["metadata"]["labels"]["node-role.kubernetes.io/master"] == ""
    assert {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"} in cp["spec"]["taints"]

    kubelet.set_ready("node-a", False)
    ready = [c for c in kubelet.node_object("node-a")["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "False"
    kubelet.cordon("cp-1")
    assert kubelet.node_object("cp-1")["spec"]["unschedulable"] is True
    kubelet.uncordon("cp-1")
    assert not kubelet.node_object("cp-1")["spec"].get("unschedulable")
    kubelet.delete_node("cp-1")
    assert kube.api("GET", "/api/v1/nodes/cp-1")[0] == 404


SERVER = textwrap.dedent("""\
    import http.server, os, signal, sys, time
    ip, gate = sys.argv[1], sys.argv[2]
    env = os.environ
    print("hello from", env["POD_NAME"], "on", env["NODE"], "greeting", env["GREETING"], flush=True)
    print("args:", sys.argv[3:], flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (print("bye", flush=True), os._exit(0)))
    while not os.path.exists(gate):
        time.sleep(0.05)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404); self.end_headers()
        def log_message(self, *a): pass
    print("serving", flush=True)
    http.server.HTTPServer((ip, 8080), H).serve_forever()
""")


def tools_image(tmp_path):
    """An "image": a directory with python3 in it."""
    d = tmp_path / "image-tools"
    d.mkdir(exist_ok=True)
    if not (d / "python3").exists():
        os.symlink("/usr/bin/python3", d / "python3")
    return str(d)


def test_pod_runs_probes_logs_and_deletes(kube, kube_ns, kubelet, tmp_path):
    kubelet.images["test/tools:1"] = tools_image(tmp_path)
    kubelet.add_node("node-a", NODE_IP)
    code = os.path.join(kubelet.node_root("node-a"), "opt", "code")
    os.makedirs(code)
    with open(os.path.join(code, "server.py"), "w") as f:
        f.write(SERVER)
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {
            "nodeName": "node-a", "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web", "image": "test/tools:1",
                "command": ["/usr/bin/python3"],
                "args": ["/code/server.py", "$(POD_IP)", "/data/go", "$(GREETING)-x", "$$(GREETING)", "$(UNSET)",
                         "--dir=/data/sub"],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "GREETING", "value": "hi-$(NODE)"}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "volumeMounts": [{"name": "code", "mountPath": "/code"}, {"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "code", "hostPath": {"path": "/opt/code"}}, {"name": "data", "emptyDir": {}}],
        },
    }
    kube.create(kube_ns, pod)
    running = kubelet.wait_pod(kube_ns, "web", phase="Running", ready=False)
    st = running["status"]
    assert st["hostIP"] == NODE_IP
    assert re.fullmatch(r"127\.0\.[1-9]\d*\.\d+", st["podIP"]) and st["podIP"] != NODE_IP
    assert st["containerStatuses"][0]["state"].get("running")
    # not Ready while the readiness probe gets no answer (the server waits for its gate)
    time.sleep(1.5)
    assert kubelet.wait_pod(kube_ns, "web", ready=False)
    data_dir = [a for a in kubelet.pod_log(kube_ns, "web").split("'") if a.startswith("--dir=")][0][len("--dir="):]
    gate = os.path.join(os.path.dirname(data_dir), "go")
    open(gate, "w").close()
    kubelet.wait_pod(kube_ns, "web", ready=True, timeout=10)

    # the log through the real apiserver (it fetches it from the stand-in kubelet's HTTPS endpoint)
    status, log = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/web/log")
    assert status == 200, log
    assert "hello from web on node-a greeting hi-node-a" in log
    assert "'hi-node-a-x', '$(GREETING)', '$(UNSET)'" in log  # $(VAR) expansion as Kubernetes does it
    assert "serving" in log
    status, tail = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/web/log?tailLines=1")
    assert status == 200 and tail == "serving\n"
    status, head = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/web/log?limitBytes=5")
    assert status == 200 and head == "hello"

    # deletion: SIGTERM, then the kubelet removes the pod from the API
    procs = kubelet.pod_processes(kube_ns, "web")
    assert len(procs) == 1
    kube.must("DELETE", f"/api/v1/namespaces/{kube_ns}/pods/web")
    kubelet.wait_gone(kube_ns, "web", timeout=10)
    assert procs[0].poll() == 0, "SIGTERM ends the server with status 0"
    assert "bye" in kubelet.pod_log(kube_ns, "web")


def test_unknown_image_and_restart_policies(kube, kube_ns, kubelet, tmp_path):
    kubelet.images["test/tools:1"] = tools_image(tmp_path)
    kubelet.add_node("node-a", NODE_IP)

    def pod(name, image, policy, code):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": "node-a", "restartPolicy": policy,
                         "containers": [{"name": "c", "image": image,
                                         "command": ["python3", "-c", f"import sys; sys.exit({code})"]}]}}

    kube.create(kube_ns, pod("nope", "test/missing:1", "Always", 0))
    kube.create(kube_ns, pod("fails", "test/tools:1", "Never", 3))
    kube.create(kube_ns, pod("works", "test/tools:1", "OnFailure", 0))
    kube.create(kube_ns, pod("loops", "test/tools:1", "Always", 1))
    failed = kubelet.wait_pod(kube_ns, "fails", phase="Failed")
    assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    kubelet.wait_pod(kube_ns, "works", phase="Succeeded")
    kubelet.wait_pod(kube_ns, "loops", cond=lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 2)
    nope = kubelet.wait_pod(kube_ns, "nope", phase="Pending", ready=False)
    assert nope["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"


def test_las_pod_platform_and_reboot(kube, kube_ns, kubelet):
    kubelet.add_node("node-a", NODE_IP)
    kube.create(kube_ns, las_pod("node-a", "las-a", {"custos.test/role": "las"}))

    def key_through_api(restarts):
        def has_key(p):
            cs = p["status"]["containerStatuses"][0]
            if cs["restartCount"] != restarts or not cs["state"].get("running"):
                return False
            status, log = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/las-a/log")
            return status == 200 and las_public_key(log) is not None
        kubelet.wait_pod(kube_ns, "las-a", ready=True, cond=has_key)
        return las_public_key(kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/las-a/log")[1])

    key1 = key_through_api(0)
    assert re.fullmatch(r"0[23][0-9A-F]{64}", key1), key1
    root = kubelet.node_root("node-a")
    assert os.listdir(os.path.join(root, "var/lib/custos/platform")), "the platform directory is the node's"
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(root, "run/custos/las.sock")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(os.path.join(root, "run/custos/las.sock"))

    boot1 = kubelet.node_object("node-a")["status"]["nodeInfo"]["bootID"]
    pid1 = kubelet.pod_processes(kube_ns, "las-a")[0].pid
    kubelet.restart_node("node-a")
    assert kubelet.node_object("node-a")["status"]["nodeInfo"]["bootID"] != boot1
    assert key_through_api(1) == key1, "same machine, same key"
    assert kubelet.pod_processes(kube_ns, "las-a")[0].pid != pid1
    try:
        os.kill(pid1, 0)
        raise AssertionError(f"the old lasd ({pid1}) survived the reboot")
    except ProcessLookupError:
        pass

    kubelet.change_platform("node-a")
    kubelet.restart_node("node-a")
    assert key_through_api(2) != key1, "new machine secret, new key"


RBAC = textwrap.dedent("""\
    apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: reader
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata:
      name: pod-reader
    rules:
    - apiGroups: [""]
      resources: ["pods"]
      verbs: ["get", "list", "watch"]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata:
      name: pod-reader
    roleRef:
      apiGroup: rbac.authorization.k8s.io
      kind: Role
      name: pod-reader
    subjects:
    - kind: ServiceAccount
      name: placeholder
      namespace: placeholder
    """)


def test_rbac_service_account_and_client_certificates(kube, kube_ns, tmp_path):
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC)
    kube.apply_rbac(str(rbac), kube_ns, "reader")
    kube.apply_rbac(str(rbac), kube_ns, "reader")  # applying again replaces
    token = kube.service_account_token(kube_ns, "reader", 600)
    assert kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods", token=token)[0] == 200
    assert kube.api("GET", f"/api/v1/namespaces/{kube_ns}/secrets", token=token)[0] == 403
    assert kube.api("GET", "/api/v1/namespaces/default/pods", token=token)[0] == 403
    assert kube.api("POST", f"/api/v1/namespaces/{kube_ns}/pods", {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                    token=token)[0] == 403
    assert kube.api("GET", "/api/v1/pods", token="not-a-token")[0] == 401

    # kubeconfigs: the admin's token, a client certificate without rights, one in system:masters
    admin = yaml.safe_load(open(kube.kubeconfig_admin(tmp_path / "admin.kubeconfig")))
    assert admin["clusters"][0]["cluster"]["server"] == kube.url
    assert kube.api("GET", "/api/v1/nodes", token=admin["users"][0]["user"]["token"])[0] == 200
    alice = kube.kubeconfig_client_cert(tmp_path / "alice.kubeconfig", "alice", ["custos-testers"])
    assert yaml.safe_load(open(alice))["users"][0]["user"]["client-certificate-data"]
    status, out = kube.api("GET", "/api/v1/namespaces", cert=kube.client_certs[alice])
    assert status == 403 and 'User "alice"' in out["message"], out
    root = kube.kubeconfig_client_cert(tmp_path / "root.kubeconfig", "root", ["system:masters"])
    assert kube.api("GET", "/api/v1/namespaces", cert=kube.client_certs[root])[0] == 200


IN_CLUSTER = textwrap.dedent("""\
    import http.client, os, ssl
    sa = os.environ["SA_DIR"]
    print("config", open(os.path.join(os.environ["CFG"], "greeting")).read(), os.environ["PW"], flush=True)
    ctx = ssl.create_default_context(cafile=os.path.join(sa, "ca.crt"))
    token, ns = open(os.path.join(sa, "token")).read(), open(os.path.join(sa, "namespace")).read()
    for what in ("pods", "secrets"):
        c = http.client.HTTPSConnection(os.environ["KUBERNETES_SERVICE_HOST"],
                                        int(os.environ["KUBERNETES_SERVICE_PORT"]), context=ctx)
        c.request("GET", f"/api/v1/namespaces/{ns}/{what}", headers={"Authorization": "Bearer " + token})
        print(what, c.getresponse().status, flush=True)
""")


def test_in_cluster_service_account_and_config_volumes(kube, kube_ns, kubelet, tmp_path):
    """A pod naming a serviceAccountName gets a token as in-cluster clients expect it (the stand-in
    does the disabled ServiceAccount admission plugin's part); configMap/secret volumes and env."""
    kubelet.images["test/tools:1"] = tools_image(tmp_path)
    kubelet.add_node("node-a", NODE_IP)
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC)
    kube.apply_rbac(str(rbac), kube_ns, "reader")
    kube.create(kube_ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                          "data": {"greeting": "hi"}})
    kube.create(kube_ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                          "stringData": {"pw": "s3cret"}})
    kube.create(kube_ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
        "spec": {"nodeName": "node-a", "restartPolicy": "Never", "serviceAccountName": "reader",
                 "containers": [{
                     "name": "c", "image": "test/tools:1", "command": ["python3", "-c", IN_CLUSTER],
                     "env": [{"name": "SA_DIR", "value": "/var/run/secrets/kubernetes.io/serviceaccount"},
                             {"name": "CFG", "value": "/etc/cfg"},
                             {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}}],
                     "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
                 "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}})
    kubelet.wait_pod(kube_ns, "client", phase="Succeeded")
    status, log = kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/client/log")
    assert status == 200 and log == "config hi s3cret\npods 200\nsecrets 403\n", log
    assert kube.api("GET", f"/api/v1/namespaces/{kube_ns}/pods/client/log?follow=true") == (status, log)


def test_apiserver_restart_keeps_objects(kube, kube_ns, kubelet):
    kubelet.add_node("node-a", NODE_IP)
    cm = kube.create(kube_ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"},
                               "data": {"k": "v"}})
    kube.restart_apiserver()
    again = kube.must("GET", f"/api/v1/namespaces/{kube_ns}/configmaps/keep")
    assert again["metadata"]["uid"] == cm["metadata"]["uid"] and again["data"] == {"k": "v"}
    # the stand-in kubelet's watch comes back too: a pod created now still runs
    kube.create(kube_ns, las_pod("node-a", "las-after"))
    kubelet.wait_pod(kube_ns, "las-after", ready=True, timeout=30)


def test_controller_manager_and_scheduler_drive_the_stand_in(tmp_path):
    """with_controller_manager/with_scheduler: a DaemonSet's pod is made by the real controller-manager,
    bound by the real scheduler and run by the stand-in kubelet; the namespace's default
    ServiceAccount appears (the controller-manager's work)."""
    cluster = KubeCluster(tmp_path / "cp", with_controller_manager=True, with_scheduler=True)
    kubelet = None
    try:
        cluster.start()
        kubelet = StandInKubelet(cluster, tmp_path / "nodes", default_probe_period=0.5)
        kubelet.add_node("node-a", NODE_IP)
        ns = cluster.namespace()
        pod = las_pod("node-a", "unused")
        spec = dict(pod["spec"])
        del spec["nodeName"]
        cluster.create(ns, {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "las"},
                            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "las"}},
                                     "template": {"metadata": {"labels": pod["metadata"]["labels"]}, "spec": spec}}})
        deadline = time.monotonic() + 45
        items = []
        while time.monotonic() < deadline:
            kubelet.check()
            items = cluster.must("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
            if items and any(c["type"] == "Ready" and c["status"] == "True"
                             for c in items[0].get("status", {}).get("conditions", [])):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"no Ready DaemonSet pod: {items}")
        assert items[0]["spec"]["nodeName"] == "node-a"
        assert items[0]["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        deadline = time.monotonic() + 20
        while cluster.api("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] != 200:
            assert time.monotonic() < deadline, "no default ServiceAccount from the controller-manager"
            time.sleep(0.3)
    finally:
        if kubelet is not None:
            kubelet.stop()
        cluster.stop()
    kubelet.check()
