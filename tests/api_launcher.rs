//! The launcher page in a real browser: `tycho dev --api` (emulator, controller and HTTP API in one
//! process), then `tests/launcher/launcher.mjs` drives Debian's headless Chromium through playwright-core:
//! sign in (a wrong token first), launch nginx from its example with a new session, see its row turn Ready
//! live, screenshots, restart, a bad name shows the problem with its field, stop and see the row go, sign
//! out. Screenshots land in `target/launcher-screenshots/`.
//!
//! Needs node, `tests/launcher/node_modules` (`tests/launcher/setup.sh`) and `/usr/bin/chromium` (or
//! `$CHROMIUM`); without one of them the test reports SKIPPED with the reason.

#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process::{ChildGuard, repo_path, skip, tycho_bin};

/// Limit for `tycho dev` to print its API's address.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Limit for the whole browser script.
const SCRIPT_LIMIT: Duration = Duration::from_secs(240);

/// Why the browser test cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Some(format!("`node --version` failed: {}", out.status)),
        Err(e) => return Some(format!("node is not installed ({e})")),
    }
    let modules = repo_path("tests/launcher/node_modules/playwright-core/package.json");
    if !modules.exists() {
        return Some(format!(
            "{} is missing: run tests/launcher/setup.sh",
            modules.display()
        ));
    }
    let chromium = chromium();
    if !chromium.exists() {
        return Some(format!(
            "{} is missing: run tests/launcher/setup.sh (as root it installs Debian's chromium)",
            chromium.display()
        ));
    }
    None
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `<target>/launcher-screenshots`: the test binary is `<target>/<profile>/deps/api_launcher-…`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .map_or_else(|| repo_path("target"), Path::to_path_buf);
    target.join("launcher-screenshots")
}

/// Wait for `tycho dev` to print `HTTP API on http://…:` and return that URL.
fn api_url(dev: &mut ChildGuard) -> String {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let log = dev.log();
        if let Some(url) = log.lines().find_map(|l| {
            let rest = l.strip_prefix("HTTP API on ")?;
            Some(rest.split_once(": ")?.0.to_string())
        }) {
            return url;
        }
        assert!(dev.running(), "tycho dev exited early:\n{log}");
        assert!(
            Instant::now() < deadline,
            "tycho dev printed no API address within {START_LIMIT:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((word(16), word(20)))
}

/// Check a screenshot: a PNG of `width` pixels across, at least `min_height` high and of more than a
/// blank page's size.
fn check_png(path: &Path, width: u32, min_height: u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (w, h) = png_size(&bytes).unwrap_or_else(|| panic!("{} is not a PNG", path.display()));
    assert_eq!(w, width, "{}: {w}x{h}", path.display());
    assert!(h >= min_height, "{}: {w}x{h}", path.display());
    // A blank page of that size compresses to a few kilobytes; the page with its text and a row does not.
    assert!(
        bytes.len() > 20_000,
        "{} has only {} bytes",
        path.display(),
        bytes.len()
    );
}

#[test]
fn launcher_page_in_headless_chromium() {
    let test = "launcher_page_in_headless_chromium";
    if let Some(why) = missing_prerequisite() {
        skip(test, &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = format!("launcher-{:016x}", rand::random::<u64>());
    let mut cmd = Command::new(tycho_bin());
    cmd.arg("dev")
        .args(["--api", "127.0.0.1:0", "--api-token", &token])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .arg("--kubeconfig")
        .arg(dir.path().join("kubeconfig"));
    // Killed when dropped, also when an assertion below fails.
    let mut dev = ChildGuard::spawn("tycho dev", cmd, &dir.path().join("dev.log"));
    let url = api_url(&mut dev);

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let out_path = dir.path().join("launcher.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let started = Instant::now();
    let mut node = Command::new("node")
        .arg(repo_path("tests/launcher/launcher.mjs"))
        .args([&url, &token])
        .arg(&shots)
        .env("CHROMIUM", chromium())
        .current_dir(repo_path("tests/launcher"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn node");
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("launcher.mjs did not finish within {SCRIPT_LIMIT:?}:\n{output}")
    });
    assert!(
        status.success(),
        "launcher.mjs failed ({status}):\n{output}"
    );
    assert!(output.contains("PASS: every step"), "{output}");
    eprintln!("{output}");

    check_png(&shots.join("launcher.png"), 1280, 600);
    check_png(&shots.join("launcher-narrow.png"), 390, 800);
    check_png(&shots.join("launcher-error.png"), 1280, 600);
    assert!(
        dev.running(),
        "tycho dev stopped during the test:\n{}",
        dev.log()
    );
    dev.kill();
}
