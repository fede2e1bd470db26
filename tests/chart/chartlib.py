"""Helpers of the chart checks: render the chart with the real Helm engine, validate objects against the
Kubernetes schemas, check Pod Security "restricted", and decide whether RBAC rules allow an API request.

The RBAC part (`Policy`, `request_attributes`) is reusable: give it the rendered chart and the API requests
the operator made (from the emulator's request log) and it names every request the chart does not permit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tycho"
VALUES_DIR = Path(__file__).resolve().parent / "values"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
KUBE_VERSION = "1.33.0"
RELEASE = "tycho"
NAMESPACE = "tycho-system"


def value_cases() -> dict[str, dict[str, Any]]:
    """The values the chart is checked with: the defaults, and every file under tests/chart/values/."""
    cases: dict[str, dict[str, Any]] = {"default": {}}
    for path in sorted(VALUES_DIR.glob("*.yaml")):
        cases[path.stem] = yaml.safe_load(path.read_text()) or {}
    return cases


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """`helm template`: the chart rendered offline by Helm's own engine, template path -> manifest."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values or {}, name=name, namespace=namespace, is_install=True)


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a rendering (NOTES.txt excluded), in template order."""
    out: list[dict[str, Any]] = []
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(manifests[path]):
            if doc:
                out.append(doc)
    return out


def crd_objects() -> list[dict[str, Any]]:
    """The objects under the chart's crds/ folder (Helm installs them before the templates)."""
    out = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        out.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


def snapshot_text(manifests: dict[str, str]) -> str:
    """A stable text form of a rendering, as committed under tests/chart/snapshots/."""
    parts = []
    for path in sorted(manifests):
        body = manifests[path].strip("\n")
        if path.endswith("NOTES.txt") or not body.strip():
            continue
        parts.append(f"# Source: {path}\n{body}\n")
    return "---\n".join(parts)


