"""Checks of charts/tycho with no cluster: Helm's own engine renders and lints the chart with the default
values and every file under tests/chart/values/, every object is validated against the Kubernetes 1.33
schemas (strict), the RBAC rules are exactly what Tycho uses, the pod meets Pod Security "restricted",
values.schema.json rejects bad values, and the committed snapshots and CRD copy have not drifted.

Run: python -m pytest tests/chart   (UPDATE_SNAPSHOTS=1 rewrites tests/chart/snapshots/).
"""

from __future__ import annotations

import copy
import filecmp

import helm_python as helm
import pytest
import yaml

import chartlib
from chartlib import CHART, ROOT, Policy, Request, request_attributes

CASES = chartlib.value_cases()


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    name = request.param
    values = CASES[name]
    manifests = chartlib.render(values)
    return name, values, manifests, chartlib.objects(manifests)


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind):
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# --- Helm lint and schema validation of every rendered object

@pytest.mark.parametrize("name", sorted(CASES))
def test_helm_lint_strict(name):
    report = helm.lint(str(CHART), CASES[name], strict=True, kube_version="v" + chartlib.KUBE_VERSION,
                       namespace=chartlib.NAMESPACE)
    assert report["errors"] == [], report
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_every_object_is_valid_kubernetes(case):
    name, _, _, objs = case
    assert objs, f"{name}: nothing rendered"
    for obj in objs:
        try:
            chartlib.validate_kubernetes(obj)
        except Exception as e:  # noqa: BLE001 - report which object failed
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} is not valid Kubernetes 1.33: {e}")


def test_crd_is_valid_kubernetes_and_matches_the_generated_one():
    crds = chartlib.crd_objects()
    assert [c["metadata"]["name"] for c in crds] == ["systems.tycho.dev"]
    for crd in crds:
        chartlib.validate_kubernetes(crd)
    # `tycho crd` writes crds/; the chart must ship exactly that file (tests/chart_crd.rs checks it
    # against the Rust type itself).
    assert filecmp.cmp(ROOT / "crds" / "tycho.dev_systems.yaml", CHART / "crds" / "tycho.dev_systems.yaml",
                       shallow=False), "charts/tycho/crds/ drifted from crds/: cp crds/tycho.dev_systems.yaml charts/tycho/crds/"


def test_objects_are_labelled_and_namespaced(case):
    name, _, _, objs = case
    for obj in objs:
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", (name, obj["kind"])
        assert labels.get("app.kubernetes.io/part-of") == "tycho", (name, obj["kind"])
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace"), f"{name}: {obj['kind']} has no namespace"
        assert len(obj["metadata"]["name"]) <= 63


