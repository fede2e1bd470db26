//! A reusable RBAC checker for tests: which API requests would the Helm chart's Roles and ClusterRoles NOT
//! allow the operator's ServiceAccount to make?
//!
//! Use it from any integration test with
//! ```ignore
//! #[path = "chart/rbac.rs"]
//! mod rbac;
//! let policy = rbac::Policy::for_service_account(&rbac::chart_snapshot("default"), "tycho-system", "tycho");
//! let denied = policy.denied(emulator.requests().iter().filter(|r| r.user_agent.starts_with("tycho")).flat_map(rbac::authorizations));
//! assert!(denied.is_empty(), "{}", rbac::describe(&denied));
//! ```
//! The rendered chart comes from tests/chart/snapshots/ (what `helm template` renders with the default values
//! and each file of tests/chart/values/; the Python chart check fails when a snapshot is stale). The rules follow
//! Kubernetes RBAC: a ClusterRoleBinding grants everywhere, a RoleBinding in its namespace; a rule matches
//! when verb, API group and resource (`resource/subresource` for subresources) are listed, and when it has
//! `resourceNames`, only requests for one of those names (so never list, watch or create).
//!
//! Both ways: [`Policy::unused`] lists what the chart grants that no request used, and [`chart_reasons`] reads
//! the one-line reasons the chart gives for grants the operator's test runs do not use (`unused:` lines in a
//! template comment of charts/tycho/templates/rbac.yaml). A request without a resource is classified: a
//! discovery or health path anyone may GET (the default `system:discovery` and `system:public-info-viewer`
//! ClusterRoles), or denied.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

/// Authorization attributes of one API request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group, "" for core.
    pub api_group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, or "".
    pub subresource: String,
    /// Namespace, or "" for cluster-scoped requests.
    pub namespace: String,
    /// Object name, or "".
    pub name: String,
    /// URL path of a request without a resource (`/version`, `/apis/...`), or "".
    pub path: String,
}

impl Request {
    /// A request with these attributes.
    pub fn new(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        namespace: &str,
        name: &str,
    ) -> Request {
        Request {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    /// A request without a resource: `verb` (the lowercase HTTP method) on `path`.
    pub fn non_resource(verb: &str, path: &str) -> Request {
        let mut r = Request::new(verb, "", "", "", "", "");
        r.path = path.into();
        r
    }

    /// Whether this is a resource request (else see [`Request::is_public_non_resource`]).
    pub fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }

    /// Whether this request without a resource is one every authenticated user may make: a GET of a
    /// discovery, OpenAPI, version or health path (the nonResourceURLs of the default `system:discovery` and
    /// `system:public-info-viewer` ClusterRoles). Anything else without a resource — another path, another
    /// verb, or no path at all — is not.
    pub fn is_public_non_resource(&self) -> bool {
        if self.is_resource() || self.verb != "get" {
            return false;
        }
        let p = self.path.as_str();
        matches!(
            p,
            "/api"
                | "/apis"
                | "/version"
                | "/version/"
                | "/healthz"
                | "/livez"
                | "/readyz"
                | "/openapi"
        ) || ["/api/", "/apis/", "/openapi/"]
            .iter()
            .any(|prefix| p.starts_with(prefix))
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        if !self.is_resource() {
            let path = if self.path.is_empty() {
                "(no path)"
            } else {
                &self.path
            };
            return write!(f, "{} {path} (no resource)", self.verb);
        }
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if !self.subresource.is_empty() {
            write!(f, "/{}", self.subresource)?;
        }
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        if self.namespace.is_empty() {
            write!(f, " (cluster)")
        } else {
            write!(f, " in {}", self.namespace)
        }
    }
}

impl From<&tycho_emulator::RequestRecord> for Request {
    fn from(r: &tycho_emulator::RequestRecord) -> Request {
        if r.resource.is_empty() {
            return Request::non_resource(&r.verb, &r.path);
        }
        Request::new(
            &r.verb,
            &r.api_group,
            &r.resource,
            &r.subresource,
            &r.namespace,
            &r.name,
        )
    }
}

/// Every authorization a logged request needed. kube-apiserver authorizes a request once by its verb,
/// except a PATCH that creates the object (a server-side apply of a missing object; the log shows its 201),
/// which it also authorizes as `create` — a real authorizer refused the chart's first least-privilege
/// rules (patch without create) on exactly that.
pub fn authorizations(r: &tycho_emulator::RequestRecord) -> Vec<Request> {
    let request = Request::from(r);
    if r.verb == "patch" && r.code == 201 {
        let mut create = request.clone();
        create.verb = "create".into();
        vec![request, create]
    } else {
        vec![request]
    }
}

/// The permissions one ServiceAccount gets from a set of RBAC objects.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Rules granted in every namespace and at cluster scope.
    pub cluster_rules: Vec<Value>,
    /// Rules granted only in one namespace.
    pub namespace_rules: Vec<(String, Vec<Value>)>,
}

