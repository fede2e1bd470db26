//! The repository's real CRD (`crds/`) and examples (`examples/`) through the real kubectl:
//! default validation (OpenAPI v3 + fieldValidation=Strict, structural schema and CEL rules),
//! client-side apply, server-side apply (create and idempotent re-apply), and the CRD's
//! printer columns.

mod api_common;

use api_common::{Kubectl, start};

fn read_dir(dir: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let mut v: Vec<(String, String)> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// CustomResourceDefinitions: the System CRD is accepted (structural schema, CEL rules) and
/// served at once; every example passes default validation with client-side and then
/// server-side apply; `kubectl get systems` prints the CRD's additionalPrinterColumns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tycho_crd_and_examples_apply() {
    let emu = start().await;
    let k = Kubectl::new(&emu);
    for (path, _) in read_dir("crds") {
        k.ok(&["apply", "-f", &path], None).await;
    }
    let examples = read_dir("examples");
    assert!(!examples.is_empty());
    for (path, _) in &examples {
        let out = k.ok(&["apply", "-f", path], None).await;
        assert!(out.contains("created"), "{path}: {out}");
    }
    let table = k.ok(&["get", "systems"], None).await;
    let header = table.lines().next().unwrap_or_default().to_string();
    for col in ["NAME", "PHASE", "READY", "NODE-PORTS", "SESSION", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    // Server-side apply of the same manifests over the client-side-applied objects would
    // conflict on atomic lists holding schema defaults (as on a real cluster: defaults are
    // applied after conflict detection), so the objects are recreated through SSA instead.
    for (path, _) in &examples {
        k.ok(&["delete", "-f", path], None).await;
    }
    for _ in 0..2 {
        for (path, _) in &examples {
            let out = k.ok(&["apply", "--server-side", "-f", path], None).await;
            assert!(out.contains("serverside-applied"), "{path}: {out}");
        }
    }
    let mf = k
        .ok(
            &[
                "get",
                "systems",
                "-o",
                "jsonpath={.items[*].metadata.managedFields[*].operation}",
            ],
            None,
        )
        .await;
    // One managedFields entry (at least) per applied example, each an Apply.
    let ops: Vec<&str> = mf.split_whitespace().collect();
    assert!(ops.len() >= examples.len(), "{mf}");
    assert!(ops.iter().all(|op| *op == "Apply"), "{mf}");
    for (path, _) in &examples {
        k.ok(&["delete", "-f", path], None).await;
    }
    emu.shutdown().await;
}
