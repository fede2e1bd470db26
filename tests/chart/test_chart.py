"""Checks of charts/tycho with no cluster: Helm's own engine renders and lints the chart with the default
values and every file under tests/chart/values/, every object is validated against the Kubernetes 1.33
schemas (strict), the RBAC rules are exactly what Tycho uses (and the optional HTTP API: TokenReviews and
impersonation only), the pods meet Pod Security "restricted", values.schema.json rejects bad values, and the
committed snapshots and CRD copy have not drifted.

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


def is_api(obj):
    """An object of the HTTP API (api.enabled), told apart by its component label."""
    return (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "api"


def operator_objects(objs):
    """The operator's objects: everything but the API's."""
    return [o for o in objs if not is_api(o)]


def api_objects(objs):
    return [o for o in objs if is_api(o)]


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
    assert [c["metadata"]["name"] for c in crds] == ["systems.tycho.dev", "systemtemplates.tycho.dev"]
    for crd in crds:
        chartlib.validate_kubernetes(crd)
    # `tycho crd` writes crds/; the chart must ship exactly those files (tests/chart_crd.rs checks them
    # against the Rust types themselves).
    for f in ("tycho.dev_systems.yaml", "tycho.dev_systemtemplates.yaml"):
        assert filecmp.cmp(ROOT / "crds" / f, CHART / "crds" / f, shallow=False), \
            f"charts/tycho/crds/ drifted from crds/: cp crds/{f} charts/tycho/crds/"


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
    """The operator's Deployment, pod spec and container."""
    deploy = one(operator_objects(objs), "Deployment")
    return deploy, deploy["spec"]["template"]["spec"], deploy["spec"]["template"]["spec"]["containers"][0]


def test_pod_meets_pod_security_restricted(case):
    name, _, _, objs = case
    for deploy in by_kind(objs, "Deployment"):  # the operator's, and the API's when enabled
        pod = deploy["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert chartlib.pod_security_violations(pod) == [], (name, deploy["metadata"]["name"])
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
    objs = operator_objects(objs)
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
    ("networking.k8s.io", "networkpolicies"): {"list", "watch", "create", "patch", "delete"},
    ("coordination.k8s.io", "leases"): {"list", "watch", "patch", "delete"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "persistentvolumeclaims"): {"list", "watch"},
}
CLUSTER = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get"},
    ("", "nodes"): {"list"},
    ("tycho.dev", "systemtemplates"): {"list", "watch"},
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
    objs = operator_objects(objs)
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
    _, pod, c = container(objs)
    lease = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--leader-elect-lease-name=")][0]
    sa = pod["serviceAccountName"]
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


# --- The HTTP API (api.enabled): its own Deployment, Service, ServiceAccount and least-privilege ClusterRole

API_TLS = {"api": {"enabled": True, "tls": {"secretName": "tycho-api-tls"}}}
API_PLAIN = {"api": {"enabled": True, "plainHttp": True}}

# Authenticate callers (TokenReview), then act as them (impersonation). Nothing else: no get/list anywhere.
API_RULES = {
    ("authentication.k8s.io", "tokenreviews"): {"create"},
    ("", "users"): {"impersonate"},
    ("", "groups"): {"impersonate"},
    ("", "serviceaccounts"): {"impersonate"},
    ("authentication.k8s.io", "uids"): {"impersonate"},
}