impl Policy {
    /// Collect what `manifests` (multi-document YAML, e.g. a rendered chart) grant to the ServiceAccount
    /// `sa_namespace/sa_name`.
    pub fn for_service_account(manifests: &str, sa_namespace: &str, sa_name: &str) -> Policy {
        let objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(manifests)
            .expect("the manifests are YAML")
            .into_iter()
            .filter(|v| v.is_object())
            .collect();
        let kind = |o: &Value| o["kind"].as_str().unwrap_or_default().to_string();
        let meta = |o: &Value, k: &str| o["metadata"][k].as_str().unwrap_or_default().to_string();
        let rules_of = |role_kind: &str, namespace: &str, name: &str| -> Vec<Value> {
            objects
                .iter()
                .filter(|o| kind(o) == role_kind && meta(o, "name") == name)
                .filter(|o| role_kind == "ClusterRole" || meta(o, "namespace") == namespace)
                .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
                .collect()
        };
        let binds = |b: &Value| {
            b["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == sa_name
                        && s["namespace"]
                            .as_str()
                            .map_or(meta(b, "namespace"), str::to_string)
                            == sa_namespace
                })
            })
        };
        let mut policy = Policy::default();
        for b in objects.iter().filter(|b| binds(b)) {
            let role_kind = b["roleRef"]["kind"].as_str().unwrap_or_default();
            let role_name = b["roleRef"]["name"].as_str().unwrap_or_default();
            match kind(b).as_str() {
                "ClusterRoleBinding" if role_kind == "ClusterRole" => {
                    policy
                        .cluster_rules
                        .extend(rules_of("ClusterRole", "", role_name));
                }
                "RoleBinding" => {
                    let ns = meta(b, "namespace");
                    let rules = rules_of(role_kind, &ns, role_name);
                    policy.namespace_rules.push((ns, rules));
                }
                _ => {}
            }
        }
        policy
    }

    /// Whether one rule allows the request.
    pub fn rule_allows(rule: &Value, req: &Request) -> bool {
        let has = |key: &str, want: &str| {
            rule[key]
                .as_array()
                .is_some_and(|xs| xs.iter().any(|x| x == want || x == "*"))
        };
        let resource = if req.subresource.is_empty() {
            req.resource.clone()
        } else {
            format!("{}/{}", req.resource, req.subresource)
        };
        if !has("verbs", &req.verb) || !has("apiGroups", &req.api_group) {
            return false;
        }
        let resources_ok = has("resources", &resource)
            || (!req.subresource.is_empty() && has("resources", &format!("{}/*", req.resource)));
        if !resources_ok {
            return false;
        }
        match rule["resourceNames"].as_array() {
            Some(names) if !names.is_empty() => {
                !req.name.is_empty() && names.iter().any(|n| n == req.name.as_str())
            }
            _ => true,
        }
    }

    /// Whether the ServiceAccount may make the request.
    pub fn allows(&self, req: &Request) -> bool {
        if !req.is_resource() {
            return req.is_public_non_resource();
        }
        let namespaced = self
            .namespace_rules
            .iter()
            .filter(|(ns, _)| !req.namespace.is_empty() && *ns == req.namespace)
            .flat_map(|(_, rules)| rules.iter());
        self.cluster_rules
            .iter()
            .chain(namespaced)
            .any(|rule| Policy::rule_allows(rule, req))
    }

    /// The distinct requests that are not allowed, sorted.
    pub fn denied<I: IntoIterator<Item = Request>>(&self, requests: I) -> Vec<Request> {
        let set: BTreeSet<Request> = requests.into_iter().filter(|r| !self.allows(r)).collect();
        set.into_iter().collect()
    }
}

