//! Simulated nodes: registration with server-side apply (idempotent across restarts), node
//! status (capacity, allocatable, conditions, addresses, nodeInfo) and the node heartbeat, a
//! Lease per node in `kube-node-lease` renewed every 10 s as the kubelet does
//! (<https://kubernetes.io/docs/concepts/architecture/nodes/#node-heartbeats>).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::informer::Cache;
use super::queue::Key;
use super::resources::parse_milli;
use super::{
    FIELD_MANAGER, SIMULATED_LABEL, SimConfig, SimError, is_conflict, now_micro, now_time,
};

/// Namespace holding the node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often each node's Lease is renewed (the kubelet's default `nodeLeaseRenewInterval`:
/// a quarter of the 40 s lease duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// `leaseDurationSeconds` of node Leases (kubelet default).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often the full node status is re-posted when nothing changed (the kubelet's
/// `nodeStatusReportFrequency`, 5 minutes).
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);
/// Maximum pods per node (kubelet default `maxPods`).
pub const MAX_PODS: u32 = 110;
/// The extended resource advertised for GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Label of GPU nodes (as NVIDIA's GPU feature discovery sets it), for node selectors.
pub const GPU_PRESENT_LABEL: &str = "nvidia.com/gpu.present";

/// What every simulated node looks like.
#[derive(Debug, Clone)]
pub struct NodeTemplate {
    /// Number of nodes.
    pub count: usize,
    /// CPU quantity.
    pub cpu: String,
    /// Memory quantity.
    pub memory: String,
    /// GPUs per GPU node (0: not advertised).
    pub gpus: u32,
    /// Number of GPU nodes: nodes 1..=gpu_nodes have `gpus` GPUs, the others none.
    pub gpu_nodes: usize,
}

impl NodeTemplate {
    /// Validates the configuration's quantities.
    pub fn from_config(cfg: &SimConfig) -> Result<Self, SimError> {
        for (what, q) in [
            ("node_cpu", &cfg.node_cpu),
            ("node_memory", &cfg.node_memory),
        ] {
            match parse_milli(q) {
                Ok(v) if v > 0 => {}
                Ok(_) => {
                    return Err(SimError::Config(format!(
                        "{what} must be positive, got {q}"
                    )));
                }
                Err(e) => return Err(SimError::Config(format!("{what}: {e}"))),
            }
        }
        let gpu_nodes = cfg.gpu_nodes.unwrap_or(cfg.nodes);
        if gpu_nodes > cfg.nodes {
            return Err(SimError::Config(format!(
                "gpu_nodes ({gpu_nodes}) exceeds the number of nodes ({})",
                cfg.nodes
            )));
        }
        Ok(NodeTemplate {
            count: cfg.nodes,
            cpu: cfg.node_cpu.clone(),
            memory: cfg.node_memory.clone(),
            gpus: cfg.gpus_per_node,
            gpu_nodes,
        })
    }

    /// GPUs of node `i` (1-based).
    pub fn gpus_of(&self, i: usize) -> u32 {
        if i <= self.gpu_nodes { self.gpus } else { 0 }
    }
}

/// Name of the `i`th node (1-based).
pub fn node_name(i: usize) -> String {
    format!("sim-node-{i}")
}

/// InternalIP of the `i`th node (1-based): 10.0.0.1 .. 10.0.0.254, then 10.0.1.1, ...
pub fn node_ip(i: usize) -> String {
    let n = i.saturating_sub(1);
    format!("10.0.{}.{}", (n / 254) % 256, n % 254 + 1)
}

/// Pod CIDR of the `i`th node (1-based): a /24 out of 10.244.0.0/16 (and beyond for more than
/// 256 nodes), as the node IPAM controller hands them out.
pub fn pod_cidr(i: usize) -> String {
    let n = i.saturating_sub(1);
    format!("10.{}.{}.0/24", 244 + (n / 256) % 12, n % 256)
}

/// The node object (metadata and spec) as applied with server-side apply.
pub fn node_object(t: &NodeTemplate, i: usize) -> Value {
    let name = node_name(i);
    let cidr = pod_cidr(i);
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "tycho-sim",
                SIMULATED_LABEL: "true",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {
            "podCIDR": cidr,
            "podCIDRs": [cidr],
        },
    });
    if t.gpus_of(i) > 0 {
        node["metadata"]["labels"][GPU_PRESENT_LABEL] = json!("true");
    }
    node
}

/// The node status as applied on the `nodes/status` subresource.
pub fn node_status(t: &NodeTemplate, i: usize, now: &str) -> Value {
    let name = node_name(i);
    let mut capacity = json!({
        "cpu": t.cpu,
        "memory": t.memory,
        "pods": MAX_PODS.to_string(),
        "ephemeral-storage": "100Gi",
    });
    if t.gpus_of(i) > 0 {
        capacity[GPU_RESOURCE] = json!(t.gpus_of(i).to_string());
    }
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": node_ip(i)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", i),
                "systemUUID": format!("00000000-0000-0000-0000-{:012x}", i),
                "bootID": format!("{:08x}-0000-0000-0000-000000000000", i),
                "kernelVersion": "6.1.0-tycho-sim",
                "osImage": "Tycho simulated node",
                "containerRuntimeVersion": "tycho-sim://1.0.0",
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

