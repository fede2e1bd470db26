//! Event recording for the simulated components: core/v1 Events, written asynchronously through
//! a bounded queue (like client-go's event broadcaster, which drops events when its queue is
//! full rather than slowing the controller down).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Events waiting to be written; further ones are dropped.
const QUEUE: usize = 1000;

/// `Normal` event type.
pub const NORMAL: &str = "Normal";
/// `Warning` event type.
pub const WARNING: &str = "Warning";

/// Handle to the event writer task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
}

/// A reference to `obj` for an Event's `involvedObject`.
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

/// Builds the Event the way client-go's recorder does: named `<object>.<unix nanos in hex>`,
/// in the object's namespace (`default` for cluster-scoped objects), count 1.
pub fn build(
    involved: ObjectReference,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    let nanos = now.as_nanosecond();
    let name = format!(
        "{}.{:x}",
        involved.name.as_deref().unwrap_or("unknown"),
        nanos
    );
    let namespace = involved
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: None,
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(component.to_string()),
        ..Default::default()
    }
}

impl Recorder {
    /// Starts the writer task.
    pub fn spawn(
        set: &mut JoinSet<()>,
        client: kube::Client,
        mut shutdown: watch::Receiver<bool>,
    ) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        set.spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = shutdown.wait_for(|s| *s) => None,
                };
                let Some(ev) = ev else { return };
                let ns = ev.namespace().unwrap_or_else(|| "default".into());
                let api: Api<Event> = Api::namespaced(client.clone(), &ns);
                if let Err(e) = api.create(&PostParams::default(), &ev).await {
                    tracing::debug!(reason = ?ev.reason, error = %e, "could not write event");
                }
            }
        });
        Recorder { tx }
    }

    /// Queues an event about `involved` (dropped if the queue is full).
    pub fn record(
        &self,
        involved: ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ev = build(involved, type_, reason, message, component);
        if self.tx.try_send(ev).is_err() {
            tracing::debug!(reason, "event queue full, event dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn events_are_named_after_the_object_in_its_namespace() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": "u"}
        }))
        .unwrap();
        let ev = build(
            object_ref(&pod),
            WARNING,
            "FailedScheduling",
            "0/3 nodes are available",
            "default-scheduler",
        );
        assert!(ev.metadata.name.unwrap().starts_with("web-1."));
        assert_eq!(ev.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(ev.involved_object.api_version.as_deref(), Some("v1"));
        assert_eq!(ev.involved_object.uid.as_deref(), Some("u"));
        assert_eq!(ev.count, Some(1));
    }
}
