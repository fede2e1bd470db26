//! The System's status as a pure function of the System, the objects the API server returned after apply, the
//! live pods, the session's state and a node address. Deterministic: the same inputs give the same status, and
//! `lastTransitionTime` only moves when a condition's status flips — so writing it never triggers itself.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use tycho_model::{Endpoint, Expose, Phase, System, SystemStatus};

use super::session::from_millis;

/// Condition type: every wanted pod is ready.
pub const READY: &str = "Ready";
/// Condition type: a rollout or start is under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong with the running stack or its spec.
pub const DEGRADED: &str = "Degraded";
/// Condition type: the session (if any) allows the System to run.
pub const SESSION_VALID: &str = "SessionValid";

/// Container waiting reasons that mean the pod will not come up by itself.
const BAD_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What the session says about the System.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// The System names no session.
    None,
    /// The session is alive.
    Active,
    /// The named Lease does not exist (and was never seen): the System does not start.
    Missing,
    /// The session expired, was deleted or collected: the System is being deleted.
    Ended {
        /// CamelCase reason: SessionExpired, SessionDeleted or SessionCollected.
        reason: &'static str,
    },
}

/// The workload object as returned by the API server.
#[derive(Clone, Copy, Debug)]
pub enum AppliedWorkload<'a> {
    /// A Deployment.
    Deployment(&'a Deployment),
    /// A bare Pod (absent while it is being replaced).
    Pod(Option<&'a Pod>),
}

/// What reconcile got to.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// The spec cannot run as written.
    Invalid {
        /// CamelCase reason, e.g. InvalidSpec, RenderFailed, MissingClaim.
        reason: &'a str,
        /// Message naming the field.
        message: &'a str,
    },
    /// Not started because of the session.
    NotStarted,
    /// Not started yet, for a reason that passes by itself (a template's `maxPerOwner`).
    Waiting {
        /// CamelCase reason, e.g. QuotaExceeded.
        reason: &'a str,
        /// What it waits for.
        message: &'a str,
    },
    /// Children applied.
    Applied {
        /// The workload.
        workload: AppliedWorkload<'a>,
        /// The Service, if one is rendered.
        service: Option<&'a Service>,
        /// Live pods of the System (any order).
        pods: &'a [Pod],
    },
}

/// Everything the status depends on.
#[derive(Clone, Copy, Debug)]
pub struct StatusInput<'a> {
    /// The System.
    pub system: &'a System,
    /// What reconcile achieved.
    pub outcome: Outcome<'a>,
    /// The session's verdict.
    pub session: &'a SessionStatus,
    /// When the System will be (or was) collected, if known.
    pub expires_at: Option<Timestamp>,
    /// An address of a node (ExternalIP or InternalIP) for endpoint URLs.
    pub node_address: Option<&'a str>,
    /// The current time, used only for conditions whose status flips.
    pub now: Timestamp,
}

struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