/// The heartbeat Lease of a node, owned by the Node (as the kubelet creates it).
pub fn node_lease(name: &str, node_uid: Option<&str>, now_micro: &str) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": now_micro,
        },
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "Node", "name": name, "uid": uid,
        }]);
    }
    lease
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Server-side apply of `obj`; against a server without apply (501 NotImplemented, 415, 405)
/// the same intent as create-or-merge-patch.
async fn apply<K>(api: &Api<K>, name: &str, obj: Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.patch(name, &apply_params(), &Patch::Apply(&obj)).await {
        Err(kube::Error::Api(s)) if matches!(s.code, 405 | 415 | 501) => {
            let typed: K = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
            let pp = kube::api::PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&pp, &typed).await {
                Err(e) if is_conflict(&e) => {
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&obj))
                        .await
                }
                r => r,
            }
        }
        r => r,
    }
}

/// Registers node `i` (object then status). Returns the node's uid.
async fn register(
    client: &kube::Client,
    t: &NodeTemplate,
    i: usize,
) -> Result<Option<String>, SimError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = node_name(i);
    let node = apply(&api, &name, node_object(t, i))
        .await
        .map_err(SimError::api("apply", "Node", &name))?;
    let status = node_status(t, i, &now_time());
    post_status(&api, &name, &status).await?;
    Ok(node.metadata.uid)
}

/// Posts a node's status: server-side apply on `nodes/status`, or a merge patch where the
/// server does not offer apply.
async fn post_status(api: &Api<Node>, name: &str, status: &Value) -> Result<(), SimError> {
    match api
        .patch_status(name, &apply_params(), &Patch::Apply(status))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if matches!(s.code, 405 | 415 | 501) => {
            let body = json!({"status": status["status"]});
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map_err(SimError::api("patch status", "Node", name))?;
            Ok(())
        }
        Err(e) => Err(SimError::api("apply status", "Node", name)(e)),
    }
}

async fn ensure_lease_namespace(client: &kube::Client) -> Result<(), SimError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NODE_LEASE_NAMESPACE}});
    apply(&api, NODE_LEASE_NAMESPACE, ns)
        .await
        .map_err(SimError::api("apply", "Namespace", NODE_LEASE_NAMESPACE))?;
    Ok(())
}

async fn renew(client: &kube::Client, name: &str, uid: Option<&str>) -> Result<(), SimError> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    apply(&api, name, node_lease(name, uid, &now_micro()))
        .await
        .map_err(SimError::api(
            "apply",
            "Lease",
            format!("{NODE_LEASE_NAMESPACE}/{name}"),
        ))?;
    Ok(())
}

