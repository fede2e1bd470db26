//! Differential test: one scripted corpus of API requests (`differential/corpus.yaml`) is sent to
//! the emulator and to a real kube-apiserver (the kubeconfig in `TYCHO_TEST_KUBECONFIG`); the
//! responses are normalised (uids, timestamps, resourceVersions, generateName suffixes, the
//! namespace name, allocated IPs) and compared: status code, reason, causes' field paths, and the
//! resulting object. The table of differences is printed. The test fails when a difference appears
//! that `differential/known.yaml` does not list, and when a listed one no longer occurs (so that the
//! list shrinks as the emulator improves).
//!
//! ```sh
//! eval "$(hack/cluster.sh up)"
//! TYCHO_TEST_KUBECONFIG=$KUBECONFIG cargo test -p tycho-emulator --test differential -- --nocapture
//! ```
//!
//! `TYCHO_DIFF_AGAINST_EMULATOR=1` (instead of a kubeconfig) runs the corpus against a second
//! emulator: a harness self-check, where every difference is a nondeterminism of the harness.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tycho_emulator::{Emulator, EmulatorConfig};

mod api_common;

const CORPUS: &str = include_str!("differential/corpus.yaml");
const KNOWN: &str = include_str!("differential/known.yaml");
const CRD: &str = include_str!("../../crds/tycho.dev_systems.yaml");

/// One request of the corpus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// Unique name; the key of known differences.
    name: String,
    /// `METHOD /path?query`, with `{ns}` and `{var}` substituted.
    request: String,
    /// The request body (JSON; YAML in the corpus). A string is sent as is.
    #[serde(default)]
    body: Option<Value>,
    /// Content-Type (default application/json).
    #[serde(default, rename = "contentType")]
    content_type: Option<String>,
    /// Accept header (default application/json).
    #[serde(default)]
    accept: Option<String>,
    /// Values to remember from the response body: var name -> dotted path.
    #[serde(default)]
    save: BTreeMap<String, String>,
    /// Repeat the request (every 200 ms, up to `timeout` seconds) until this holds.
    #[serde(default)]
    until: Option<Until>,
    /// Seconds for `until` (default 30) or for a watch (default 5).
    #[serde(default)]
    timeout: Option<u64>,
    /// A watch: read events until `events` are received (BOOKMARKs other than the
    /// initial-events-end one are not counted nor compared) or the timeout passes.
    #[serde(default)]
    events: Option<usize>,
    /// Not compared (setup and cleanup).
    #[serde(default)]
    setup: bool,
    /// Response fields not compared for this step (dotted paths, prefix match), with a reason
    /// in the corpus comment: nondeterministic on a real cluster.
    #[serde(default)]
    ignore: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Until {
    #[serde(default)]
    status: Option<u16>,
    /// A dotted path that must be absent (or null) in the body.
    #[serde(default)]
    absent: Option<String>,
    /// A dotted path that must be present in the body.
    #[serde(default)]
    present: Option<String>,
}

/// An accepted difference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Known {
    step: String,
    /// The field, or a prefix of the fields (`a.b` covers `a.b.c` and `a.b[0]`); `*` covers every
    /// field of the step.
    field: String,
    reason: String,
}

/// One side of the comparison.
struct Side {
    label: &'static str,
    client: kube::Client,
    vars: BTreeMap<String, String>,
    /// Generated names -> their normalised form (`prefix<suffix>`).
    renames: BTreeMap<String, String>,
}

/// A normalised response.
struct Outcome {
    doc: Value,
}

#[derive(Debug, Clone)]
struct Diff {
    step: String,
    request: String,
    field: String,
    emu: String,
    real: String,
}

async fn client_from(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig readable");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig usable");
    kube::Client::try_from(cfg).expect("kube client")
}

fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) if cur.is_array() => cur.get(i)?,
            _ => cur.get(part)?,
        };
    }
    if cur.is_null() { None } else { Some(cur) }
}