fn cond(
    type_: &'static str,
    status: bool,
    reason: impl Into<String>,
    message: impl Into<String>,
) -> Cond {
    Cond {
        type_,
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// Compute the status. `previous` is the status currently stored (for `lastTransitionTime`).
pub fn compute_status(input: &StatusInput<'_>, previous: Option<&SystemStatus>) -> SystemStatus {
    let system = input.system;
    let spec = &system.spec;
    let desired = if spec.paused {
        0
    } else if spec.workload == tycho_model::Workload::Pod {
        1
    } else {
        spec.replicas.max(0)
    };
    let session_cond = session_condition(input.session, spec.session.as_deref());

    let mut ready_replicas = 0;
    let mut endpoints = Vec::new();
    let (phase, conds) = match input.outcome {
        Outcome::Invalid { reason, message } => (
            Phase::Failed,
            vec![
                cond(READY, false, reason, message),
                cond(PROGRESSING, false, reason, "the spec cannot run as written"),
                cond(DEGRADED, true, reason, message),
            ],
        ),
        Outcome::Waiting { reason, message } => (
            Phase::Pending,
            vec![
                cond(READY, false, reason, message),
                cond(PROGRESSING, false, reason, message),
                cond(DEGRADED, false, reason, message),
            ],
        ),
        Outcome::NotStarted => {
            let (phase, reason, message) = match input.session {
                SessionStatus::Ended { reason } => (
                    Phase::Expiring,
                    *reason,
                    "the session ended; the System is being deleted",
                ),
                _ => (
                    Phase::Pending,
                    "SessionNotFound",
                    "waiting for the session Lease; nothing is started without it",
                ),
            };
            (
                phase,
                vec![
                    cond(READY, false, reason, message),
                    cond(PROGRESSING, false, reason, message),
                    cond(DEGRADED, false, reason, message),
                ],
            )
        }
        Outcome::Applied {
            workload,
            service,
            pods,
        } => {
            let mut pods: Vec<&Pod> = pods.iter().collect();
            pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let health = workload_health(workload, &pods, desired);
            ready_replicas = health.ready;
            endpoints = compute_endpoints(system, service, input.node_address);
            let degraded = health.problem.as_ref();
            let ready_now = desired > 0 && health.ready >= desired;
            let ready = if spec.paused {
                cond(
                    READY,
                    false,
                    "Paused",
                    "the System is paused (scaled to zero)",
                )
            } else if ready_now {
                cond(
                    READY,
                    true,
                    "AllReplicasReady",
                    format!("{}/{} replicas ready", health.ready, desired),
                )
            } else if desired == 0 {
                cond(READY, false, "NoReplicas", "no replicas are wanted")
            } else {
                cond(
                    READY,
                    false,
                    "ReplicasNotReady",
                    format!("{}/{} replicas ready", health.ready, desired),
                )
            };
            let progressing = if spec.paused {
                cond(
                    PROGRESSING,
                    false,
                    "Paused",
                    "the System is paused (scaled to zero)",
                )
            } else if let Some((reason, message)) = degraded {
                cond(PROGRESSING, false, reason.clone(), message.clone())
            } else if !health.rolled_out || !ready_now {
                cond(
                    PROGRESSING,
                    true,
                    "RollingOut",
                    health.progress_message.clone(),
                )
            } else {
                cond(
                    PROGRESSING,
                    false,
                    "RolloutComplete",
                    "every replica runs the current spec",
                )
            };
            let degraded_cond = match degraded {
                Some((reason, message)) => cond(DEGRADED, true, reason.clone(), message.clone()),
                None => cond(DEGRADED, false, "AsExpected", "no problem detected"),
            };
            let phase = if spec.paused {
                Phase::Pending
            } else if degraded.is_some() {
                Phase::Degraded
            } else if ready_now && health.rolled_out {
                Phase::Ready
            } else {
                Phase::Progressing
            };
            (phase, vec![ready, progressing, degraded_cond])
        }
    };

    let generation = system.metadata.generation;
    let mut conditions: Vec<Condition> = conds
        .into_iter()
        .chain(std::iter::once(session_cond))
        .map(|c| to_condition(c, generation, previous, input.now))
        .collect();
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));

    let node_ports: Vec<String> = {
        let mut seen = Vec::new();
        for np in endpoints.iter().filter_map(|e| e.node_port) {
            if !seen.contains(&np) {
                seen.push(np);
            }
        }
        seen.iter().map(|p| p.to_string()).collect()
    };

    SystemStatus {
        phase: Some(phase),
        conditions,
        observed_generation: generation,
        endpoints,
        ready_replicas,
        replicas: desired,
        ready: Some(format!("{ready_replicas}/{desired}")),
        node_ports: if node_ports.is_empty() {
            None
        } else {
            Some(node_ports.join(","))
        },
        expires_at: input.expires_at.map(format_time),
        // The reconcile that renders sets it; other outcomes keep the last one rendered.
        template: previous.and_then(|p| p.template.clone()),
    }
}

