//! The controller's Event publisher against an API server: a first Event is created whole, a repeat
//! within the series window patches it with only a series (count, last observed time), and the Event
//! keeps everything it was created with. Against the emulator, or a real cluster with
//! `TYCHO_TEST_KUBECONFIG` (whose API server validates the Event update itself).

mod common;

use common::TestCluster;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use tycho_operator::controller::events::Publisher;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_patches_only_the_series_of_the_first_event() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace.clone();
    // Something to be about: a ConfigMap of the test's own.
    let cms: Api<ConfigMap> = cluster.api();
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "subject"}, "data": {"a": "1"}
    }))
    .unwrap();
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: cm.metadata.name.clone(),
        namespace: Some(ns.clone()),
        uid: cm.metadata.uid.clone(),
        ..Default::default()
    };
    let publisher = Publisher::new(
        cluster.client.clone(),
        Reporter {
            controller: "tycho-test".into(),
            instance: Some("test-1".into()),
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".into(),
        note: Some("spec.containers[0].image: must not be empty".into()),
        action: "Validate".into(),
        secondary: None,
    };
    for _ in 0..3 {
        publisher.publish(&ev, &regarding).await.unwrap();
    }
    let events: Api<K8sEvent> = Api::namespaced(cluster.client.clone(), &ns);
    let list = events.list(&ListParams::default()).await.unwrap();
    let ours: Vec<&K8sEvent> = list
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("tycho-test"))
        .collect();
    assert_eq!(ours.len(), 1, "one Event for three publishes: {ours:#?}");
    let e = ours[0];
    let series = e.series.as_ref().expect("a series after repeats");
    assert_eq!(series.count, 3);
    // What the first publish wrote is still there.
    assert_eq!(e.reason.as_deref(), Some("InvalidSpec"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.action.as_deref(), Some("Validate"));
    assert_eq!(
        e.note.as_deref(),
        Some("spec.containers[0].image: must not be empty")
    );
    assert_eq!(e.reporting_instance.as_deref(), Some("test-1"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.uid.as_deref()),
        cm.metadata.uid.as_deref()
    );
    assert!(e.event_time.is_some());
    assert!(series.last_observed_time.0 >= e.event_time.as_ref().unwrap().0);
}
