//! `/version` and legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`),
//! plus aggregated discovery (`apidiscovery.k8s.io/v2`) when the client asks for it. Built from
//! the registry, so a CRD's kinds appear the moment it is created and vanish when it is deleted.

use serde_json::{Value, json};

use crate::builtin::{Registry, ResourceInfo};

/// The `/version` body: v1.32.0 (which pins kubectl 1.32 through gcloud's dispatcher).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "tycho-emulator",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.4",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`: APIVersions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

fn groups(reg: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (g, v) in reg.group_versions() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    // Preferred version first: the storage version of a CRD group, else the first listed.
    for (g, vs) in &mut out {
        if let Some(pos) = vs.iter().position(|v| {
            reg.resources(g, v)
                .iter()
                .any(|i| i.custom.as_ref().is_some_and(|c| c.storage))
        }) {
            let p = vs.remove(pos);
            vs.insert(0, p);
        }
    }
    out
}

/// `/apis`: APIGroupList.
pub fn api_group_list(reg: &Registry) -> Value {
    let gs: Vec<Value> = groups(reg)
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

/// `/apis/{group}`: APIGroup (None if the group is not served).
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = groups(reg).into_iter().find(|(g, _)| g == group)?;
    let mut e = group_entry(&g, &vs);
    e["kind"] = json!("APIGroup");
    e["apiVersion"] = json!("v1");
    Some(e)
}

fn resource_entry(i: &ResourceInfo) -> Value {
    let mut e = json!({
        "name": i.plural,
        "singularName": i.singular,
        "namespaced": i.namespaced,
        "kind": i.kind,
        "verbs": i.verbs(),
    });
    if !i.short_names.is_empty() {
        e["shortNames"] = json!(i.short_names);
    }
    if !i.categories.is_empty() {
        e["categories"] = json!(i.categories);
    }
    e
}

/// `/api/v1` or `/apis/{group}/{version}`: APIResourceList (None if not served).
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let infos = reg.resources(group, version);
    if infos.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for i in &infos {
        resources.push(resource_entry(i));
        if i.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", i.plural),
                "singularName": "",
                "namespaced": i.namespaced,
                "kind": i.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if i.group.is_empty() && i.kind == "Pod" {
            resources.push(json!({
                "name": "pods/binding", "singularName": "", "namespaced": true,
                "kind": "Binding", "verbs": ["create"],
            }));
        }
        if i.group == "apps" {
            resources.push(json!({
                "name": format!("{}/scale", i.plural), "singularName": "", "namespaced": true,
                "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// The content type of aggregated discovery, if the Accept header asks for it (v2 or v2beta1).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        if p.contains("g=apidiscovery.k8s.io") && p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
                );
            }
            if p.contains("v=v2") {
                return Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                );
            }
        }
        if p.starts_with("application/json") && !p.contains("g=") {
            return None;
        }
    }
    None
}

/// Aggregated discovery (`APIGroupDiscoveryList`) for `/api` (core=true) or `/apis`.
pub fn aggregated(reg: &Registry, core: bool, api_version: &str) -> Value {
    let group_list: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(reg)
    };
    let items: Vec<Value> = group_list
        .iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = reg
                        .resources(g, v)
                        .iter()
                        .map(|i| {
                            let mut r = json!({
                                "resource": i.plural,
                                "responseKind": {"group": i.group, "version": i.version, "kind": i.kind},
                                "scope": if i.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": i.singular,
                                "verbs": i.verbs(),
                            });
                            if !i.short_names.is_empty() {
                                r["shortNames"] = json!(i.short_names);
                            }
                            if !i.categories.is_empty() {
                                r["categories"] = json!(i.categories);
                            }
                            if i.status_subresource {
                                r["subresources"] = json!([{
                                    "subresource": "status",
                                    "responseKind": {"group": i.group, "version": i.version, "kind": i.kind},
                                    "verbs": ["get", "patch", "update"],
                                }]);
                            }
                            r
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    })
}