def api_container(objs):
    deploy = one(api_objects(objs), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["api"]
    return deploy, pod, pod["containers"][0]


def test_api_is_disabled_by_default():
    assert chartlib_merged({})["api"]["enabled"] is False
    objs = chartlib.objects(chartlib.render())
    assert api_objects(objs) == []
    assert not [o for o in objs if o["metadata"]["name"].endswith("-api")]
    assert len(by_kind(objs, "Deployment")) == 1
    assert "HTTP API" not in chartlib.render()["tycho/templates/NOTES.txt"]


def test_api_objects_follow_the_values(case):
    name, values, _, objs = case
    merged = chartlib_merged(values)
    api = api_objects(objs)
    if not merged["api"]["enabled"]:
        assert api == [], name
        return
    kinds = sorted(o["kind"] for o in api)
    expected = ["Deployment", "Service"]
    if merged["api"]["serviceAccount"]["create"]:
        expected.append("ServiceAccount")
    if merged["rbac"]["create"]:
        expected += ["ClusterRole", "ClusterRoleBinding"]
    if merged["networkPolicy"]["enabled"]:
        expected.append("NetworkPolicy")
    assert kinds == sorted(expected), name
    check_api(objs, merged)


def check_api(objs, merged):
    """Everything about the API's objects that follows from the merged values."""
    api = merged["api"]
    tls = api["tls"]["secretName"]
    deploy, pod, c = api_container(objs)
    op_deploy, op_pod, op_c = container(objs)
    assert deploy["metadata"]["name"] == op_deploy["metadata"]["name"] + "-api"
    assert deploy["spec"]["replicas"] == api["replicas"]
    # Its pods and the operator's never select each other.
    selector = deploy["spec"]["selector"]["matchLabels"]
    op_selector = op_deploy["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "api"
    assert op_selector["app.kubernetes.io/component"] == "controller"
    assert deploy["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    assert not op_deploy["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    assert not deploy["spec"]["template"]["metadata"]["labels"].items() >= op_selector.items()
    # Same image, the `api` subcommand.
    assert c["image"] == op_c["image"] and c["imagePullPolicy"] == op_c["imagePullPolicy"]
    assert pod.get("imagePullSecrets") == op_pod.get("imagePullSecrets")
    args = c["args"]
    assert args[0] == "api"
    assert f"--listen=0.0.0.0:{api['port']}" in args
    assert f"--body-limit={api['bodyLimitBytes']}" in args
    assert f"--request-timeout={api['requestTimeoutSeconds']}" in args
    port_name = "https" if tls else "http"
    assert c["ports"] == [{"name": port_name, "containerPort": api["port"], "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name, "scheme": port_name.upper()}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port_name, "scheme": port_name.upper()}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    if tls:
        assert "--allow-plain-http" not in args
        assert "--tls-cert=/etc/tycho/tls/tls.crt" in args and "--tls-key=/etc/tycho/tls/tls.key" in args
        assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/tycho/tls", "readOnly": True}
        assert volumes["tls"]["secret"]["secretName"] == tls
    else:
        assert "--allow-plain-http" in args
        assert not [a for a in args if a.startswith("--tls-")]
        assert "tls" not in mounts and "tls" not in volumes
    assert c["securityContext"] == op_c["securityContext"]
    assert pod["securityContext"] == op_pod["securityContext"]
    assert chartlib.pod_security_violations(pod) == []
    assert c["resources"] == api["resources"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod.get(key) == (api[key] or None), key
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env == {"TYCHO_LOG": merged["logLevel"], "TYCHO_LOG_FORMAT": merged["logFormat"]}
    # The Service in front of it.
    svc = [s for s in by_kind(api_objects(objs), "Service")][0]
    assert svc["metadata"]["name"] == deploy["metadata"]["name"]
    assert svc["spec"]["type"] == api["service"]["type"]
    assert svc["spec"]["selector"] == selector
    assert svc["spec"]["ports"] == [{"name": port_name, "port": api["service"]["port"], "targetPort": port_name,
                                     "protocol": "TCP"}]
    assert (svc["metadata"].get("annotations") or {}) == api["service"]["annotations"]
    # Its own ServiceAccount, never the operator's.
    sa = pod["serviceAccountName"]
    assert sa != op_pod["serviceAccountName"]
    assert pod["automountServiceAccountToken"] is True
    for o in by_kind(api_objects(objs), "ServiceAccount"):
        assert o["metadata"]["name"] == sa
        assert (o["metadata"].get("annotations") or {}) == api["serviceAccount"]["annotations"]
    if merged["rbac"]["create"]:
        role = one(api_objects(objs), "ClusterRole")
        assert flatten(role["rules"]) == API_RULES
        binding = one(api_objects(objs), "ClusterRoleBinding")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": chartlib.NAMESPACE}]
    # Under networkPolicy.enabled: ingress only to its port, egress only to the API server and DNS.
    for np in by_kind(api_objects(objs), "NetworkPolicy"):
        assert np["spec"]["podSelector"]["matchLabels"] == selector
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert [p["port"] for r in np["spec"]["ingress"] for p in r["ports"]] == [api["port"]]
        assert [r.get("from", []) for r in np["spec"]["ingress"]] == [merged["networkPolicy"]["apiFrom"]]
        egress_ports = sorted({(p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"]})
        expected = sorted({(p, "TCP") for p in merged["networkPolicy"]["apiServer"]["ports"]} | {(53, "UDP"), (53, "TCP")})
        assert egress_ports == expected


@pytest.mark.parametrize("values", [
    API_TLS,
    API_PLAIN,
    {**API_TLS, "networkPolicy": {"enabled": True}, "watchNamespaces": ["team-a"]},
    {"api": {**API_PLAIN["api"], "serviceAccount": {"create": False, "name": "api-sa"}}, "rbac": {"create": False}},
], ids=["tls", "plain-http", "tls-networkpolicy-namespaced", "existing-sa-no-rbac"])
def test_api_enabled_renders_valid_objects(values):
    merged = chartlib_merged(values)
    assert chart_schema_accepts(merged)
    objs = chartlib.objects(chartlib.render(values))
    for obj in objs:
        try:
            chartlib.validate_kubernetes(obj)
        except Exception as e:  # noqa: BLE001 - report which object failed
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is not valid Kubernetes 1.33: {e}")
    check_api(objs, merged)
    # The operator renders exactly as without the API.
    without = {k: v for k, v in values.items() if k != "api"}
    assert operator_objects(objs) == chartlib.objects(chartlib.render(without))


def chart_schema_accepts(merged):
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(merged)
    return True


def test_api_cluster_role_is_exactly_token_review_and_impersonation():
    objs = chartlib.objects(chartlib.render(API_TLS))
    role = one(api_objects(objs), "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["uids"], "verbs": ["impersonate"]},
    ]
    _, pod, _ = api_container(objs)
    policy = Policy.for_service_account(objs, chartlib.NAMESPACE, pod["serviceAccountName"])
    assert flatten(policy.cluster_rules) == API_RULES and policy.namespace_rules == {}
    assert policy.allows(Request("create", "authentication.k8s.io", "tokenreviews"))
    for resource in ("users", "groups", "serviceaccounts"):
        assert policy.allows(Request("impersonate", "", resource, name="someone"))
    assert policy.allows(Request("impersonate", "authentication.k8s.io", "uids", name="1234"))
    for req in (Request("list", "tycho.dev", "systems"), Request("get", "", "secrets", namespace="a", name="s"),
                Request("get", "", "serviceaccounts", namespace="a", name="x"),
                Request("create", "authorization.k8s.io", "subjectaccessreviews"),
                Request("impersonate", "authentication.k8s.io", "userextras", "scopes")):
        assert not policy.allows(req), req.describe()
    # The operator's ServiceAccount gains nothing from the API's objects.
    _, op_pod, _ = container(objs)
    operator = Policy.for_service_account(objs, chartlib.NAMESPACE, op_pod["serviceAccountName"])
    assert not operator.allows(Request("impersonate", "", "users", name="someone"))
    assert not operator.allows(Request("create", "authentication.k8s.io", "tokenreviews"))


def test_api_tls_secret_or_plain_http_changes_only_the_transport():
    tls = chartlib.objects(chartlib.render(API_TLS))
    plain = chartlib.objects(chartlib.render(API_PLAIN))
    _, _, c_tls = api_container(tls)
    _, _, c_plain = api_container(plain)
    assert c_tls["args"][:2] == c_plain["args"][:2] == ["api", "--listen=0.0.0.0:8443"]
    assert c_plain["args"][2] == "--allow-plain-http"
    assert c_tls["args"][2:4] == ["--tls-cert=/etc/tycho/tls/tls.crt", "--tls-key=/etc/tycho/tls/tls.key"]
    assert c_tls["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert c_plain["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


@pytest.mark.parametrize("values,message", [
    ({"api": {"enabled": True}}, "api.enabled: set api.tls.secretName (a kubernetes.io/tls Secret) to serve HTTPS, or api.plainHttp: true"),
    ({"api": {"enabled": True, "plainHttp": False, "tls": {"secretName": ""}}}, "set api.tls.secretName"),
    ({"api": {"enabled": True, "plainHttp": True, "tls": {"secretName": "x"}}}, "api.tls.secretName or api.plainHttp, not both"),
    ({**API_TLS, "api": {**API_TLS["api"], "serviceAccount": {"name": "tycho"}}}, "must differ from the operator's ServiceAccount"),
    ({**API_TLS, "api": {**API_TLS["api"], "serviceAccount": {"create": False}}}, "api.serviceAccount.name is required"),
], ids=["neither", "neither-explicit", "both", "operator-sa", "no-sa-name"])
def test_api_refuses_to_render_without_a_transport_decision(values, message):
    with pytest.raises(helm.HelmRenderError) as err:
        chartlib.render(values)
    assert message in str(err.value), str(err.value)


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
    ({"api": {"enabled": "yes"}}, "/api/enabled"),
    ({"api": {"plainHttp": "true"}}, "/api/plainHttp"),
    ({"api": {"port": 443}}, "/api/port"),
    ({"api": {"replicas": "1"}}, "/api/replicas"),
    ({"api": {"bodyLimitBytes": 0}}, "/api/bodyLimitBytes"),
    ({"api": {"bodyLimitBytes": "1Mi"}}, "/api/bodyLimitBytes"),
    ({"api": {"requestTimeoutSeconds": "30s"}}, "/api/requestTimeoutSeconds"),
    ({"api": {"requestTimeoutSeconds": 0}}, "/api/requestTimeoutSeconds"),
    ({"api": {"tls": {"secretName": "Not_A_Name"}}}, "/api/tls/secretName"),
    ({"api": {"tls": "tycho-api-tls"}}, "/api/tls"),
    ({"api": {"service": {"type": "Ingress"}}}, "/api/service/type"),
    ({"api": {"service": {"port": 0}}}, "/api/service/port"),
    ({"api": {"resources": {"limits": {"memory": "lots"}}}}, "/api/resources/limits/memory"),
    ({"api": {"tolerations": {"key": "x"}}}, "/api/tolerations"),
    ({"api": {"tlsSecret": "x"}}, "additional properties 'tlsSecret'"),
    ({"networkPolicy": {"apiFrom": [{"pods": {}}]}}, "/networkPolicy/apiFrom/0"),
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