/// RFC 3339 with whole seconds, as Kubernetes writes times.
pub fn format_time(t: Timestamp) -> String {
    from_millis(t.as_second().saturating_mul(1000)).to_string()
}

fn session_condition(session: &SessionStatus, name: Option<&str>) -> Cond {
    let name = name.unwrap_or_default();
    match session {
        SessionStatus::None => cond(
            SESSION_VALID,
            true,
            "NoSession",
            "the System is not owned by a session",
        ),
        SessionStatus::Active => cond(
            SESSION_VALID,
            true,
            "SessionActive",
            format!("session Lease {name} is renewed"),
        ),
        SessionStatus::Missing => cond(
            SESSION_VALID,
            false,
            "SessionNotFound",
            format!("spec.session: Lease {name} does not exist in this namespace"),
        ),
        SessionStatus::Ended { reason } => {
            let what = match *reason {
                "SessionDeleted" => "was deleted",
                "SessionCollected" => "was collected",
                _ => "was not renewed within its duration",
            };
            cond(
                SESSION_VALID,
                false,
                *reason,
                format!("spec.session: Lease {name} {what}"),
            )
        }
    }
}

fn to_condition(
    c: Cond,
    generation: Option<i64>,
    previous: Option<&SystemStatus>,
    now: Timestamp,
) -> Condition {
    let status = if c.status { "True" } else { "False" };
    let kept = previous
        .and_then(|p| p.conditions.iter().find(|old| old.type_ == c.type_))
        .filter(|old| old.status == status)
        .map(|old| old.last_transition_time.clone());
    Condition {
        type_: c.type_.to_string(),
        status: status.to_string(),
        reason: c.reason,
        message: c.message,
        observed_generation: generation,
        last_transition_time: kept
            .unwrap_or_else(|| Time(from_millis(now.as_second().saturating_mul(1000)))),
    }
}

struct Health {
    ready: i32,
    rolled_out: bool,
    progress_message: String,
    problem: Option<(String, String)>,
}

fn workload_health(workload: AppliedWorkload<'_>, pods: &[&Pod], desired: i32) -> Health {
    let any_pod_problem = pod_problem_from(pods);
    match workload {
        AppliedWorkload::Deployment(d) => {
            let st = d.status.as_ref();
            let ready = st.and_then(|s| s.ready_replicas).unwrap_or(0);
            let updated = st.and_then(|s| s.updated_replicas).unwrap_or(0);
            let total = st.and_then(|s| s.replicas).unwrap_or(0);
            let observed = st.and_then(|s| s.observed_generation).unwrap_or(0);
            let generation = d.metadata.generation.unwrap_or(0);
            let rolled_out = observed >= generation && updated >= desired && total <= desired;
            let dep_problem = deployment_problem(d);
            let progress_message = if observed < generation {
                "the Deployment controller has not seen the current spec yet".to_string()
            } else {
                format!("{updated}/{desired} replicas updated, {ready}/{desired} ready")
            };
            Health {
                ready,
                rolled_out,
                progress_message,
                problem: any_pod_problem.or(dep_problem),
            }
        }
        AppliedWorkload::Pod(pod) => {
            let ready = pod.map(pod_ready).unwrap_or(false);
            let progress_message = match pod {
                None => "the Pod is being replaced".to_string(),
                Some(p) => format!(
                    "Pod {} is {}",
                    p.metadata.name.clone().unwrap_or_default(),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "Pending".into())
                ),
            };
            Health {
                ready: i32::from(ready),
                rolled_out: pod.is_some(),
                progress_message,
                problem: pod.and_then(pod_problem).or(any_pod_problem),
            }
        }
    }
}