impl Side {
    /// Sends one request; returns (status, body as JSON or string).
    async fn send(&self, step: &Step) -> (u16, Value) {
        let (method, uri) = step
            .request
            .split_once(' ')
            .unwrap_or_else(|| panic!("step {}: request is `METHOD /path`", step.name));
        let uri = substitute(uri, &self.vars);
        let body = match &step.body {
            None => Vec::new(),
            Some(Value::String(s)) => substitute(s, &self.vars).into_bytes(),
            Some(v) => substitute(&v.to_string(), &self.vars).into_bytes(),
        };
        let req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header(
                http::header::CONTENT_TYPE,
                step.content_type.as_deref().unwrap_or("application/json"),
            )
            .header(
                http::header::ACCEPT,
                step.accept.as_deref().unwrap_or("application/json"),
            )
            .body(kube::client::Body::from(body))
            .expect("request builds");
        let resp = self
            .client
            .send(req)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.label, step.request));
        let code = resp.status().as_u16();
        let mut body = resp.into_body();
        if step.events.is_some() && code == 200 {
            return (code, self.read_watch(step, &mut body).await);
        }
        let bytes = body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{} {}: body: {e}", self.label, step.request))
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v)
    }

    async fn read_watch(&self, step: &Step, body: &mut kube::client::Body) -> Value {
        let want = step.events.unwrap_or(usize::MAX);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(step.timeout.unwrap_or(5));
        let mut buf = Vec::<u8>::new();
        let mut events = Vec::new();
        'outer: while events.len() < want {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(Err(e))) => panic!("{} {}: watch: {e}", self.label, step.request),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let periodic_bookmark = ev["type"] == "BOOKMARK"
                    && ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"]
                        != "true";
                if !periodic_bookmark {
                    events.push(ev);
                    if events.len() >= want {
                        break 'outer;
                    }
                }
            }
        }
        json!({ "events": events })
    }

    /// Runs a step (repeating it for `until`), saves variables, returns the normalised outcome.
    async fn run(&mut self, step: &Step) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(step.timeout.unwrap_or(30));
        let (code, body) = loop {
            let (code, body) = self.send(step).await;
            let Some(u) = &step.until else {
                break (code, body);
            };
            let ok = u.status.is_none_or(|s| s == code)
                && u.absent
                    .as_deref()
                    .is_none_or(|p| get_path(&body, p).is_none())
                && u.present
                    .as_deref()
                    .is_none_or(|p| get_path(&body, p).is_some());
            if ok || Instant::now() >= deadline {
                break (code, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for (var, path) in &step.save {
            let v = get_path(&body, path).unwrap_or_else(|| {
                panic!(
                    "{}: step {}: no {path} to save in {body}",
                    self.label, step.name
                )
            });
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.vars.insert(var.clone(), s);
        }
        if let Ok(dir) = std::env::var("TYCHO_DIFF_DUMP") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(
                format!("{dir}/{}.{}.json", step.name, self.label),
                format!(
                    "{code}\n{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                ),
            );
        }
        self.learn_names(&body);
        let mut doc = json!({ "code": code, "body": body });
        self.normalise(&mut doc);
        if let Some(b) = doc.get_mut("body") {
            reduce_status(b);
            if let Some(evs) = b.get_mut("events").and_then(Value::as_array_mut) {
                for e in evs {
                    if let Some(o) = e.get_mut("object") {
                        reduce_status(o);
                    }
                }
            }
        }
        for p in &step.ignore {
            remove_path(&mut doc, p);
        }
        Outcome { doc }
    }

    /// Remembers names generated from `generateName` (in objects, lists and watch events).
    fn learn_names(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(g)), Some(Value::String(n))) =
                    (m.get("generateName"), m.get("name"))
                    && n.starts_with(g.as_str())
                    && n.len() > g.len()
                {
                    self.renames.insert(n.clone(), format!("{g}<suffix>"));
                }
                for x in m.values() {
                    self.learn_names(x);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.learn_names(x)),
            _ => {}
        }
    }

    fn normalise(&self, v: &mut Value) {
        let ns = self.vars.get("ns").cloned().unwrap_or_default();
        normalise(v, None, &ns, &self.renames);
    }
}

