# SPDX-License-Identifier: Apache-2.0
"""kube/ (the controller's Kubernetes client) against answers a real apiserver does not give on demand:
a list page larger than the client's bound, a watch event line larger than its bound, a 410 Gone in
the middle of a watch (etcd compacted the version), bookmarks. A FAKE API server (Python, TLS on
127.0.0.1) sends them: the real kube-apiserver cannot be made to produce them at a chosen moment.
Everything else the client does runs against the real apiserver in test_controller.py."""
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ctl_harness import Controller
from harness import free_port, wait_for

MiB = 1 << 20


def node(name, rv):
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(rv)},
            "spec": {"unschedulable": True},
            "status": {"nodeInfo": {"bootID": "b"}, "conditions": [{"type": "Ready", "status": "True"}]}}


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *a):
        pass

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.state
        path = self.path
        st["requests"].append(path)
        if path.startswith("/api/v1/nodes?limit="):
            st["lists"] += 1
            if st["lists"] == 1:  # a page larger than the client's bound (16 MiB)
                items = [dict(node("big", 1), junk="x" * (17 * MiB))]
            else:
                items = [node("node-a", 10), node("node-b", 11)]
            return self.send_json({"kind": "NodeList", "metadata": {"resourceVersion": "20"}, "items": items})
        if path.startswith("/api/v1/nodes?watch=1"):
            st["watches"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if st["watches"] == 1:  # a bookmark, then 410 Gone: the client must list again
                chunk(json.dumps({"type": "BOOKMARK", "object": {"kind": "Node",
                                  "metadata": {"resourceVersion": "21"}}}).encode() + b"\n")
                chunk(json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                  "message": "too old resource version: 20 (30)"}}).encode() + b"\n")
                chunk(b"")
                return
            # an event line over the client's bound (4 MiB), then a good one: the big one is dropped whole
            big = json.dumps({"type": "MODIFIED", "object": dict(node("node-a", 31), junk="y" * (5 * MiB))})
            for i in range(0, len(big), 65536):
                chunk(big[i:i + 65536].encode())
            chunk(b"\n")
            chunk(json.dumps({"type": "ADDED", "object": node("node-c", 32)}).encode() + b"\n")
            st["sent_c"] = True
            time.sleep(30)
            return
        if "?watch=1" in path:  # pods: nothing happens
            time.sleep(30)
            return
        if "/pods?" in path:
            return self.send_json({"kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": []})
        return self.send_json({"kind": "Status", "code": 404, "reason": "NotFound", "message": "not here"}, 404)


def test_client_bounds_410_and_bookmarks(tmp_path):
    crt, key = tmp_path / "api.crt", tmp_path / "api.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    state = {"requests": [], "lists": 0, "watches": 0}
    handler = type("H", (FakeApi,), {"state": state})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "current-context": "fake", "clusters": [{"name": "fake", "cluster": {
            "server": f"https://127.0.0.1:{port}", "certificate-authority": str(crt)}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    cli = tmp_path / "cli.json"
    cli.write_text(json.dumps({"default_cas": "mycas", "cas": {"mycas": {"url": "https://127.0.0.1:1",
                                                                          "key_hash": "ab" * 32}}}))
    metrics = f"127.0.0.1:{free_port('127.0.0.1')}"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig),
           "SCONE_CLI_CONFIG": str(cli), "LEADER_ELECTION": "false", "METRICS_ADDR": metrics,
           "CONTROLLER_LOOP_INTERVAL_SECONDS": "3600"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    ctl = Controller(str(tmp_path), env)
    ctl.start()
    try:
        ctl.wait_log("answer larger than 16777216 bytes (retrying)", timeout=20)
        wait_for(lambda: state.get("sent_c"), timeout=30, what="the watch after the relist")
        ctl.wait_log("event(s) larger than 4194304 bytes dropped", timeout=20)
        assert state["lists"] >= 3  # the refused page, the list after it, the list after 410 Gone
        lists = [r for r in state["requests"] if r.startswith("/api/v1/nodes?limit=")]
        watches = [r for r in state["requests"] if r.startswith("/api/v1/nodes?watch=1")]
        assert "resourceVersion=20" in watches[0] and "allowWatchBookmarks=true" in watches[0]
        assert len(lists) >= 3
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
        relists = [float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("custos_backup_controller_api_relists_total")]
        assert relists and relists[0] >= 2
        with urllib.request.urlopen(f"http://{metrics}/readyz", timeout=5) as r:
            assert r.status == 200
    finally:
        ctl.stop()
        srv.shutdown()