def validate_kubernetes(obj: dict[str, Any]) -> None:
    """Validate one object against the Kubernetes 1.33 JSON schemas, strictly (unknown fields fail).

    Raises the kubernetes_validate error naming the field. Kinds Kubernetes does not define (the
    Prometheus Operator's ServiceMonitor) are checked by `validate_service_monitor` instead.
    """
    import kubernetes_validate

    if obj.get("kind") == "ServiceMonitor":
        validate_service_monitor(obj)
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def validate_service_monitor(obj: dict[str, Any]) -> None:
    """The ServiceMonitor fields the chart sets, as monitoring.coreos.com/v1 defines them."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1", obj["apiVersion"]
    spec = obj["spec"]
    assert set(spec) <= {"namespaceSelector", "selector", "endpoints", "jobLabel"}, sorted(spec)
    assert spec["selector"]["matchLabels"], "a ServiceMonitor must select the metrics Service"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}, sorted(endpoint)
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint[key]), (key, endpoint[key])


# --- Pod Security Standards, "restricted" profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/)

ALLOWED_VOLUME_KEYS = {
    "name", "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}


def pod_security_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the "restricted" Pod Security Standard (empty when it complies)."""
    problems: list[str] = []
    psc = pod_spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            problems.append(f"spec.{key} must not be true")
    for vol in pod_spec.get("volumes") or []:
        extra = set(vol) - ALLOWED_VOLUME_KEYS
        if extra:
            problems.append(f"volume {vol.get('name')}: type {sorted(extra)} is not allowed")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    pod_non_root = psc.get("runAsNonRoot")
    if psc.get("runAsUser") == 0:
        problems.append("spec.securityContext.runAsUser must not be 0")
    containers = list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or [])
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"container {name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"container {name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"container {name}: only NET_BIND_SERVICE may be added")
        non_root = sc.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            problems.append(f"container {name}: runAsNonRoot must be true")
        if sc.get("runAsUser") == 0:
            problems.append(f"container {name}: runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"container {name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"container {name}: hostPort")
    return problems


# --- RBAC: does a set of rules allow a request?

@dataclass(frozen=True)
class Request:
    """The authorization attributes of one API request, as the API server derives them."""

    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    def describe(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        group = self.api_group or "core"
        where = f" in {self.namespace}" if self.namespace else " (cluster)"
        return f"{self.verb} {group}/{res}{' ' + self.name if self.name else ''}{where}"


def request_attributes(method: str, url: str) -> Request | None:
    """Turn an HTTP request into authorization attributes, like the API server's RequestInfoResolver.

    Returns None for non-resource paths (/version, /api, /apis, /openapi/..., /healthz), which the
    default `system:discovery` ClusterRole grants to every authenticated user.
    """
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)
    if not segs:
        return None
    if segs[0] == "api":
        if len(segs) < 2:
            return None
        group, rest = "", segs[2:]
    elif segs[0] == "apis":
        if len(segs) < 3:
            return None
        group, rest = segs[1], segs[3:]
    else:
        return None
    if not rest:
        return None  # discovery of one group version
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        # The namespace object itself.
        rest = ["namespaces", rest[1]]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    method = method.upper()
    watch = query.get("watch", ["false"])[0] in ("true", "1")
    if method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    return Request(verb, group, resource, sub, namespace, name, parts.path)


@dataclass
class Policy:
    """The permissions a ServiceAccount gets from a set of RBAC objects."""

    cluster_rules: list[dict[str, Any]]
    namespace_rules: dict[str, list[dict[str, Any]]]

    @classmethod
    def for_service_account(cls, objs: Iterable[dict[str, Any]], sa_namespace: str, sa_name: str) -> "Policy":
        objs = list(objs)
        roles = {("ClusterRole", "", o["metadata"]["name"]): o.get("rules") or [] for o in objs if o["kind"] == "ClusterRole"}
        roles.update({("Role", o["metadata"]["namespace"], o["metadata"]["name"]): o.get("rules") or []
                      for o in objs if o["kind"] == "Role"})

        def binds(b: dict[str, Any]) -> bool:
            return any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_name
                       and s.get("namespace", b["metadata"].get("namespace")) == sa_namespace
                       for s in b.get("subjects") or [])

        cluster: list[dict[str, Any]] = []
        per_ns: dict[str, list[dict[str, Any]]] = {}
        for b in objs:
            if b["kind"] == "ClusterRoleBinding" and binds(b):
                ref = b["roleRef"]
                cluster.extend(roles.get(("ClusterRole", "", ref["name"]), []))
            elif b["kind"] == "RoleBinding" and binds(b):
                ns = b["metadata"]["namespace"]
                ref = b["roleRef"]
                key = ("ClusterRole", "", ref["name"]) if ref["kind"] == "ClusterRole" else ("Role", ns, ref["name"])
                per_ns.setdefault(ns, []).extend(roles.get(key, []))
        return cls(cluster, per_ns)

    @staticmethod
    def rule_allows(rule: dict[str, Any], req: Request) -> bool:
        if req.verb not in rule.get("verbs", []) and "*" not in rule.get("verbs", []):
            return False
        if req.api_group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            return False
        resource = req.resource + (f"/{req.subresource}" if req.subresource else "")
        resources = rule.get("resources", [])
        if resource not in resources and "*" not in resources and f"{req.resource}/*" not in resources:
            return False
        names = rule.get("resourceNames")
        if names:
            # A rule limited by name never allows list/watch/create/deletecollection of unnamed requests.
            return bool(req.name) and req.name in names
        return True

    def allows(self, req: Request) -> bool:
        rules = list(self.cluster_rules)
        if req.namespace:
            rules += self.namespace_rules.get(req.namespace, [])
        return any(self.rule_allows(r, req) for r in rules)

    def denied(self, requests: Iterable[Request]) -> list[Request]:
        """The requests these rules do not allow (deduplicated, in first-seen order)."""
        seen: dict[Request, None] = {}
        for r in requests:
            if not self.allows(r):
                seen.setdefault(Request(r.verb, r.api_group, r.resource, r.subresource, r.namespace, r.name), None)
        return list(seen)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
