//! `tycho render -f FILE`: render Systems offline into multi-document YAML (like `helm template`).
//!
//! Every document of every file must be a `tycho.dev/v1alpha1` System. Each is validated (the
//! checks of [`tycho_model::validate`] plus unknown fields, which the API server's strict field
//! validation would reject too) and rendered; the objects are printed in input order, each
//! System's as ConfigMap, workload, Service. Invalid input exits with code 2 and a message naming
//! the file, the document and the field.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CliError;
use tycho_model::{GROUP, System, VERSION};
use tycho_operator::render::{RenderError, RenderSettings, Renderer};

/// Arguments of `tycho render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// File with one or more System documents (`-` for standard input, a directory for its
    /// `*.yaml` files); repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Extended resource name that `gpus` maps to.
    #[arg(long, default_value = "nvidia.com/gpu", env = "TYCHO_GPU_RESOURCE")]
    pub gpu_resource: String,
    /// Directory whose `*.yaml.tera` files override the embedded templates.
    #[arg(long = "templates", value_name = "DIR", env = "TYCHO_TEMPLATES")]
    pub templates: Option<PathBuf>,
}

/// Render the files' Systems to standard output.
pub fn run(args: RenderArgs) -> Result<ExitCode, CliError> {
    let out = render_files(&args)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(CliError::io("<stdout>"))?;
    Ok(ExitCode::SUCCESS)
}

/// Render every System of the given files into one multi-document YAML string.
pub fn render_files(args: &RenderArgs) -> Result<String, CliError> {
    let settings = RenderSettings {
        gpu_resource: args.gpu_resource.clone(),
        template_dir: args.templates.clone(),
    };
    let renderer = Renderer::new(settings)?;
    let mut seen = BTreeSet::new();
    let mut out = String::new();
    let mut stdin_used = false;
    for path in expand_dirs(&args.files)? {
        let (label, text) = read_source(&path, &mut stdin_used)?;
        for system in parse_systems(&label, &text)? {
            let key = (system.namespace_or_default(), system.name_or_empty());
            if !seen.insert(key.clone()) {
                return Err(CliError::Usage(format!(
                    "{label}: System {}/{} is given more than once",
                    key.0, key.1
                )));
            }
            let rendered = renderer.render(&system).map_err(|e| match e {
                RenderError::Invalid(errors) => CliError::Usage(
                    errors
                        .iter()
                        .map(|fe| format!("{label}: System {}: {fe}", key.1))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                source => CliError::RenderSystem {
                    label: label.clone(),
                    name: key.1.clone(),
                    source,
                },
            })?;
            out.push_str(&rendered.to_yaml()?);
        }
    }
    Ok(out)
}

/// The label (for messages) and text of one input file; `-` is standard input, once.
fn read_source(path: &Path, stdin_used: &mut bool) -> Result<(String, String), CliError> {
    if path.as_os_str() != "-" {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(CliError::io(label.clone()))?;
        return Ok((label, text));
    }
    if *stdin_used {
        return Err(CliError::Usage(
            "standard input (-) can be given only once".into(),
        ));
    }
    *stdin_used = true;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(CliError::io("<stdin>"))?;
    Ok(("<stdin>".to_string(), text))
}

/// Replace each directory by its `*.yaml` / `*.yml` files, sorted by name (like `kubectl -f DIR`).
fn expand_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let io = || CliError::io(path.display().to_string());
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io())? {
            let p = entry.map_err(io())?.path();
            if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: no *.yaml files in this directory",
                path.display()
            )));
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// Parse a multi-document YAML text whose documents must all be Systems.
pub fn parse_systems(label: &str, text: &str) -> Result<Vec<System>, CliError> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| CliError::input(format!("{label}: invalid YAML{}", at_line(&e)))(e))?;
    if docs.is_empty() {
        return Err(CliError::Usage(format!("{label}: no documents")));
    }
    let want_api = format!("{GROUP}/{VERSION}");
    for (i, doc) in docs.iter().enumerate() {
        let api = doc.get("apiVersion").and_then(|v| v.as_str());
        let kind = doc.get("kind").and_then(|v| v.as_str());
        if api != Some(want_api.as_str()) || kind != Some("System") {
            return Err(CliError::Usage(format!(
                "{label}: document {} ({} {}) is not a {want_api} System",
                i + 1,
                api.unwrap_or("<no apiVersion>"),
                kind.unwrap_or("<no kind>"),
            )));
        }
    }
    let systems: Vec<System> = serde_saphyr::from_multiple(text)
        .map_err(|e| CliError::input(format!("{label}{}", at_line(&e)))(e))?;
    for (i, (doc, system)) in docs.iter().zip(&systems).enumerate() {
        let typed = serde_json::to_value(system).map_err(CliError::serialize("the System"))?;
        let mut unknown = Vec::new();
        unknown_fields(doc, &typed, "", &mut unknown);
        if !unknown.is_empty() {
            return Err(CliError::Usage(
                unknown
                    .iter()
                    .map(|f| format!("{label}: document {}: {f}: unknown field", i + 1))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
    }
    Ok(systems)
}

fn at_line(e: &serde_saphyr::Error) -> String {
    e.location()
        .map(|l| format!(" (line {})", l.line()))
        .unwrap_or_default()
}

/// Fields of `input` that the typed System dropped (typos, fields of another version), as paths.
/// Keys whose value is empty (null, `[]`, `{}`, `""`) are not reported: the typed form omits them.
fn unknown_fields(
    input: &serde_json::Value,
    typed: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    None if is_empty(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::String(s) => s.is_empty(),
        _ => false,
    }
}