fn is_time(s: &str) -> bool {
    s.len() >= 20 && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// Replaces every uuid inside `s` with `<uid>`.
fn normalise_uids_in(s: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if let Some(c) = s.get(i..i + 36)
            && is_uuid(c)
        {
            out.push_str("<uid>");
            i += 36;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn normalise(v: &mut Value, key: Option<&str>, ns: &str, renames: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            let new = match key {
                Some("resourceVersion") if !s.is_empty() => "<rv>".to_string(),
                Some("continue") if !s.is_empty() => "<continue>".to_string(),
                Some("clusterIP") | Some("clusterIPs") if s.contains('.') => "<ip>".to_string(),
                _ if is_time(s) => "<time>".to_string(),
                _ if is_uuid(s) => "<uid>".to_string(),
                _ => {
                    let mut out = s.clone();
                    for (from, to) in renames {
                        out = out.replace(from.as_str(), to);
                    }
                    if !ns.is_empty() {
                        out = out.replace(ns, "{ns}");
                    }
                    if let Some(i) = out.find("kube-api-access-") {
                        out.truncate(i + "kube-api-access-".len());
                        out.push_str("<suffix>");
                    }
                    out
                }
            };
            *s = new;
        }
        Value::Number(_) if key == Some("nodePort") => *v = json!("<port>"),
        Value::Array(a) => a.iter_mut().for_each(|x| normalise(x, key, ns, renames)),
        Value::Object(m) => {
            // Tables: the Age column is the time since creation.
            if m.get("kind").and_then(Value::as_str) == Some("Table") {
                let age = m
                    .get("columnDefinitions")
                    .and_then(Value::as_array)
                    .and_then(|cols| cols.iter().position(|c| c["name"] == "Age"));
                if let (Some(i), Some(rows)) =
                    (age, m.get_mut("rows").and_then(Value::as_array_mut))
                {
                    for r in rows {
                        if let Some(c) = r.get_mut("cells").and_then(|c| c.get_mut(i)) {
                            *c = json!("<age>");
                        }
                    }
                }
            }
            // Keys may hold uids too (managedFields: `k:{"uid":"..."}`).
            let entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            for (k, mut x) in entries {
                normalise(&mut x, Some(&k), ns, renames);
                m.insert(normalise_uids_in(&k), x);
            }
        }
        _ => {}
    }
}

/// A Status is compared by code, status, reason, details (name, group, kind) and the field paths
/// of its causes; not by its message.
fn reduce_status(b: &mut Value) {
    if b.get("kind").and_then(Value::as_str) != Some("Status") {
        return;
    }
    let mut out = serde_json::Map::new();
    for k in ["kind", "status", "code", "reason"] {
        if let Some(x) = b.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    if let Some(d) = b.get("details") {
        let mut det = serde_json::Map::new();
        for k in ["name", "group", "kind"] {
            if let Some(x) = d.get(k) {
                det.insert(k.into(), x.clone());
            }
        }
        if let Some(c) = d.get("causes").and_then(Value::as_array) {
            let fields: BTreeSet<String> = c
                .iter()
                .map(|c| c["field"].as_str().unwrap_or("<none>").to_string())
                .collect();
            det.insert("causes".into(), json!(fields));
        }
        if !det.is_empty() {
            out.insert("details".into(), Value::Object(det));
        }
    }
    *b = Value::Object(out);
}

fn remove_path(v: &mut Value, path: &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = v;
    for p in parts {
        if p == "*" {
            // Not needed by the corpus; keep paths literal.
            return;
        }
        let next = match p.parse::<usize>() {
            Ok(i) if cur.is_array() => cur.get_mut(i),
            _ => cur.get_mut(p),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn short(v: Option<&Value>) -> String {
    let s = match v {
        None => "<absent>".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    };
    if s.chars().count() > 60 {
        let t: String = s.chars().take(57).collect();
        format!("{t}...")
    } else {
        s
    }
}

/// Leaf-wise differences between the emulator's and the real server's document.
fn diff(
    path: &str,
    emu: Option<&Value>,
    real: Option<&Value>,
    out: &mut Vec<(String, String, String)>,
) {
    match (emu, real) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(&p, a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b)))
            if a.iter()
                .chain(b.iter())
                .any(|x| x.is_object() || x.is_array()) =>
        {
            for i in 0..a.len().max(b.len()) {
                diff(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((path.to_string(), short(a), short(b))),
    }
}

fn covers(known: &Known, d: &Diff) -> bool {
    known.step == d.step
        && (known.field == "*"
            || d.field == known.field
            || d.field.starts_with(&format!("{}.", known.field))
            || d.field.starts_with(&format!("{}[", known.field)))
}

fn print_table(title: &str, diffs: &[Diff]) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "\n{title} ({} rows)", diffs.len());
    let w = |f: fn(&Diff) -> usize, min: usize| diffs.iter().map(f).max().unwrap_or(0).max(min);
    let ws = w(|d| d.step.len(), 4);
    let wr = w(|d| d.request.len().min(60), 7);
    let wf = w(|d| d.field.len(), 5);
    let we = w(|d| d.emu.len(), 8);
    let _ = writeln!(
        out,
        "{:ws$} | {:wr$} | {:wf$} | {:we$} | real",
        "step", "request", "field", "emulator"
    );
    let _ = writeln!(out, "{}", "-".repeat(ws + wr + wf + we + 20));
    for d in diffs {
        let req: String = d.request.chars().take(60).collect();
        let _ = writeln!(
            out,
            "{:ws$} | {:wr$} | {:wf$} | {:we$} | {}",
            d.step, req, d.field, d.emu, d.real
        );
    }
}

/// The Tycho CRD; `TYCHO_DIFF_CRD` names another file (for debugging the harness).
fn crd_json() -> Value {
    match std::env::var("TYCHO_DIFF_CRD") {
        Ok(path) if !path.is_empty() => {
            let text = std::fs::read_to_string(&path).expect("TYCHO_DIFF_CRD readable");
            serde_saphyr::from_str::<Value>(&text).expect("TYCHO_DIFF_CRD parses")
        }
        _ => serde_saphyr::from_str::<Value>(CRD).expect("CRD parses"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential() {
    let started = Instant::now();
    let self_check = std::env::var("TYCHO_DIFF_AGAINST_EMULATOR").is_ok_and(|v| v == "1");
    let kubeconfig = std::env::var("TYCHO_TEST_KUBECONFIG")
        .ok()
        .filter(|s| !s.is_empty());
    if kubeconfig.is_none() && !self_check {
        api_common::skip(
            "differential",
            "needs a real API server (TYCHO_TEST_KUBECONFIG)",
        );
        return;
    }
    let steps: Vec<Step> = serde_saphyr::from_str(CORPUS).expect("corpus parses");
    let known: Vec<Known> = serde_saphyr::from_str(KNOWN).expect("known.yaml parses");
    {
        let mut names = BTreeSet::new();
        for s in &steps {
            assert!(
                names.insert(s.name.as_str()),
                "duplicate step name {}",
                s.name
            );
        }
        for k in &known {
            assert!(
                names.contains(k.step.as_str()),
                "known.yaml names unknown step {}",
                k.step
            );
            assert!(
                !k.reason.trim().is_empty(),
                "known.yaml: {}/{} needs a reason",
                k.step,
                k.field
            );
        }
    }

    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let other = if self_check {
        Some(
            Emulator::start(EmulatorConfig::default())
                .await
                .expect("second emulator starts"),
        )
    } else {
        None
    };
    let real_path = match (&other, &kubeconfig) {
        (Some(o), _) => o.kubeconfig_path().to_path_buf(),
        (None, Some(k)) => std::path::PathBuf::from(k),
        (None, None) => unreachable!(),
    };
    let ns = format!("diff-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut vars = BTreeMap::new();
    vars.insert("ns".to_string(), ns.clone());
    let crd = crd_json();
    vars.insert("crd".to_string(), crd.to_string());
    // The same CRD in another group, for a dry-run create whose answer is compared even when the
    // real CRD is installed already.
    let mut crd_dry = crd.clone();
    crd_dry["metadata"]["name"] = json!("systems.diff.tycho.dev");
    crd_dry["spec"]["group"] = json!("diff.tycho.dev");
    vars.insert("crd_dry".to_string(), crd_dry.to_string());
    let mut a = Side {
        label: "emulator",
        client: client_from(emu.kubeconfig_path()).await,
        vars: vars.clone(),
        renames: BTreeMap::new(),
    };
    let mut b = Side {
        label: "real",
        client: client_from(&real_path).await,
        vars,
        renames: BTreeMap::new(),
    };

    let mut diffs = Vec::new();
    // Steps on Systems are compared only when the real server serves the CRD.
    let mut systems_served = true;
    let mut not_compared = BTreeSet::new();
    for step in &steps {
        if !systems_served && step.request.contains("/apis/tycho.dev/") {
            not_compared.insert(step.name.clone());
            continue;
        }
        let (ea, eb) = tokio::join!(a.run(step), b.run(step));
        if step.name == "setup-crd-served" && eb.doc["code"] != 200 {
            systems_served = false;
            api_common::skip(
                "differential",
                "the real API server does not serve crds/tycho.dev_systems.yaml (refused?); the System steps are not compared",
            );
        }
        if step.setup {
            continue;
        }
        let mut rows = Vec::new();
        diff("", Some(&ea.doc), Some(&eb.doc), &mut rows);
        for (field, emu_v, real_v) in rows {
            diffs.push(Diff {
                step: step.name.clone(),
                request: substitute(
                    &step.request,
                    &BTreeMap::from([("ns".into(), "{ns}".into())]),
                ),
                field,
                emu: emu_v,
                real: real_v,
            });
        }
    }

    // Cleanup (best effort, not compared).
    for side in [&a, &b] {
        let req = http::Request::builder()
            .method("DELETE")
            .uri(format!("/api/v1/namespaces/{ns}"))
            .body(kube::client::Body::from(Vec::new()))
            .expect("request builds");
        let _ = side.client.send(req).await;
    }

    print_table(
        "Differences between the emulator and kube-apiserver",
        &diffs,
    );
    // `TYCHO_DIFF_ROWS=file`: the rows as JSON (for maintaining known.yaml).
    if let Ok(path) = std::env::var("TYCHO_DIFF_ROWS") {
        let rows: Vec<Value> = diffs
            .iter()
            .map(|d| json!({"step": d.step, "field": d.field, "emulator": d.emu, "real": d.real}))
            .collect();
        let _ = std::fs::write(
            path,
            serde_json::to_string_pretty(&rows).unwrap_or_default(),
        );
    }
    let new: Vec<Diff> = diffs
        .iter()
        .filter(|d| !known.iter().any(|k| covers(k, d)))
        .cloned()
        .collect();
    let gone: Vec<&Known> = known
        .iter()
        .filter(|k| !not_compared.contains(&k.step) && !diffs.iter().any(|d| covers(k, d)))
        .collect();
    if !new.is_empty() {
        print_table("NEW differences (not in differential/known.yaml)", &new);
    }
    if !gone.is_empty() {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "\nListed in differential/known.yaml but no longer seen:"
        );
        for k in &gone {
            let _ = writeln!(out, "  {} {} ({})", k.step, k.field, k.reason);
        }
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "\ndifferential: {} steps, {} differences ({} known), {:.1}s",
        steps.len(),
        diffs.len(),
        diffs.len() - new.len(),
        started.elapsed().as_secs_f64()
    );
    drop(other);
    drop(emu);
    assert!(
        new.is_empty() && gone.is_empty(),
        "{} new difference(s), {} listed difference(s) no longer seen; see the tables above",
        new.len(),
        gone.len()
    );
}
