//! The catalog in examples/catalog/: every SystemTemplate is accepted by the API server (its schema and
//! CEL rules; on a real control plane with `TYCHO_TEST_KUBECONFIG`), and a System made from each, with
//! only its required parameters, renders and runs.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, yaml_files};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tycho_model::{System, SystemTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalog_template_is_accepted_and_runs() {
    let cluster = TestCluster::start().await;
    let controller = cluster.run_controller(|_| {}).await;
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    let systems: Api<System> = cluster.api();
    let files = yaml_files("examples/catalog");
    assert!(files.len() >= 4, "{files:?}");
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let t: SystemTemplate = serde_saphyr::from_str(&text).unwrap();
        let name = t.metadata.name.clone().unwrap();
        templates
            .patch(
                &name,
                &PatchParams::apply("tycho-tests").force(),
                &Patch::Apply(&t),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Only the parameters without a default.
        let required: serde_json::Map<String, Value> = t
            .spec
            .parameters
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| (p.name.clone(), json!("s3cret")))
            .collect();
        let sys: System = serde_json::from_value(json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": format!("from-{name}")},
            "spec": {"template": name, "parameters": required, "owner": "tester"}
        }))
        .unwrap();
        systems.create(&PostParams::default(), &sys).await.unwrap();
        names.push(name);
    }
    for name in &names {
        let sys = format!("from-{name}");
        let phase = eventually(Duration::from_secs(90), || async {
            let s = systems.get(&sys).await.ok()?;
            let st = s.status?;
            st.template.as_ref()?;
            matches!(st.phase?.as_str(), "Ready" | "Progressing")
                .then(|| st.phase.map(|p| p.as_str()))
        })
        .await;
        assert!(
            phase.is_some(),
            "{sys} renders and starts: {:?}",
            systems.get(&sys).await.ok().and_then(|s| s.status)
        );
    }
    controller.stop().await;
    for name in &names {
        let _ = templates.delete(name, &DeleteParams::default()).await;
    }
    cluster.cleanup().await;
}
