//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the default
//! columns of kube-apiserver's printers for the built-in kinds, and for custom resources the
//! CRD's `additionalPrinterColumns` evaluated with (simple) JSONPath, as apiextensions-apiserver's
//! table convertor does. Rows carry a `PartialObjectMetadata` object by default
//! (`includeObject=Metadata`).

use serde_json::{Value, json};

use crate::builtin::ResourceInfo;

/// A human-readable age as Kubernetes' `duration.HumanDuration` prints it (`45s`, `3m20s`,
/// `5h`, `2d3h`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = minutes / 60;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        format!("{}y{}d", hours / 24 / 365, (hours / 24) % 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn age(ts: &Value) -> String {
    match ts
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => {
            human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        }
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, format: &str, desc: &str, priority: i64) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        0,
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn count(v: &Value) -> i64 {
    v.as_object().map_or(0, |m| m.len() as i64)
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|c| c["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut status = s(&o["status"]["phase"]);
    if let Some(r) = o["status"]["reason"].as_str() {
        status = r.to_string();
    }
    for c in &statuses {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            status = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            status = r.to_string();
        }
    }
    if !o["metadata"]["deletionTimestamp"].is_null() {
        status = "Terminating".into();
    }
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(&o["metadata"]["creationTimestamp"])),
        json!(or_none(s(&o["status"]["podIP"]))),
        json!(or_none(s(&o["spec"]["nodeName"]))),
        json!(or_none(s(&o["status"]["nominatedNodeName"]))),
        json!("<none>"),
    ]
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", s(&p["port"])),
                _ => format!("{}/{proto}", s(&p["port"])),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn selector_string(v: &Value) -> String {
    let m = v.get("matchLabels").unwrap_or(v);
    or_none(
        m.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", s(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
    )
}

