//! The OpenAPI document, checked by a property-based API fuzzer (schemathesis, from
//! tests/api/requirements.txt) against the running API on the emulator: no 5xx, every status, content
//! type and body within what the document says, over every operation (examples, coverage, fuzzing and
//! stateful phases).

mod common;

use std::process::Command;
use std::time::Duration;

use common::api::{ApiUnderTest, editor_rules, user};
use common::{TestCluster, skip};
use tycho_api::Limits;

fn schemathesis() -> Option<String> {
    if let Ok(p) = std::env::var("TYCHO_SCHEMATHESIS") {
        return Some(p);
    }
    Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "schemathesis".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_openapi_document_under_fuzzing() {
    let Some(st) = schemathesis() else {
        skip(
            "the_api_keeps_to_its_openapi_document_under_fuzzing",
            "schemathesis is not installed (pip install -r tests/api/requirements.txt; .ci/run does)",
        );
        return;
    };
    let cluster = TestCluster::start_with(common::emulator_config()).await;
    if cluster.skip_unless_emulator(
        "the_api_keeps_to_its_openapi_document_under_fuzzing",
        "the fuzzer creates and deletes many objects; it runs on the emulator",
    ) {
        cluster.cleanup().await;
        return;
    }
    let controller = cluster.run_controller(|_| {}).await;
    let api = ApiUnderTest::start(
        cluster.config.clone(),
        Limits {
            body_limit: 256 * 1024,
            request_timeout: Duration::from_secs(30),
        },
    )
    .await;
    let (_, token) = user(&cluster, &cluster.namespace, "fuzzer", editor_rules()).await;
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    let url = api.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &format!("{url}/openapi.json")])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "8", "--seed", "1", "--no-color"])
            .args(["--report", "ndjson", "--report-dir"])
            .arg(&report)
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = stdout
        .lines()
        .find(|l| {
            l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(" generated")
        })
        .expect("a count of generated test cases");
    println!("schemathesis: {}", generated.trim());
    api.stop().await;
    controller.stop().await;
    cluster.cleanup().await;
}