/// What is wrong with a Deployment's rollout (reason, message), if anything.
pub fn deployment_problem(d: &Deployment) -> Option<(String, String)> {
    let cs = d.status.as_ref()?.conditions.as_ref()?;
    cs.iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Progressing", "False") => Some((
                c.reason
                    .clone()
                    .unwrap_or_else(|| "ProgressDeadlineExceeded".into()),
                format!("Deployment: {}", c.message.clone().unwrap_or_default()),
            )),
            ("ReplicaFailure", "True") => Some((
                c.reason.clone().unwrap_or_else(|| "ReplicaFailure".into()),
                format!("Deployment: {}", c.message.clone().unwrap_or_default()),
            )),
            _ => None,
        })
}

fn pod_problem_from(pods: &[&Pod]) -> Option<(String, String)> {
    pods.iter().find_map(|p| pod_problem(p))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What is wrong with a Pod, as the System's status reports it (reason, message), if anything.
pub fn pod_problem(pod: &Pod) -> Option<(String, String)> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        return Some((
            "PodFailed".into(),
            format!(
                "Pod {name} failed: {}",
                status
                    .reason
                    .clone()
                    .or(status.message.clone())
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(c) = status.conditions.as_ref().and_then(|cs| {
        cs.iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    }) && c.reason.as_deref() == Some("Unschedulable")
    {
        return Some((
            "Unschedulable".into(),
            format!("Pod {name}: {}", c.message.clone().unwrap_or_default()),
        ));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in containers {
        if let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = waiting.reason.as_deref()
            && BAD_WAITING.contains(&reason)
        {
            return Some((
                reason.to_string(),
                format!(
                    "Pod {name} container {}: {}",
                    cs.name,
                    waiting
                        .message
                        .clone()
                        .unwrap_or_else(|| reason.to_string())
                ),
            ));
        }
    }
    None
}

fn compute_endpoints(
    system: &System,
    service: Option<&Service>,
    node_address: Option<&str>,
) -> Vec<Endpoint> {
    let Some(service) = service else {
        return Vec::new();
    };
    if system.spec.expose == Expose::None {
        return Vec::new();
    }
    let service_name = service.metadata.name.clone();
    let svc_spec = service.spec.as_ref();
    let is_node_port = svc_spec
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "NodePort" || t == "LoadBalancer");
    let svc_ports = svc_spec.and_then(|s| s.ports.as_ref());
    let mut out = Vec::new();
    for c in &system.spec.containers {
        for p in c.ports.iter().filter(|p| p.expose) {
            let proto = p.protocol.as_str();
            let node_port = svc_ports
                .and_then(|ports| {
                    ports.iter().find(|sp| {
                        sp.port == p.port && sp.protocol.as_deref().unwrap_or("TCP") == proto
                    })
                })
                .and_then(|sp| sp.node_port)
                .filter(|_| is_node_port);
            let url = match (node_port, node_address) {
                (Some(np), Some(addr)) => {
                    let scheme = if proto == "TCP" {
                        "http".to_string()
                    } else {
                        proto.to_lowercase()
                    };
                    let host = if addr.contains(':') {
                        format!("[{addr}]")
                    } else {
                        addr.to_string()
                    };
                    Some(format!("{scheme}://{host}:{np}"))
                }
                _ => None,
            };
            out.push(Endpoint {
                container: c.name.clone(),
                port: p.port,
                protocol: proto.to_string(),
                service: service_name.clone(),
                node_port,
                url,
            });
        }
    }
    out
}

/// The address endpoint URLs use: of the first node (by name) that reports one, its ExternalIP if any,
/// else its InternalIP.
pub fn pick_node_address(nodes: &[k8s_openapi::api::core::v1::Node]) -> Option<String> {
    let mut nodes: Vec<_> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    nodes.iter().find_map(|n| {
        let addrs = n.status.as_ref()?.addresses.as_ref()?;
        ["ExternalIP", "InternalIP"].iter().find_map(|t| {
            addrs
                .iter()
                .find(|a| a.type_ == *t)
                .map(|a| a.address.clone())
        })
    })
}

/// Order-independent comparison of a stored status with a computed one: true when writing `new` would change
/// nothing (conditions compared as a set keyed by type).
pub fn same_status(stored: Option<&SystemStatus>, new: &SystemStatus) -> bool {
    let Some(stored) = stored else { return false };
    normalized(stored) == normalized(new)
}

fn normalized(s: &SystemStatus) -> SystemStatus {
    let mut s = s.clone();
    s.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    s
}

/// The status as a JSON merge patch body that also removes fields the new status leaves unset.
pub fn status_patch(status: &SystemStatus) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(status)?;
    if let serde_json::Value::Object(map) = &mut value {
        for key in [
            "phase",
            "conditions",
            "observedGeneration",
            "endpoints",
            "ready",
            "nodePorts",
            "expiresAt",
        ] {
            map.entry(key.to_string())
                .or_insert(serde_json::Value::Null);
        }
    }
    Ok(serde_json::json!({ "status": value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
        ServicePort, ServiceSpec,
    };
    use kube::api::ObjectMeta;
    use tycho_model::{ContainerSpec, PortSpec, SystemSpec, Workload};

    const T0: i64 = 1_700_000_000_000;

    fn system() -> System {
        let mut s = System::new(
            "web",
            SystemSpec {
                containers: vec![ContainerSpec {
                    name: "nginx".into(),
                    image: "nginx".into(),
                    ports: vec![
                        PortSpec {
                            port: 80,
                            expose: true,
                            ..Default::default()
                        },
                        PortSpec {
                            port: 9000,
                            expose: false,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                replicas: 2,
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("ns".into());
        s.metadata.generation = Some(3);
        s
    }

    fn deployment(ready: i32, updated: i32, total: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(1),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                replicas: Some(total),
                observed_generation: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn service(node_port: Option<i32>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("NodePort".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    protocol: Some("TCP".into()),
                    node_port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(name: &str, ready: bool, waiting: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                container_statuses: waiting.map(|w| {
                    vec![ContainerStatus {
                        name: "nginx".into(),
                        state: Some(ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(w.into()),
                                message: None,
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn compute(
        sys: &System,
        dep: &Deployment,
        svc: Option<&Service>,
        pods: &[Pod],
        prev: Option<&SystemStatus>,
        now: i64,
    ) -> SystemStatus {
        let input = StatusInput {
            system: sys,
            outcome: Outcome::Applied {
                workload: AppliedWorkload::Deployment(dep),
                service: svc,
                pods,
            },
            session: &SessionStatus::None,
            expires_at: None,
            node_address: Some("10.0.0.5"),
            now: from_millis(now),
        };
        compute_status(&input, prev)
    }

    fn condition<'a>(s: &'a SystemStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn ready_with_endpoints_and_node_ports() {
        let sys = system();
        let st = compute(
            &sys,
            &deployment(2, 2, 2),
            Some(&service(Some(31234))),
            &[],
            None,
            T0,
        );
        assert_eq!(st.phase, Some(Phase::Ready));
        assert_eq!(st.ready.as_deref(), Some("2/2"));
        assert_eq!(st.ready_replicas, 2);
        assert_eq!(st.replicas, 2);
        assert_eq!(st.node_ports.as_deref(), Some("31234"));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(
            st.endpoints.len(),
            1,
            "unexposed port 9000 is not an endpoint"
        );
        let ep = &st.endpoints[0];
        assert_eq!(ep.url.as_deref(), Some("http://10.0.0.5:31234"));
        assert_eq!(ep.service.as_deref(), Some("web"));
        assert_eq!(condition(&st, READY).status, "True");
        assert_eq!(condition(&st, PROGRESSING).status, "False");
        assert_eq!(condition(&st, DEGRADED).status, "False");
        assert_eq!(condition(&st, SESSION_VALID).reason, "NoSession");
        for c in &st.conditions {
            assert_eq!(c.observed_generation, Some(3));
            assert!(c.reason.chars().next().unwrap().is_ascii_uppercase());
        }
    }

    #[test]
    fn progressing_while_rolling_out() {
        let sys = system();
        let st = compute(
            &sys,
            &deployment(1, 1, 2),
            Some(&service(Some(31234))),
            &[],
            None,
            T0,
        );
        assert_eq!(st.phase, Some(Phase::Progressing));
        assert_eq!(condition(&st, PROGRESSING).status, "True");
        assert_eq!(condition(&st, READY).status, "False");
        assert_eq!(st.ready.as_deref(), Some("1/2"));
    }

    #[test]
    fn degraded_on_crash_loop() {
        let sys = system();
        let pods = [
            pod("web-a", true, None),
            pod("web-b", false, Some("CrashLoopBackOff")),
        ];
        let st = compute(
            &sys,
            &deployment(1, 2, 2),
            Some(&service(None)),
            &pods,
            None,
            T0,
        );
        assert_eq!(st.phase, Some(Phase::Degraded));
        let d = condition(&st, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "CrashLoopBackOff")
        );
        assert!(d.message.contains("web-b"));
        assert_eq!(st.node_ports, None);
    }

    #[test]
    fn last_transition_time_is_kept_unless_status_flips() {
        let sys = system();
        let first = compute(
            &sys,
            &deployment(1, 2, 2),
            Some(&service(Some(31234))),
            &[],
            None,
            T0,
        );
        // Same state much later: identical status, nothing to write.
        let again = compute(
            &sys,
            &deployment(1, 2, 2),
            Some(&service(Some(31234))),
            &[],
            Some(&first),
            T0 + 60_000,
        );
        assert_eq!(again, first);
        assert!(same_status(Some(&first), &again));
        // Ready flips: only Ready and Progressing get the new time.
        let later = compute(
            &sys,
            &deployment(2, 2, 2),
            Some(&service(Some(31234))),
            &[],
            Some(&first),
            T0 + 120_000,
        );
        assert!(!same_status(Some(&first), &later));
        let t_new = Time(from_millis(T0 + 120_000));
        assert_eq!(condition(&later, READY).last_transition_time, t_new);
        assert_eq!(condition(&later, PROGRESSING).last_transition_time, t_new);
        assert_eq!(
            condition(&later, DEGRADED).last_transition_time,
            condition(&first, DEGRADED).last_transition_time
        );
        // A changed message with the same status keeps the time too.
        let msg = compute(
            &sys,
            &deployment(0, 2, 2),
            Some(&service(Some(31234))),
            &[],
            Some(&first),
            T0 + 180_000,
        );
        assert_eq!(
            condition(&msg, READY).last_transition_time,
            condition(&first, READY).last_transition_time
        );
        assert_ne!(
            condition(&msg, READY).message,
            condition(&first, READY).message
        );
    }

    #[test]
    fn comparison_and_result_are_order_independent() {
        let sys = system();
        let pods_a = [
            pod("web-a", false, Some("ImagePullBackOff")),
            pod("web-b", false, Some("CrashLoopBackOff")),
        ];
        let pods_b = [pods_a[1].clone(), pods_a[0].clone()];
        let a = compute(&sys, &deployment(0, 2, 2), None, &pods_a, None, T0);
        let b = compute(&sys, &deployment(0, 2, 2), None, &pods_b, None, T0);
        assert_eq!(a, b, "pod order does not matter");
        let mut shuffled = a.clone();
        shuffled.conditions.reverse();
        assert!(
            same_status(Some(&shuffled), &a),
            "stored condition order does not matter"
        );
        assert!(!same_status(None, &a));
    }

    #[test]
    fn invalid_spec_fails_with_reason() {
        let sys = system();
        let input = StatusInput {
            system: &sys,
            outcome: Outcome::Invalid {
                reason: "InvalidSpec",
                message: "spec.containers[0].image: must not be empty",
            },
            session: &SessionStatus::None,
            expires_at: None,
            node_address: None,
            now: from_millis(T0),
        };
        let st = compute_status(&input, None);
        assert_eq!(st.phase, Some(Phase::Failed));
        let d = condition(&st, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "InvalidSpec")
        );
        assert!(d.message.contains("spec.containers[0].image"));
        assert!(st.endpoints.is_empty());
    }

    #[test]
    fn missing_and_ended_sessions() {
        let mut sys = system();
        sys.spec.session = Some("s1".into());
        let mk = |session: &SessionStatus| {
            compute_status(
                &StatusInput {
                    system: &sys,
                    outcome: Outcome::NotStarted,
                    session,
                    expires_at: Some(from_millis(T0 + 1_234)),
                    node_address: None,
                    now: from_millis(T0),
                },
                None,
            )
        };
        let missing = mk(&SessionStatus::Missing);
        assert_eq!(missing.phase, Some(Phase::Pending));
        let sv = condition(&missing, SESSION_VALID);
        assert_eq!(
            (sv.status.as_str(), sv.reason.as_str()),
            ("False", "SessionNotFound")
        );
        assert!(sv.message.contains("spec.session"));
        let ended = mk(&SessionStatus::Ended {
            reason: "SessionExpired",
        });
        assert_eq!(ended.phase, Some(Phase::Expiring));
        assert_eq!(condition(&ended, SESSION_VALID).reason, "SessionExpired");
        assert_eq!(ended.expires_at.as_deref(), Some("2023-11-14T22:13:21Z"));
    }

    #[test]
    fn bare_pod_and_paused() {
        let mut sys = system();
        sys.spec.workload = Workload::Pod;
        sys.spec.replicas = 1;
        let p = pod("web", true, None);
        let input = StatusInput {
            system: &sys,
            outcome: Outcome::Applied {
                workload: AppliedWorkload::Pod(Some(&p)),
                service: None,
                pods: std::slice::from_ref(&p),
            },
            session: &SessionStatus::Active,
            expires_at: None,
            node_address: None,
            now: from_millis(T0),
        };
        let st = compute_status(&input, None);
        assert_eq!(st.phase, Some(Phase::Ready));
        assert_eq!(st.ready.as_deref(), Some("1/1"));

        let mut paused = system();
        paused.spec.paused = true;
        let st = compute(&paused, &deployment(0, 0, 0), None, &[], None, T0);
        assert_eq!(st.phase, Some(Phase::Pending));
        assert_eq!(st.ready.as_deref(), Some("0/0"));
        assert_eq!(condition(&st, READY).reason, "Paused");
    }

    #[test]
    fn node_address_prefers_external_of_first_node() {
        use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
        let node = |name: &str, addrs: &[(&str, &str)]| Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: (*t).into(),
                            address: (*a).into(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let nodes = [
            node(
                "b",
                &[("InternalIP", "10.0.0.2"), ("ExternalIP", "1.2.3.4")],
            ),
            node("a", &[("Hostname", "a"), ("InternalIP", "10.0.0.1")]),
        ];
        assert_eq!(pick_node_address(&nodes).as_deref(), Some("10.0.0.1"));
        assert_eq!(pick_node_address(&nodes[..1]).as_deref(), Some("1.2.3.4"));
        assert_eq!(pick_node_address(&[]), None);
    }

    #[test]
    fn patch_nulls_unset_fields() {
        let st = SystemStatus {
            phase: Some(Phase::Ready),
            ..Default::default()
        };
        let patch = status_patch(&st).unwrap();
        assert_eq!(patch["status"]["nodePorts"], serde_json::Value::Null);
        assert!(
            patch["status"]
                .as_object()
                .unwrap()
                .contains_key("nodePorts")
        );
        assert_eq!(patch["status"]["phase"], "Ready");
    }
}