/// One permission a rule grants: a verb on `group/resource` (`resource/subresource` for subresources).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

impl Grant {
    /// Parse `"<verb> <group>/<resource>"` (group `core` for the core group).
    pub fn parse(s: &str) -> Option<Grant> {
        let (verb, rest) = s.trim().split_once(' ')?;
        let (group, resource) = rest.trim().split_once('/')?;
        Some(Grant {
            verb: verb.into(),
            api_group: if group == "core" { "" } else { group }.into(),
            resource: resource.into(),
        })
    }
}

impl Policy {
    /// Every (verb, group, resource) some rule of this policy grants.
    pub fn grants(&self) -> BTreeSet<Grant> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|xs| {
                    xs.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = BTreeSet::new();
        let rules = self
            .cluster_rules
            .iter()
            .chain(self.namespace_rules.iter().flat_map(|(_, r)| r.iter()));
        for rule in rules {
            for verb in strings(&rule["verbs"]) {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        out.insert(Grant {
                            verb: verb.clone(),
                            api_group: group.clone(),
                            resource,
                        });
                    }
                }
            }
        }
        out
    }

    /// What the policy grants that none of `requests` used (the other way round from [`Policy::denied`]).
    pub fn unused<'a, I: IntoIterator<Item = &'a Request>>(&self, requests: I) -> BTreeSet<Grant> {
        let used: BTreeSet<Grant> = requests
            .into_iter()
            .filter(|r| r.is_resource() && self.allows(r))
            .map(|r| Grant {
                verb: r.verb.clone(),
                api_group: r.api_group.clone(),
                resource: if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                },
            })
            .collect();
        self.grants()
            .into_iter()
            .filter(|g| !used.contains(g))
            .collect()
    }
}

/// The chart's reasons for grants the operator's test runs do not use: the lines
/// `unused: <verb> <group>/<resource>: <reason>` of charts/tycho/templates/rbac.yaml (in a template comment,
/// so that nothing renders differently). Panics on a malformed line or an empty reason.
pub fn chart_reasons() -> BTreeMap<Grant, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tycho/templates/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("unused:") else {
            continue;
        };
        let (grant, reason) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: malformed line {line:?}", path.display()));
        let grant = Grant::parse(grant)
            .unwrap_or_else(|| panic!("{}: malformed grant in {line:?}", path.display()));
        assert!(
            !reason.trim().is_empty(),
            "{}: no reason in {line:?}",
            path.display()
        );
        out.insert(grant, reason.trim().to_string());
    }
    out
}

/// Grants of `policy` that none of `requests` used and the chart gives no reason for.
pub fn unexplained<'a, I: IntoIterator<Item = &'a Request>>(
    policy: &Policy,
    requests: I,
) -> Vec<Grant> {
    let reasons = chart_reasons();
    policy
        .unused(requests)
        .into_iter()
        .filter(|g| !reasons.contains_key(g))
        .collect()
}

/// One line per denied request, for assertion messages.
pub fn describe(denied: &[Request]) -> String {
    denied
        .iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The chart rendered with the values case `name` ("default", or a file stem of tests/chart/values/).
pub fn chart_snapshot(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/chart/snapshots/{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
