//! Rendering throughput: Systems rendered per second on one core, for each example.
//!
//! `cargo bench --bench render` (release build). One thread, so the figure is per core. Two
//! figures per example: `render` (validate + templates + parse into typed objects + invariants)
//! and `render+yaml` (plus `Rendered::to_yaml`, what `tycho render` prints).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use tycho_operator::render::{RenderSettings, Renderer};

fn per_second(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up, then run in batches until the budget is spent.
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("TYCHO_BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500),
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let renderer = Renderer::new(RenderSettings::default()).expect("embedded templates compile");
    println!(
        "{:<22} {:>16} {:>20}",
        "example", "render/s/core", "render+yaml/s/core"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable example");
        let label = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        let systems = tycho::cli::render::parse_systems(&label, &text).expect("valid example");
        let system = &systems[0];
        let render = per_second(budget, || {
            black_box(renderer.render(black_box(system)).expect("renders"));
        });
        let with_yaml = per_second(budget, || {
            let r = renderer.render(black_box(system)).expect("renders");
            black_box(r.to_yaml().expect("serializes"));
        });
        println!("{label:<22} {render:>16.0} {with_yaml:>20.0}");
    }
    let start = Instant::now();
    let _ = black_box(Renderer::new(RenderSettings::default()));
    println!("Renderer::new (compile templates): {:?}", start.elapsed());
}