fn containers(o: &Value, field: &str) -> String {
    or_none(
        o["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| s(&c[field]))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Builds the cells of one row.
type CellFn = fn(&Value) -> Vec<Value>;

/// Column definitions and a cell builder for a built-in kind.
///
/// Long on purpose: it is a table, one arm per kind, each the columns `kubectl get` prints for that kind
/// (as kube-apiserver's printers define them) beside the closure that fills them, so a kind's columns and
/// cells are read and changed together.
fn builtin_columns(info: &ResourceInfo) -> (Vec<Value>, CellFn) {
    let ag = age_col;
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => (
            vec![
                name_col(),
                col(
                    "Ready",
                    "string",
                    "",
                    "The aggregate readiness state of this pod for accepting traffic.",
                    0,
                ),
                col(
                    "Status",
                    "string",
                    "",
                    "The aggregate status of the containers in this pod.",
                    0,
                ),
                col(
                    "Restarts",
                    "string",
                    "",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                    0,
                ),
                ag(),
                col(
                    "IP",
                    "string",
                    "",
                    "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                    1,
                ),
                col(
                    "Node",
                    "string",
                    "",
                    "NodeName is a request to schedule this pod onto a specific node.",
                    1,
                ),
                col(
                    "Nominated Node",
                    "string",
                    "",
                    "nominatedNodeName is set only when this pod preempts other pods on the node.",
                    1,
                ),
                col(
                    "Readiness Gates",
                    "string",
                    "",
                    "If specified, all readiness gates will be evaluated for pod readiness.",
                    1,
                ),
            ],
            pod_cells,
        ),
        ("", "Service") => (
            vec![
                name_col(),
                col(
                    "Type",
                    "string",
                    "",
                    "type determines how the Service is exposed.",
                    0,
                ),
                col(
                    "Cluster-IP",
                    "string",
                    "",
                    "clusterIP is the IP address of the service.",
                    0,
                ),
                col(
                    "External-IP",
                    "string",
                    "",
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                    0,
                ),
                col(
                    "Port(s)",
                    "string",
                    "",
                    "The list of ports that are exposed by this service.",
                    0,
                ),
                ag(),
                col(
                    "Selector",
                    "string",
                    "",
                    "Route service traffic to pods with label keys and values matching this selector.",
                    1,
                ),
            ],
            |o| {
                let ext = o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(|a| a.iter().map(|i| s(&i["ip"])).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                let ext = if ext.is_empty() && o["spec"]["type"] == json!("LoadBalancer") {
                    "<pending>".to_string()
                } else {
                    or_none(ext)
                };
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["spec"]["type"])),
                    json!(or_none(s(&o["spec"]["clusterIP"]))),
                    json!(ext),
                    json!(service_ports(o)),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                    json!(selector_string(&o["spec"]["selector"])),
                ]
            },
        ),
        ("apps", "Deployment") => (
            vec![
                name_col(),
                col(
                    "Ready",
                    "string",
                    "",
                    "Number of the pod with ready state",
                    0,
                ),
                col(
                    "Up-to-date",
                    "string",
                    "",
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                    0,
                ),
                col(
                    "Available",
                    "string",
                    "",
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                    0,
                ),
                ag(),
                col(
                    "Containers",
                    "string",
                    "",
                    "Names of each container in the template.",
                    1,
                ),
                col(
                    "Images",
                    "string",
                    "",
                    "Images referenced by each container in the template.",
                    1,
                ),
                col("Selector", "string", "", "Label selector for pods.", 1),
            ],
            |o| {
                let st = &o["status"];
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(format!(
                        "{}/{}",
                        st["readyReplicas"].as_i64().unwrap_or(0),
                        o["spec"]["replicas"].as_i64().unwrap_or(0)
                    )),
                    json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
                    json!(st["availableReplicas"].as_i64().unwrap_or(0)),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                    json!(selector_string(&o["spec"]["selector"])),
                ]
            },
        ),
        ("apps", "ReplicaSet") => (
            vec![
                name_col(),
                col("Desired", "integer", "", "Number of desired pods.", 0),
                col("Current", "integer", "", "Number of actual replicas.", 0),
                col(
                    "Ready",
                    "integer",
                    "",
                    "The number of ready replicas for this replica set.",
                    0,
                ),
                ag(),
                col(
                    "Containers",
                    "string",
                    "",
                    "Names of each container in the template.",
                    1,
                ),
                col(
                    "Images",
                    "string",
                    "",
                    "Images referenced by each container in the template.",
                    1,
                ),
                col("Selector", "string", "", "Label selector for pods.", 1),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(o["spec"]["replicas"].as_i64().unwrap_or(0)),
                    json!(o["status"]["replicas"].as_i64().unwrap_or(0)),
                    json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0)),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                    json!(containers(o, "name")),
                    json!(containers(o, "image")),
                    json!(selector_string(&o["spec"]["selector"])),
                ]
            },
        ),
        ("", "ConfigMap") => (
            vec![
                name_col(),
                col(
                    "Data",
                    "string",
                    "",
                    "Data contains the configuration data.",
                    0,
                ),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(count(&o["data"]) + count(&o["binaryData"])),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("", "Secret") => (
            vec![
                name_col(),
                col(
                    "Type",
                    "string",
                    "",
                    "Used to facilitate programmatic handling of secret data.",
                    0,
                ),
                col("Data", "string", "", "Data contains the secret data.", 0),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["type"])),
                    json!(count(&o["data"])),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("", "Namespace") => (
            vec![
                name_col(),
                col("Status", "string", "", "The status of the namespace", 0),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["status"]["phase"])),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("", "Node") => (
            vec![
                name_col(),
                col("Status", "string", "", "The status of the node", 0),
                col("Roles", "string", "", "The roles of the node", 0),
                ag(),
                col(
                    "Version",
                    "string",
                    "",
                    "Kubelet Version reported by the node.",
                    0,
                ),
                col(
                    "Internal-IP",
                    "string",
                    "",
                    "List of addresses reachable to the node.",
                    1,
                ),
            ],
            |o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == json!("Ready"));
                let mut status = match ready {
                    Some(c) if c["status"] == json!("True") => "Ready".to_string(),
                    Some(_) => "NotReady".to_string(),
                    None => "Unknown".to_string(),
                };
                if o["spec"]["unschedulable"] == json!(true) {
                    status.push_str(",SchedulingDisabled");
                }
                let ip = o["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == json!("InternalIP"))
                    .map(|a| s(&a["address"]))
                    .unwrap_or_default();
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(status),
                    json!("<none>"),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                    json!(s(&o["status"]["nodeInfo"]["kubeletVersion"])),
                    json!(or_none(ip)),
                ]
            },
        ),
        ("", "ServiceAccount") => (
            vec![name_col(), col("Secrets", "string", "", "Secrets", 0), ag()],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(o["secrets"].as_array().map_or(0, Vec::len)),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                name_col(),
                col("Holder", "string", "", "The holder of the lease", 0),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["spec"]["holderIdentity"])),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![
                name_col(),
                col(
                    "Pod-Selector",
                    "string",
                    "",
                    "Selects the pods to which this NetworkPolicy object applies.",
                    0,
                ),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(selector_string(&o["spec"]["podSelector"])),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("", "PersistentVolumeClaim") => (
            vec![
                name_col(),
                col("Status", "string", "", "The phase of the claim", 0),
                col("Volume", "string", "", "The volume bound to this claim", 0),
                col("Capacity", "string", "", "The capacity of the volume", 0),
                col(
                    "Access Modes",
                    "string",
                    "",
                    "The access modes of the volume",
                    0,
                ),
                col(
                    "StorageClass",
                    "string",
                    "",
                    "The storage class of the claim",
                    0,
                ),
                ag(),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["status"]["phase"])),
                    json!(s(&o["spec"]["volumeName"])),
                    json!(s(&o["status"]["capacity"]["storage"])),
                    json!(
                        o["status"]["accessModes"]
                            .as_array()
                            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
                            .unwrap_or_default()
                    ),
                    json!(or_none(s(&o["spec"]["storageClassName"]))),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("", "Event") | ("events.k8s.io", "Event") => (
            vec![
                col(
                    "Last Seen",
                    "string",
                    "",
                    "Time when this event was last seen",
                    0,
                ),
                col("Type", "string", "", "Type of this event", 0),
                col(
                    "Reason",
                    "string",
                    "",
                    "Reason why this event was generated",
                    0,
                ),
                col("Object", "string", "", "The object this event is about", 0),
                col(
                    "Message",
                    "string",
                    "",
                    "A human-readable description of the status of this operation",
                    0,
                ),
            ],
            |o| {
                let last = [
                    &o["lastTimestamp"],
                    &o["eventTime"],
                    &o["series"]["lastObservedTime"],
                    &o["deprecatedLastTimestamp"],
                    &o["metadata"]["creationTimestamp"],
                ]
                .into_iter()
                .find(|v| v.is_string())
                .cloned()
                .unwrap_or(Value::Null);
                let obj = if o["involvedObject"].is_object() {
                    &o["involvedObject"]
                } else {
                    &o["regarding"]
                };
                vec![
                    json!(age(&last)),
                    json!(s(&o["type"])),
                    json!(s(&o["reason"])),
                    json!(format!(
                        "{}/{}",
                        s(&obj["kind"]).to_lowercase(),
                        s(&obj["name"])
                    )),
                    json!(if o["message"].is_string() {
                        s(&o["message"])
                    } else {
                        s(&o["note"])
                    }),
                ]
            },
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => (
            vec![
                name_col(),
                col("Created At", "date", "", "CreationTimestamp", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => (
            vec![
                name_col(),
                col("Created At", "date", "", "CreationTimestamp", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (
            vec![
                name_col(),
                col("Role", "string", "", "RoleRef is the role being bound.", 0),
                ag(),
                col("Users", "string", "", "Users in the binding.", 1),
                col("Groups", "string", "", "Groups in the binding.", 1),
                col(
                    "ServiceAccounts",
                    "string",
                    "",
                    "ServiceAccounts in the binding.",
                    1,
                ),
            ],
            |o| {
                let subjects = |kind: &str| -> String {
                    o["subjects"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|x| x["kind"].as_str() == Some(kind))
                        .map(|x| {
                            if kind == "ServiceAccount" {
                                format!("{}:{}", s(&x["namespace"]), s(&x["name"]))
                            } else {
                                s(&x["name"])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(format!(
                        "{}/{}",
                        s(&o["roleRef"]["kind"]),
                        s(&o["roleRef"]["name"])
                    )),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                    json!(subjects("User")),
                    json!(subjects("Group")),
                    json!(subjects("ServiceAccount")),
                ]
            },
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                name_col(),
                col(
                    "Min Available",
                    "string",
                    "",
                    "The minimum number of pods that must be available.",
                    0,
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "",
                    "The maximum number of pods that may be unavailable.",
                    0,
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "",
                    "Calculated number of pods that may be disrupted at this time.",
                    0,
                ),
                ag(),
            ],
            |o| {
                let or_na = |v: &Value| {
                    if v.is_null() { "N/A".to_string() } else { s(v) }
                };
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(or_na(&o["spec"]["minAvailable"])),
                    json!(or_na(&o["spec"]["maxUnavailable"])),
                    json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
                    json!(age(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        _ => (vec![name_col(), age_col()], |o| {
            vec![
                json!(s(&o["metadata"]["name"])),
                json!(age(&o["metadata"]["creationTimestamp"])),
            ]
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Simple JSONPath (as CRD printer columns allow: `.a.b`, `[n]`, `[*]`, `['k']`, `[?(@.x=="y")]`)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(Vec<String>, bool, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let name: String = chars[start..i.min(chars.len())].iter().collect();
                let name = name.replace("\\.", ".");
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.saturating_sub(1)].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    let (lhs, eq, rhs) = if let Some((l, r)) = f.split_once("!=") {
                        (l, false, r)
                    } else if let Some((l, r)) = f.split_once("==") {
                        (l, true, r)
                    } else {
                        return None;
                    };
                    let lhs = lhs.trim().strip_prefix("@.")?;
                    let rhs = rhs.trim().trim_matches('"').trim_matches('\'').to_string();
                    steps.push(Step::Filter(
                        lhs.split('.').map(str::to_string).collect(),
                        eq,
                        rhs,
                    ));
                } else {
                    let key = inner.trim_matches('\'').trim_matches('"').to_string();
                    steps.push(Step::Field(key));
                }
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// Evaluates a simple JSONPath against a value; returns every match.
pub fn jsonpath<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut cur: Vec<&Value> = vec![v];
    for st in &steps {
        let mut next = Vec::new();
        for c in cur {
            match st {
                Step::Field(f) => {
                    if let Some(x) = c.get(f.as_str()) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(x) = c.get(*n) {
                        next.push(x);
                    }
                }
                Step::All => match c {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(lhs, eq, rhs) => {
                    for item in c.as_array().into_iter().flatten() {
                        let mut x = item;
                        for seg in lhs {
                            x = &x[seg.as_str()];
                        }
                        if (s(x) == *rhs) == *eq && !x.is_null() {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn cell_for(ty: &str, v: Option<&Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    match ty {
        "string" => match v {
            Value::String(x) => json!(x),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        "integer" => v.as_i64().map_or(Value::Null, |n| json!(n)),
        "number" => v.as_f64().map_or(Value::Null, |n| json!(n)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => v.as_str().map_or(Value::Null, |_| json!(age(v))),
        _ => json!(s(v)),
    }
}

/// A `meta.k8s.io/v1` Table of the given objects. `include` is `includeObject`: `None`,
/// `Metadata` (default) or `Object`.
pub fn table(info: &ResourceInfo, objs: &[&Value], list_meta: Value, include: &str) -> Value {
    let (columns, rows): (Vec<Value>, Vec<Vec<Value>>) = match &info.custom {
        Some(c) => {
            let mut cols = vec![name_col()];
            let specs: Vec<(String, String)> = if c.printer_columns.is_empty() {
                cols.push(age_col());
                vec![(".metadata.creationTimestamp".into(), "date".into())]
            } else {
                c.printer_columns
                    .iter()
                    .map(|pc| {
                        cols.push(col(
                            pc["name"].as_str().unwrap_or_default(),
                            pc["type"].as_str().unwrap_or("string"),
                            pc["format"].as_str().unwrap_or_default(),
                            pc["description"].as_str().unwrap_or_default(),
                            pc["priority"].as_i64().unwrap_or(0),
                        ));
                        (
                            pc["jsonPath"].as_str().unwrap_or_default().to_string(),
                            pc["type"].as_str().unwrap_or("string").to_string(),
                        )
                    })
                    .collect()
            };
            let rows = objs
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(s(&o["metadata"]["name"]))];
                    for (p, ty) in &specs {
                        cells.push(cell_for(ty, jsonpath(o, p).first().copied()));
                    }
                    cells
                })
                .collect();
            (cols, rows)
        }
        None => {
            let (cols, f) = builtin_columns(info);
            (cols, objs.iter().map(|o| f(o)).collect())
        }
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(objs.iter())
        .map(|(cells, o)| {
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = crate::server::as_version(info, o),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl's relative ages (k8s.io/apimachinery duration.HumanDuration).
    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(3600 * 50), "2d2h");
    }

    /// CRD additionalPrinterColumns JSONPath: fields, indexes, wildcards and filters.
    #[test]
    fn simple_jsonpath() {
        let v = json!({"spec": {"replicas": 3, "c": [{"image": "a"}, {"image": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        assert_eq!(jsonpath(&v, ".spec.replicas"), vec![&json!(3)]);
        assert_eq!(jsonpath(&v, ".spec.c[1].image"), vec![&json!("b")]);
        assert_eq!(jsonpath(&v, ".spec.c[*].image").len(), 2);
        assert_eq!(
            jsonpath(&v, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
    }
}