/// Starts the node agent: registers every node (retrying until the API server answers), then
/// renews their Leases every [`LEASE_RENEW_INTERVAL`] and re-posts their status every
/// [`STATUS_REPORT_INTERVAL`]. A node deleted through the API is not re-created (as a kubelet
/// whose Node object was deleted does not re-register until restarted); its Lease is no longer
/// renewed.
pub fn start(
    set: &mut JoinSet<()>,
    client: kube::Client,
    t: NodeTemplate,
    nodes: Arc<Cache<Node>>,
    mut shutdown: watch::Receiver<bool>,
) {
    set.spawn(async move {
        let mut uids: Vec<Option<String>> = vec![None; t.count];
        let mut registered = vec![false; t.count];
        let mut namespace_ok = false;
        let mut backoff = Duration::from_millis(100);
        let mut last_status = tokio::time::Instant::now();
        loop {
            // Registration (retried until every node exists).
            let mut all = true;
            for i in 1..=t.count {
                if registered[i - 1] {
                    continue;
                }
                match register(&client, &t, i).await {
                    Ok(uid) => {
                        uids[i - 1] = uid;
                        registered[i - 1] = true;
                    }
                    Err(e) => {
                        all = false;
                        tracing::debug!(error = %e, "node registration failed, retrying");
                        break;
                    }
                }
            }
            if !namespace_ok {
                match ensure_lease_namespace(&client).await {
                    Ok(()) => namespace_ok = true,
                    Err(e) => {
                        all = false;
                        tracing::debug!(error = %e, "node lease namespace not ready");
                    }
                }
            }
            let wait = if all {
                backoff = Duration::from_millis(100);
                if last_status.elapsed() >= STATUS_REPORT_INTERVAL {
                    last_status = tokio::time::Instant::now();
                    for i in 1..=t.count {
                        let name = node_name(i);
                        let api: Api<Node> = Api::all(client.clone());
                        let status = node_status(&t, i, &now_time());
                        if let Err(e) = post_status(&api, &name, &status).await {
                            tracing::debug!(node = %name, error = %e, "node status report failed");
                        }
                    }
                }
                for i in 1..=t.count {
                    let name = node_name(i);
                    // Once the node cache is loaded, a node absent from it was deleted.
                    if nodes.is_synced() && nodes.get(&Key::new("", name.clone())).is_none() {
                        continue;
                    }
                    if let Err(e) = renew(&client, &name, uids[i - 1].as_deref()).await {
                        tracing::debug!(error = %e, "node lease renewal failed");
                        if e.status_code() == Some(404) {
                            namespace_ok = false;
                        }
                    }
                }
                LEASE_RENEW_INTERVAL
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(5));
                backoff
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(gpus: u32) -> NodeTemplate {
        NodeTemplate {
            count: 3,
            cpu: "8".into(),
            memory: "32Gi".into(),
            gpus,
            gpu_nodes: 3,
        }
    }

    #[test]
    fn nodes_are_labelled_addressed_and_ready() {
        let t = template(0);
        let n = node_object(&t, 2);
        assert_eq!(n["metadata"]["name"], "sim-node-2");
        assert_eq!(
            n["metadata"]["labels"]["kubernetes.io/hostname"],
            "sim-node-2"
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
        assert_eq!(n["metadata"]["labels"][SIMULATED_LABEL], "true");
        assert_eq!(n["spec"]["podCIDR"], "10.244.1.0/24");
        let s = node_status(&t, 2, "2025-01-01T00:00:00Z");
        assert_eq!(s["status"]["capacity"]["pods"], "110");
        assert_eq!(s["status"]["allocatable"]["memory"], "32Gi");
        assert!(s["status"]["capacity"].get(GPU_RESOURCE).is_none());
        assert_eq!(s["status"]["addresses"][0]["address"], "10.0.0.2");
        let ready = s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        // The typed Node deserializes (all required nodeInfo fields present).
        let mut full = n.clone();
        full["status"] = s["status"].clone();
        let node: Node = serde_json::from_value(full).unwrap();
        assert_eq!(
            node.status.unwrap().node_info.unwrap().kubelet_version,
            "v1.32.4"
        );
    }

    #[test]
    fn gpus_are_advertised_when_asked() {
        let s = node_status(&template(4), 1, "2025-01-01T00:00:00Z");
        assert_eq!(s["status"]["capacity"][GPU_RESOURCE], "4");
        assert_eq!(s["status"]["allocatable"][GPU_RESOURCE], "4");
        assert_eq!(
            node_object(&template(4), 1)["metadata"]["labels"][GPU_PRESENT_LABEL],
            "true"
        );
        assert!(
            node_object(&template(0), 1)["metadata"]["labels"]
                .get(GPU_PRESENT_LABEL)
                .is_none()
        );
    }

    /// `gpu_nodes` makes a mixed cluster: the first nodes have GPUs, the rest none.
    #[test]
    fn only_the_first_gpu_nodes_have_gpus() {
        let cfg = SimConfig {
            nodes: 3,
            gpus_per_node: 2,
            gpu_nodes: Some(1),
            ..SimConfig::default()
        };
        let t = NodeTemplate::from_config(&cfg).unwrap();
        let at = |i| node_status(&t, i, "2025-01-01T00:00:00Z")["status"]["capacity"].clone();
        assert_eq!(at(1)[GPU_RESOURCE], "2");
        assert!(at(2).get(GPU_RESOURCE).is_none() && at(3).get(GPU_RESOURCE).is_none());
        assert!(
            node_object(&t, 2)["metadata"]["labels"]
                .get(GPU_PRESENT_LABEL)
                .is_none()
        );
        let too_many = SimConfig {
            nodes: 3,
            gpu_nodes: Some(4),
            ..SimConfig::default()
        };
        assert!(matches!(
            NodeTemplate::from_config(&too_many),
            Err(SimError::Config(_))
        ));
    }

    #[test]
    fn addresses_and_cidrs_stay_unique_past_254_nodes() {
        assert_eq!(node_ip(1), "10.0.0.1");
        assert_eq!(node_ip(254), "10.0.0.254");
        assert_eq!(node_ip(255), "10.0.1.1");
        assert_eq!(pod_cidr(1), "10.244.0.0/24");
        assert_eq!(pod_cidr(257), "10.245.0.0/24");
        let ips: std::collections::HashSet<_> = (1..=1000).map(node_ip).collect();
        assert_eq!(ips.len(), 1000);
    }

    #[test]
    fn bad_quantities_are_a_config_error() {
        let cfg = SimConfig {
            node_cpu: "lots".into(),
            ..SimConfig::default()
        };
        assert!(matches!(
            NodeTemplate::from_config(&cfg),
            Err(SimError::Config(_))
        ));
    }

    #[test]
    fn lease_is_owned_by_its_node() {
        let l = node_lease("sim-node-1", Some("uid-1"), "2025-01-01T00:00:00.000000Z");
        assert_eq!(l["metadata"]["namespace"], NODE_LEASE_NAMESPACE);
        assert_eq!(l["spec"]["holderIdentity"], "sim-node-1");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    }
}