def test_snapshot_matches(case):
    name, _, manifests, _ = case
    text = chartlib.snapshot_text(manifests)
    path = chartlib.SNAPSHOTS / f"{name}.yaml"
    if chartlib.env_flag("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: run UPDATE_SNAPSHOTS=1 python -m pytest tests/chart"
    assert path.read_text() == text, f"{path} is out of date: review the diff, then UPDATE_SNAPSHOTS=1"


# --- The Deployment

def container(objs):
    deploy = one(objs, "Deployment")
    return deploy, deploy["spec"]["template"]["spec"], deploy["spec"]["template"]["spec"]["containers"][0]


def test_pod_meets_pod_security_restricted(case):
    name, _, _, objs = case
    _, pod, c = container(objs)
    assert chartlib.pod_security_violations(pod) == [], name
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 65532 and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_pod_security_checker_catches_violations():
    _, pod, _ = container(chartlib.objects(chartlib.render()))
    bad = copy.deepcopy(pod)
    bad["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    bad["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    bad["hostNetwork"] = True
    bad["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = chartlib.pod_security_violations(bad)
    assert len(found) == 5, found  # hostNetwork, hostPath, escalation, no drop ALL, SYS_ADMIN


def test_controller_arguments(case):
    name, values, _, objs = case
    merged = chartlib_merged(values)
    deploy, pod, c = container(objs)
    args = c["args"]
    assert args[0] == "controller"
    port = merged["metrics"]["port"]
    assert f"--metrics-addr=0.0.0.0:{port}" in args
    assert f"--gpu-resource={merged['gpuResourceName']}" in args
    assert [a.split("=", 1)[1] for a in args if a.startswith("--namespace=")] == merged["watchNamespaces"]
    assert ("--leader-elect" in args) == merged["leaderElection"]["enabled"]
    if merged["leaderElection"]["enabled"]:
        assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    else:
        assert deploy["spec"]["strategy"]["type"] == "Recreate"
    assert deploy["spec"]["replicas"] == merged["replicas"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TYCHO_LOG"] == merged["logLevel"] and env["TYCHO_LOG_FORMAT"] == merged["logFormat"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    templated = bool(merged["templates"]["existingConfigMap"] or merged["templates"]["overrides"])
    assert ("--templates=/etc/tycho/templates" in args) == templated
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert ("templates" in mounts) == templated
    if templated:
        cm_name = {v["name"]: v for v in pod["volumes"]}["templates"]["configMap"]["name"]
        if merged["templates"]["overrides"]:
            cm = one(objs, "ConfigMap")
            assert cm["metadata"]["name"] == cm_name
            assert cm["data"] == merged["templates"]["overrides"]
            assert "checksum/templates" in deploy["spec"]["template"]["metadata"]["annotations"]
        else:
            assert cm_name == merged["templates"]["existingConfigMap"] and not by_kind(objs, "ConfigMap")


def chartlib_merged(values):
    with helm.Chart.load(str(CHART)) as chart:
        return chart.merge_values(values)


def test_template_override_changes_roll_the_pods():
    def checksum(content):
        objs = chartlib.objects(chartlib.render({"templates": {"overrides": {"pod.yaml.tera": content}}}))
        return one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/templates"]
    assert checksum("a: 1") != checksum("a: 2")


def test_optional_objects(case):
    name, values, _, objs = case
    merged = chartlib_merged(values)
    assert bool(by_kind(objs, "PodDisruptionBudget")) == merged["podDisruptionBudget"]["enabled"]
    assert bool(by_kind(objs, "NetworkPolicy")) == merged["networkPolicy"]["enabled"]
    assert bool(by_kind(objs, "ServiceMonitor")) == merged["metrics"]["serviceMonitor"]["enabled"]
    assert bool(by_kind(objs, "Service")) == merged["metrics"]["service"]["enabled"]
    assert bool(by_kind(objs, "ServiceAccount")) == merged["serviceAccount"]["create"]
    selector = one(objs, "Deployment")["spec"]["selector"]["matchLabels"]
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for o in by_kind(objs, kind):
            key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
            assert o["spec"][key]["matchLabels"] == selector
    for svc in by_kind(objs, "Service"):
        assert svc["spec"]["selector"] == selector
    for sm in by_kind(objs, "ServiceMonitor"):
        svc = one(objs, "Service")
        assert all(sm["spec"]["selector"]["matchLabels"][k] == svc["metadata"]["labels"][k]
                   for k in sm["spec"]["selector"]["matchLabels"])
        assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
        for k, v in merged["metrics"]["serviceMonitor"]["labels"].items():
            assert sm["metadata"]["labels"][k] == v
    for np in by_kind(objs, "NetworkPolicy"):
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        ingress_ports = [p["port"] for r in np["spec"]["ingress"] for p in r["ports"]]
        assert ingress_ports == [merged["metrics"]["port"]]
        egress_ports = sorted({(p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"]})
        expected = sorted({(p, "TCP") for p in merged["networkPolicy"]["apiServer"]["ports"]} | {(53, "UDP"), (53, "TCP")})
        assert egress_ports == expected


# --- RBAC: exactly what Tycho uses, no wildcards

NAMESPACED = {
    ("tycho.dev", "systems"): {"list", "watch", "delete"},
    ("tycho.dev", "systems/status"): {"patch"},
    ("tycho.dev", "systems/finalizers"): {"update"},
    ("apps", "deployments"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch", "create", "patch", "delete"},
    ("", "services"): {"list", "watch", "create", "patch", "delete"},
    ("", "configmaps"): {"list", "watch", "create", "patch", "delete"},
    ("coordination.k8s.io", "leases"): {"list", "watch", "patch", "delete"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "persistentvolumeclaims"): {"list", "watch"},
}
CLUSTER = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get"},
    ("", "nodes"): {"list"},
}


def flatten(rules):
    out = {}
    for r in rules:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                out.setdefault((g, res), set()).update(r["verbs"])
    return out


def test_rbac_has_no_wildcards(case):
    name, _, _, objs = case
    for o in by_kind(objs, "ClusterRole") + by_kind(objs, "Role"):
        for rule in o["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{name}: wildcard in {o['kind']}/{o['metadata']['name']}"
            assert not rule.get("nonResourceURLs"), name


def test_rbac_grants_exactly_what_tycho_uses(case):
    name, values, _, objs = case
    merged = chartlib_merged(values)
    if not merged["rbac"]["create"]:
        assert not by_kind(objs, "ClusterRole")
        return
    cluster_role = one(objs, "ClusterRole")
    cluster_expected = dict(CLUSTER)
    if not merged["rbac"]["readNodes"]:
        del cluster_expected[("", "nodes")]
    if merged["watchNamespaces"]:
        assert flatten(cluster_role["rules"]) == cluster_expected
        roles = {r["metadata"]["namespace"]: r for r in by_kind(objs, "Role") if not r["metadata"]["name"].endswith("-leader-election")}
        assert sorted(roles) == sorted(merged["watchNamespaces"])
        for role in roles.values():
            assert flatten(role["rules"]) == NAMESPACED
    else:
        assert flatten(cluster_role["rules"]) == {**NAMESPACED, **cluster_expected}
    crd_rule = [r for r in cluster_role["rules"] if "customresourcedefinitions" in r["resources"]][0]
    assert crd_rule["resourceNames"] == ["systems.tycho.dev"]
    # Every Role/ClusterRole is bound to the operator's ServiceAccount.
    sa = one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    bound = {(b["roleRef"]["kind"], b["metadata"].get("namespace", ""), b["roleRef"]["name"])
             for b in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding")
             if any(s["name"] == sa and s["namespace"] == chartlib.NAMESPACE for s in b["subjects"])}
    for r in by_kind(objs, "Role"):
        assert ("Role", r["metadata"]["namespace"], r["metadata"]["name"]) in bound
    assert ("ClusterRole", "", cluster_role["metadata"]["name"]) in bound


def test_leader_election_lease_is_permitted(case):
    name, values, _, objs = case
    merged = chartlib_merged(values)
    if not merged["leaderElection"]["enabled"] or not merged["rbac"]["create"]:
        return
    _, _, c = container(objs)
    lease = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--leader-elect-lease-name=")][0]
    sa = one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    policy = Policy.for_service_account(objs, chartlib.NAMESPACE, sa)
    ns = chartlib.NAMESPACE
    for verb in ("get", "update", "patch"):
        assert policy.allows(Request(verb, "coordination.k8s.io", "leases", namespace=ns, name=lease)), verb
    assert policy.allows(Request("create", "coordination.k8s.io", "leases", namespace=ns))


# --- The RBAC checker itself: API requests -> attributes -> allowed?

def test_request_attributes_follow_the_api_server():
    cases = {
        ("GET", "/apis/tycho.dev/v1alpha1/systems?watch=true&resourceVersion=1"): Request("watch", "tycho.dev", "systems"),
        ("GET", "/apis/tycho.dev/v1alpha1/namespaces/a/systems/x"): Request("get", "tycho.dev", "systems", "", "a", "x"),
        ("GET", "/api/v1/namespaces/a/pods?labelSelector=x"): Request("list", "", "pods", "", "a"),
        ("PATCH", "/apis/tycho.dev/v1alpha1/namespaces/a/systems/x/status?fieldManager=tycho"):
            Request("patch", "tycho.dev", "systems", "status", "a", "x"),
        ("POST", "/apis/events.k8s.io/v1/namespaces/a/events"): Request("create", "events.k8s.io", "events", "", "a"),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/s/leases/l"): Request("update", "coordination.k8s.io", "leases", "", "s", "l"),
        ("DELETE", "/api/v1/namespaces/a/pods/p"): Request("delete", "", "pods", "", "a", "p"),
        ("DELETE", "/api/v1/namespaces/a/pods"): Request("deletecollection", "", "pods", "", "a"),
        ("GET", "/api/v1/nodes"): Request("list", "", "nodes"),
        ("GET", "/api/v1/namespaces/a"): Request("get", "", "namespaces", "", "", "a"),
    }
    for (method, url), expected in cases.items():
        got = request_attributes(method, url)
        assert got is not None
        assert (got.verb, got.api_group, got.resource, got.subresource, got.namespace, got.name) == (
            expected.verb, expected.api_group, expected.resource, expected.subresource, expected.namespace, expected.name), url
    for url in ("/version", "/api", "/apis", "/apis/tycho.dev/v1alpha1", "/openapi/v3", "/healthz"):
        assert request_attributes("GET", url) is None, url


def test_rbac_checker_finds_missing_permissions():
    objs = chartlib.objects(chartlib.render({"watchNamespaces": ["team-a"]}))
    policy = Policy.for_service_account(objs, chartlib.NAMESPACE, "tycho")
    calls = [
        ("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/web?fieldManager=tycho&force=true"),
        ("GET", "/apis/tycho.dev/v1alpha1/namespaces/team-a/systems?watch=1"),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/systems.tycho.dev"),
        # Not granted: another namespace, a cluster-wide watch, Secrets, another CRD, deleting a claim.
        ("PATCH", "/apis/apps/v1/namespaces/team-b/deployments/web"),
        ("GET", "/apis/tycho.dev/v1alpha1/systems?watch=true"),
        ("GET", "/api/v1/namespaces/team-a/secrets/s"),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/other.example.org"),
        ("DELETE", "/api/v1/namespaces/team-a/persistentvolumeclaims/data"),
    ]
    denied = policy.denied(filter(None, (request_attributes(m, u) for m, u in calls)))
    assert [d.describe() for d in denied] == [
        "patch apps/deployments web in team-b",
        "watch tycho.dev/systems (cluster)",
        "get core/secrets s in team-a",
        "get apiextensions.k8s.io/customresourcedefinitions other.example.org (cluster)",
        "delete core/persistentvolumeclaims data in team-a",
    ]


# --- values.schema.json rejects bad values (and Helm refuses to render them)

BAD_VALUES = [
    ({"replicas": 2, "leaderElection": {"enabled": False}}, "/leaderElection/enabled"),
    ({"replicas": -1}, "/replicas"),
    ({"replicas": "two"}, "/replicas"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"logLevel": "info; rm -rf /"}, "/logLevel"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"repository": "Not A Repo"}}, "/image/repository"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    ({"metrics": {"port": 80}}, "/metrics/port"),
    ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "/metrics/serviceMonitor/interval"),
    ({"gpuResourceName": "nvidia.com/gpu with spaces"}, "/gpuResourceName"),
    ({"defaultSessionDuration": 0}, "/defaultSessionDuration"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ({"leaderElection": {"leaseDurationSeconds": 1}}, "/leaderElection/leaseDurationSeconds"),
    ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
    ({"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}, "/networkPolicy/apiServer/cidrs/0"),
    ({"templates": {"overrides": {"../escape": "x"}}}, "invalid propertyName '../escape'"),
    ({"templates": {"overrides": {"..": "x"}}}, "invalid propertyName '..'"),
    ({"replica": 2}, "additional properties 'replica'"),
    ({"image": {"tga": "1"}}, "additional properties 'tga'"),
]


@pytest.mark.parametrize("values,where", BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_schema_rejects_bad_values(values, where):
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError) as err:
            chart.validate_schema(chart.merge_values(values))
        assert where in str(err.value), str(err.value)
        with pytest.raises(helm.HelmValuesError):
            chart.render(values, name=chartlib.RELEASE, namespace=chartlib.NAMESPACE)


@pytest.mark.parametrize("values,message", [
    ({"leaderElection": {"renewDeadlineSeconds": 15}}, "renewDeadlineSeconds must be less than"),
    ({"leaderElection": {"retryPeriodSeconds": 10}}, "retryPeriodSeconds must be less than"),
    ({"templates": {"existingConfigMap": "a", "overrides": {"x.tera": "y"}}}, "not both"),
    ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
])
def test_template_rejects_inconsistent_values(values, message):
    with pytest.raises(helm.HelmRenderError) as err:
        chartlib.render(values)
    assert message in str(err.value)


def test_every_values_file_passes_the_schema():
    with helm.Chart.load(str(CHART)) as chart:
        for name, values in CASES.items():
            chart.validate_schema(chart.merge_values(values))
        # The defaults documented in values.yaml are the chart's defaults.
        assert chart.values == yaml.safe_load((CHART / "values.yaml").read_text())
