//! Skipped tests are visible: [`skip`] prints `SKIPPED <test>: <reason>` on the process's stderr, past the
//! test harness's output capture (so it shows for a passing test under a plain `cargo test`), and appends
//! the same line to the file named by `TYCHO_TEST_SKIP_LOG` when that is set, so that a test run can count
//! its skips (`.ci/run` prints the count).
//!
//! Shared by `common` (`mod skip;`), `common/process.rs` (`#[path = "skip.rs"] mod skip;`) and the
//! emulator's tests (`emulator/tests/api_common`, by path).
#![allow(dead_code)]

use std::io::Write;

/// Environment variable naming a file every skip line is appended to.
pub const SKIP_LOG_ENV: &str = "TYCHO_TEST_SKIP_LOG";

/// Report that `test` skips (all or part of) what it checks, and why: the line
/// `SKIPPED <test>: <reason>` on stderr (not captured by the harness) and in `$TYCHO_TEST_SKIP_LOG`.
/// The caller then returns (or leaves out the skipped part).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}\n");
    // `eprintln!` goes through the harness's capture and is shown only for failing tests; a write to the
    // stderr handle goes straight to file descriptor 2.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) {
        // One write of a whole line to a file opened for appending: lines of parallel tests and test
        // binaries do not interleave.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        match file {
            Ok(mut f) => {
                if let Err(e) = f.write_all(line.as_bytes()) {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "cannot append to {SKIP_LOG_ENV}={}: {e}",
                        path.to_string_lossy()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "cannot open {SKIP_LOG_ENV}={}: {e}",
                    path.to_string_lossy()
                );
            }
        }
    }
}

/// Name of the running test: the test harness names each test's thread after it. Falls back to
/// `"<unnamed test>"` when called from elsewhere (a spawned task's worker thread, `main`).
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" && !name.starts_with("tokio-runtime") => name.to_string(),
        _ => "<unnamed test>".to_string(),
    }
}
