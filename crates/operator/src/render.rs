//! Rendering a [`System`] into the Kubernetes objects that run it, through Tera templates.
//!
//! Pure: the same System and settings give byte-identical output ([`Rendered::to_yaml`]).
//!
//! # Pipeline
//! 1. [`tycho_model::validate::validate`] — an invalid System is never rendered.
//! 2. A template context is computed in Rust (the "view": containers with their resources mapped
//!    to Kubernetes names, the sleep command, file keys and mounts, Service ports with unique names…).
//! 3. One Tera template per child kind renders YAML: `deployment.yaml.tera` or `pod.yaml.tera`
//!    (both include the shared `podspec.yaml.tera`), `service.yaml.tera`, `configmap.yaml.tera`.
//!    They are embedded in the binary; files of the same names in [`RenderSettings::template_dir`]
//!    override them (other `*.tera` files there can be included by them).
//! 4. The YAML is parsed into typed k8s-openapi objects: a broken template or override is a
//!    [`RenderError`] naming the template and line, never a malformed request.
//! 5. The invariants are then set in Rust, so an edited template cannot break them: names,
//!    namespace, standard labels, annotations, the controller owner reference, selectors,
//!    replicas and the `tycho.dev/files-hash` pod annotation.
//!
//! # Injection safety
//! Templates write every value through the `json` filter, which emits a JSON scalar, list or map
//! on one line — valid YAML flow syntax — with every control, line-breaking or non-printable
//! character escaped. Any value written *without* `json` is escaped as a JSON string too: the
//! templates run with autoescape on and an escape function that JSON-quotes. A user's value can
//! therefore never add a line, a key, an anchor, a tag or a document to the rendered YAML.
//!
//! # Idle containers (`sleep: true`)
//! The container's command becomes [`SLEEP_COMMAND`] (its args are cleared): a shell loop that
//! sleeps and exits promptly on SIGTERM. It needs `/bin/sh` in the image; an image without a
//! shell (distroless, scratch) fails to start with a clear `StartError` from the kubelet rather
//! than silently running something else — such images cannot usefully be exec'ed into anyway.
//!
//! # Deployment strategy
//! `Recreate` when some claim is mounted read-write (a ReadWriteOnce claim held by the old pod
//! would block the new one of a rolling update forever); `RollingUpdate` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSecurityContext, Service, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde::Serialize;

use tycho_model::validate::FieldError;
use tycho_model::{
    self as model, ContainerSpec, Expose, Protocol, Resources, System, SystemSpec, Workload,
};

/// Command of a container with `sleep: true`: idles until terminated, then exits 0 at once.
pub const SLEEP_COMMAND: [&str; 3] = [
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done",
];

/// Pod-template annotation holding a hash of the pre-boot files, so a file change rolls the pods.
pub const ANNOTATION_FILES_HASH: &str = "tycho.dev/files-hash";

/// Name of the pod volume that carries the pre-boot files.
pub const FILES_VOLUME: &str = "tycho-files";

/// Template rendering a Deployment.
pub const TEMPLATE_DEPLOYMENT: &str = "deployment.yaml.tera";
/// Template rendering a bare Pod.
pub const TEMPLATE_POD: &str = "pod.yaml.tera";
/// Template rendering the Service.
pub const TEMPLATE_SERVICE: &str = "service.yaml.tera";
/// Template rendering the ConfigMap of pre-boot files.
pub const TEMPLATE_CONFIGMAP: &str = "configmap.yaml.tera";
/// Template rendering the NetworkPolicy of `spec.network`.
pub const TEMPLATE_NETWORK_POLICY: &str = "networkpolicy.yaml.tera";
/// Template of the pod (metadata + spec), included by the Deployment and Pod templates.
pub const TEMPLATE_PODSPEC: &str = "podspec.yaml.tera";

/// The templates compiled into the binary, by name.
pub const EMBEDDED_TEMPLATES: [(&str, &str); 6] = [
    (
        TEMPLATE_CONFIGMAP,
        include_str!("../../../templates/configmap.yaml.tera"),
    ),
    (
        TEMPLATE_DEPLOYMENT,
        include_str!("../../../templates/deployment.yaml.tera"),
    ),
    (
        TEMPLATE_NETWORK_POLICY,
        include_str!("../../../templates/networkpolicy.yaml.tera"),
    ),
    (
        TEMPLATE_POD,
        include_str!("../../../templates/pod.yaml.tera"),
    ),
    (
        TEMPLATE_PODSPEC,
        include_str!("../../../templates/podspec.yaml.tera"),
    ),
    (
        TEMPLATE_SERVICE,
        include_str!("../../../templates/service.yaml.tera"),
    ),
];

/// Operator settings that influence rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSettings {
    /// Extended resource name that `gpus` maps to.
    pub gpu_resource: String,
    /// Directory whose `*.yaml.tera` templates override the embedded ones.
    pub template_dir: Option<PathBuf>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            gpu_resource: "nvidia.com/gpu".to_string(),
            template_dir: None,
        }
    }
}

/// The workload object of a System.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadObject {
    /// A Deployment.
    Deployment(Box<Deployment>),
    /// A bare Pod.
    Pod(Box<Pod>),
}

impl WorkloadObject {
    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            WorkloadObject::Deployment(d) => &d.metadata,
            WorkloadObject::Pod(p) => &p.metadata,
        }
    }

    /// The object's kind (`Deployment` or `Pod`).
    pub fn kind(&self) -> &'static str {
        match self {
            WorkloadObject::Deployment(_) => "Deployment",
            WorkloadObject::Pod(_) => "Pod",
        }
    }
}

/// Everything one System renders to.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The Deployment or Pod.
    pub workload: WorkloadObject,
    /// The Service, when some port is exposed and `expose` is not `None`.
    pub service: Option<Service>,
    /// The ConfigMap carrying pre-boot files, when some container has files.
    pub config_map: Option<ConfigMap>,
    /// The NetworkPolicy, when `spec.network` isolates the pods or restricts their egress.
    pub network_policy: Option<NetworkPolicy>,
}

impl Rendered {
    /// All objects as JSON, in a stable order: ConfigMap, workload, Service, NetworkPolicy.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, RenderError> {
        let mut out = Vec::with_capacity(4);
        let json = |r: Result<serde_json::Value, serde_json::Error>| {
            r.map_err(|e| RenderError::Serialize(e.to_string()))
        };
        if let Some(cm) = &self.config_map {
            out.push(json(serde_json::to_value(cm))?);
        }
        out.push(match &self.workload {
            WorkloadObject::Deployment(d) => json(serde_json::to_value(d))?,
            WorkloadObject::Pod(p) => json(serde_json::to_value(p))?,
        });
        if let Some(svc) = &self.service {
            out.push(json(serde_json::to_value(svc))?);
        }
        if let Some(np) = &self.network_policy {
            out.push(json(serde_json::to_value(np))?);
        }
        Ok(out)
    }

    /// All objects as multi-document YAML (each document starts with `---`), in the order of
    /// [`Rendered::objects`]. Byte-identical for the same System and settings.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut out = String::new();
        let ser = |r: Result<String, serde_saphyr::SerializeError>| {
            r.map_err(|e| RenderError::Serialize(e.to_string()))
        };
        let mut push = |doc: String| {
            out.push_str("---\n");
            out.push_str(&doc);
            if !doc.ends_with('\n') {
                out.push('\n');
            }
        };
        if let Some(cm) = &self.config_map {
            push(ser(serde_saphyr::to_string(cm))?);
        }
        push(match &self.workload {
            WorkloadObject::Deployment(d) => ser(serde_saphyr::to_string(d))?,
            WorkloadObject::Pod(p) => ser(serde_saphyr::to_string(p))?,
        });
        if let Some(svc) = &self.service {
            push(ser(serde_saphyr::to_string(svc))?);
        }
        if let Some(np) = &self.network_policy {
            push(ser(serde_saphyr::to_string(np))?);
        }
        Ok(out)
    }
}

/// Errors of rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The System is invalid; every problem names its field.
    #[error("invalid System: {}", join_field_errors(.0))]
    Invalid(Vec<FieldError>),
    /// A template does not compile or failed while rendering.
    #[error("template {template}{}: {message}", line_suffix(*.line))]
    Template {
        /// Name of the template.
        template: String,
        /// 1-based line in the template, when known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// A template rendered something that is not a valid object of its kind.
    #[error("template {template} rendered invalid output{}: {message}", output_line_suffix(*.line))]
    Output {
        /// Name of the template.
        template: String,
        /// 1-based line of the rendered output, when known.
        line: Option<usize>,
        /// What went wrong, with the offending output line when known.
        message: String,
    },
    /// The template override directory or one of its files cannot be read.
    #[error("template override {path}: {message}")]
    TemplateRead {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Turning rendered objects into YAML or JSON failed.
    #[error("serializing rendered objects: {0}")]
    Serialize(String),
}

impl RenderError {
    /// A stable CamelCase reason, used as the Event reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Invalid(_) => "InvalidSpec",
            RenderError::Template { .. } => "TemplateError",
            RenderError::Output { .. } => "TemplateOutputInvalid",
            RenderError::TemplateRead { .. } => "TemplateReadFailed",
            RenderError::Serialize(_) => "SerializeFailed",
        }
    }
}

fn join_field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn output_line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" at output line {l}"))
        .unwrap_or_default()
}

/// Compiled templates plus settings. Cheap to share (`&Renderer` is `Sync`).
pub struct Renderer {
    settings: RenderSettings,
    tera: tera::Tera,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("settings", &self.settings)
            .field(
                "templates",
                &self.tera.get_template_names().collect::<BTreeSet<_>>(),
            )
            .finish()
    }
}

impl Renderer {
    /// Compile the embedded templates, overridden by `settings.template_dir`.
    pub fn new(settings: RenderSettings) -> Result<Self, RenderError> {
        let mut sources: BTreeMap<String, String> = EMBEDDED_TEMPLATES
            .iter()
            .map(|(name, src)| ((*name).to_string(), (*src).to_string()))
            .collect();
        if let Some(dir) = &settings.template_dir {
            sources.extend(read_override_dir(dir)?);
        }
        let mut tera = tera::Tera::new();
        // Autoescape every template (all end in `.tera`) with a JSON-quoting escape function: output
        // not passed through `json` still cannot change the YAML structure.
        tera.autoescape_on(vec![".tera"]);
        tera.set_escape_fn(json_escape_fn);
        tera.register_filter("json", json_filter);
        tera.add_raw_templates(sources.iter().map(|(n, s)| (n.as_str(), s.as_str())))
            .map_err(|e| template_error(None, &e))?;
        Ok(Renderer { settings, tera })
    }

    /// The settings this renderer was built with.
    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    /// Render one System.
    pub fn render(&self, system: &System) -> Result<Rendered, RenderError> {
        tycho_model::validate::validate(system).map_err(RenderError::Invalid)?;
        let view = View::new(system, &self.settings);
        let context = tera::Context::from_serialize(&view)
            .map_err(|e| template_error(Some(TEMPLATE_PODSPEC), &e))?;

        let owner = owner_reference(system);
        let meta = MetaInvariants {
            namespace: view.system.namespace.clone(),
            labels: view.labels.clone(),
            annotations: view.annotations.clone(),
            owner,
        };

        let workload = match system.spec.workload {
            Workload::Deployment => {
                let mut d: Deployment = self.render_one(TEMPLATE_DEPLOYMENT, &context)?;
                meta.apply(&mut d.metadata, &view.system.name);
                let spec = d.spec.get_or_insert_with(Default::default);
                spec.replicas = Some(view.replicas);
                spec.selector = LabelSelector {
                    match_labels: Some(view.selector.clone()),
                    match_expressions: None,
                };
                let tmeta = spec.template.metadata.get_or_insert_with(Default::default);
                merge_map(&mut tmeta.labels, &view.pod_labels);
                merge_map(&mut tmeta.annotations, &view.pod_annotations);
                tmeta.name = None;
                tmeta.namespace = None;
                WorkloadObject::Deployment(Box::new(d))
            }
            Workload::Pod => {
                let mut p: Pod = self.render_one(TEMPLATE_POD, &context)?;
                meta.apply(&mut p.metadata, &view.system.name);
                merge_map(&mut p.metadata.labels, &view.pod_labels);
                merge_map(&mut p.metadata.annotations, &view.pod_annotations);
                let spec = p.spec.get_or_insert_with(Default::default);
                if spec.restart_policy.is_none() {
                    spec.restart_policy = Some("Always".to_string());
                }
                WorkloadObject::Pod(Box::new(p))
            }
        };

        let service = match &view.service {
            Some(_) => {
                let mut s: Service = self.render_one(TEMPLATE_SERVICE, &context)?;
                meta.apply(&mut s.metadata, &view.system.name);
                s.spec.get_or_insert_with(Default::default).selector = Some(view.selector.clone());
                Some(s)
            }
            None => None,
        };

        let config_map = if view.files.is_empty() {
            None
        } else {
            let mut cm: ConfigMap = self.render_one(TEMPLATE_CONFIGMAP, &context)?;
            meta.apply(&mut cm.metadata, &view.files_config_map);
            Some(cm)
        };

        let network_policy = match &view.network {
            Some(_) => {
                let mut np: NetworkPolicy = self.render_one(TEMPLATE_NETWORK_POLICY, &context)?;
                meta.apply(&mut np.metadata, &network_policy_name(&view.system.name));
                np.spec.get_or_insert_with(Default::default).pod_selector = Some(LabelSelector {
                    match_labels: Some(view.selector.clone()),
                    match_expressions: None,
                });
                Some(np)
            }
            None => None,
        };

        Ok(Rendered {
            workload,
            service,
            config_map,
            network_policy,
        })
    }

    fn render_one<T: serde::de::DeserializeOwned>(
        &self,
        template: &str,
        context: &tera::Context,
    ) -> Result<T, RenderError> {
        let text = self
            .tera
            .render(template, context)
            .map_err(|e| template_error(Some(template), &e))?;
        parse_output(template, &text)
    }
}

/// Parse a template's output into a typed object (k8s-openapi checks `apiVersion` and `kind`).
fn parse_output<T: serde::de::DeserializeOwned>(
    template: &str,
    text: &str,
) -> Result<T, RenderError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let line = e.location().map(|l| l.line() as usize).filter(|l| *l > 0);
        let mut message = e.to_string();
        if let Some(l) = line
            && let Some(src) = text.lines().nth(l - 1)
        {
            let shown: String = src.chars().take(160).collect();
            message.push_str(&format!(" (output line {l}: `{shown}`)"));
        }
        RenderError::Output {
            template: template.to_string(),
            line,
            message,
        }
    })
}

fn read_override_dir(dir: &Path) -> Result<BTreeMap<String, String>, RenderError> {
    let read_err = |path: &Path, e: std::io::Error| RenderError::TemplateRead {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !name.ends_with(".tera") || !path.is_file() {
            continue;
        }
        let src = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
        out.insert(name, src);
    }
    Ok(out)
}

/// Turn a Tera error into [`RenderError::Template`], naming the template and line when Tera knows them.
fn template_error(template: Option<&str>, e: &tera::Error) -> RenderError {
    use std::error::Error as _;
    let (name, line, mut message) = match e.kind() {
        tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => (
            Some(r.filename().to_string()).filter(|n| !n.is_empty()),
            Some(r.span().start_line).filter(|l| *l > 0),
            r.message().to_string(),
        ),
        tera::ErrorKind::CircularInclude { tpl, .. } => (Some(tpl.clone()), None, e.to_string()),
        tera::ErrorKind::MissingParent { current, .. } => {
            (Some(current.clone()), None, e.to_string())
        }
        _ => (None, None, e.to_string()),
    };
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    RenderError::Template {
        template: name
            .or_else(|| template.map(str::to_string))
            .unwrap_or_else(|| "<templates>".to_string()),
        line,
        message,
    }
}

/// The `json` filter: the value as JSON on one line (valid YAML flow syntax), marked safe.
fn json_filter(
    value: &tera::Value,
    _: tera::Kwargs,
    _: &tera::State,
) -> tera::TeraResult<tera::Value> {
    if value.is_undefined() {
        // A typo in a template must fail loudly, not render `null`.
        return Err(tera::Error::message(
            "json filter applied to an undefined value (misspelt variable or field?)",
        ));
    }
    let json = serde_json::to_value(value)
        .map_err(|e| tera::Error::message(format!("json filter: {e}")))?;
    let mut out = String::new();
    write_json(&json, &mut out);
    Ok(tera::Value::safe_string(&out))
}

/// Autoescape function: JSON-quote whatever a template writes without the `json` filter.
fn json_escape_fn(input: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut s = String::with_capacity(input.len() + 2);
    write_json_str(input, &mut s);
    out.write_all(s.as_bytes())
}

/// JSON with sorted object keys and every character YAML could treat specially escaped.
pub fn write_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => out.push_str(&n.to_string()),
        serde_json::Value::String(s) => write_json_str(s, out),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_str(key, out);
                out.push_str(": ");
                if let Some(v) = map.get(key) {
                    write_json(v, out);
                }
            }
            out.push('}');
        }
    }
}

/// A JSON string literal that is also a valid YAML double-quoted scalar holding exactly `s`:
/// quotes, backslashes, every C0/C1 control, DEL, line/paragraph separators and non-characters
/// are escaped, so the literal always stays on one line.
pub fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The controller owner reference to the System, when it has a uid (it has none offline).
pub fn owner_reference(system: &System) -> Option<OwnerReference> {
    let uid = system.metadata.uid.clone()?;
    Some(OwnerReference {
        api_version: format!("{}/{}", model::GROUP, model::VERSION),
        kind: "System".to_string(),
        name: system.name_or_empty(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The labels every child of the System carries (before `spec.labels` are added).
pub fn standard_labels(system: &System) -> BTreeMap<String, String> {
    let name = system.name_or_empty();
    let mut labels = BTreeMap::new();
    labels.insert(
        model::LABEL_MANAGED_BY.to_string(),
        model::MANAGED_BY.to_string(),
    );
    labels.insert(model::LABEL_NAME.to_string(), name.clone());
    labels.insert(model::LABEL_SYSTEM.to_string(), name);
    if let Some(session) = &system.spec.session {
        labels.insert(model::LABEL_SESSION.to_string(), session.clone());
    }
    if let Some(owner) = &system.spec.owner {
        labels.insert(model::LABEL_OWNER.to_string(), model::owner_label(owner));
    }
    labels
}

/// Name of a System's NetworkPolicy (`spec.network`): the System's name, as its workload and Service.
pub fn network_policy_name(system_name: &str) -> String {
    system_name.to_string()
}

/// Name of the ConfigMap carrying a System's pre-boot files.
pub fn files_config_map_name(system_name: &str) -> String {
    format!("{system_name}-files")
}

struct MetaInvariants {
    namespace: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
}

impl MetaInvariants {
    fn apply(&self, meta: &mut ObjectMeta, name: &str) {
        meta.name = Some(name.to_string());
        meta.generate_name = None;
        meta.namespace = Some(self.namespace.clone());
        meta.uid = None;
        meta.resource_version = None;
        meta.generation = None;
        meta.creation_timestamp = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.managed_fields = None;
        merge_map(&mut meta.labels, &self.labels);
        merge_map(&mut meta.annotations, &self.annotations);
        meta.owner_references = self.owner.clone().map(|o| vec![o]);
    }
}

/// Add `extra` to `map` (extra wins); an empty result is `None`.
fn merge_map(map: &mut Option<BTreeMap<String, String>>, extra: &BTreeMap<String, String>) {
    let mut merged = map.take().unwrap_or_default();
    merged.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    *map = if merged.is_empty() {
        None
    } else {
        Some(merged)
    };
}

// ---------------------------------------------------------------------------------------------
// The template context.

/// Everything the templates see. Field names are the context's variable names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    system: SystemView,
    /// The System's spec as written (camelCase keys), for custom templates.
    spec: &'a SystemSpec,
    settings: SettingsView<'a>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    pod_labels: BTreeMap<String, String>,
    pod_annotations: BTreeMap<String, String>,
    replicas: i32,
    strategy: &'static str,
    pod: PodView<'a>,
    service: Option<ServiceView>,
    files: Vec<FileView<'a>>,
    files_config_map: String,
    files_hash: Option<String>,
    network: Option<NetworkView>,
}

/// The NetworkPolicy's parts: policy types and rules, peers already in Kubernetes' shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkView {
    policy_types: Vec<&'static str>,
    ingress: Vec<RuleView>,
    egress: Vec<RuleView>,
}

/// One NetworkPolicy rule: peers (`from` / `to`; empty: any) and ports (empty: all).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleView {
    peers: Vec<serde_json::Value>,
    ports: Vec<NetPortView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NetPortView {
    port: i32,
    protocol: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SystemView {
    name: String,
    namespace: String,
    session: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsView<'a> {
    gpu_resource: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodView<'a> {
    restart_policy: Option<&'static str>,
    service_account_name: Option<&'a str>,
    node_selector: &'a BTreeMap<String, String>,
    tolerations: &'a [Toleration],
    security_context: Option<&'a PodSecurityContext>,
    containers: Vec<ContainerView<'a>>,
    volumes: Vec<VolumeView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerView<'a> {
    name: &'a str,
    image: &'a str,
    command: Vec<&'a str>,
    args: Vec<&'a str>,
    working_dir: Option<&'a str>,
    env: &'a [model::EnvVar],
    ports: Vec<PortView<'a>>,
    limits: BTreeMap<String, String>,
    requests: BTreeMap<String, String>,
    readiness: Option<&'a model::Readiness>,
    mounts: Vec<MountView<'a>>,
    sleep: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PortView<'a> {
    port: i32,
    protocol: &'static str,
    name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MountView<'a> {
    volume: String,
    mount_path: &'a str,
    sub_path: Option<String>,
    read_only: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeView<'a> {
    name: String,
    config_map: Option<String>,
    items: Vec<ItemView>,
    claim: Option<&'a str>,
    read_only: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    key: String,
    mode: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceView {
    r#type: &'static str,
    ports: Vec<ServicePortView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServicePortView {
    name: String,
    port: i32,
    protocol: &'static str,
    node_port: Option<i32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileView<'a> {
    key: String,
    container: &'a str,
    path: &'a str,
    content: Option<&'a str>,
    binary_content: Option<&'a str>,
    mode: Option<i32>,
}

impl<'a> View<'a> {
    fn new(system: &'a System, settings: &'a RenderSettings) -> View<'a> {
        let spec = &system.spec;
        let name = system.name_or_empty();
        let namespace = system.namespace_or_default();

        let mut labels = spec.labels.clone();
        labels.extend(standard_labels(system));
        let annotations = spec.annotations.clone();
        let mut selector = BTreeMap::new();
        selector.insert(model::LABEL_SYSTEM.to_string(), name.clone());

        // Files: one ConfigMap key per file, `<container>-<index>`.
        let mut files = Vec::new();
        for c in &spec.containers {
            for (i, f) in c.files.iter().enumerate() {
                files.push(FileView {
                    key: file_key(&c.name, i),
                    container: &c.name,
                    path: &f.path,
                    content: f.content.as_deref(),
                    binary_content: f.binary_content.as_deref(),
                    mode: f.mode,
                });
            }
        }
        let files_hash = (!files.is_empty()).then(|| files_hash(spec));
        let mut pod_annotations = annotations.clone();
        if let Some(at) = system
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(model::ANNOTATION_RESTARTED_AT))
        {
            pod_annotations.insert(model::POD_RESTARTED_AT.to_string(), at.clone());
        }
        if let Some(h) = &files_hash {
            pod_annotations.insert(ANNOTATION_FILES_HASH.to_string(), h.clone());
        }
        let files_config_map = files_config_map_name(&name);

        let mut volumes = Vec::new();
        if !files.is_empty() {
            volumes.push(VolumeView {
                name: FILES_VOLUME.to_string(),
                config_map: Some(files_config_map.clone()),
                items: files
                    .iter()
                    .map(|f| ItemView {
                        key: f.key.clone(),
                        mode: f.mode,
                    })
                    .collect(),
                claim: None,
                read_only: true,
            });
        }
        for (i, v) in spec.volumes.iter().enumerate() {
            volumes.push(VolumeView {
                name: claim_volume_name(i),
                config_map: None,
                items: Vec::new(),
                claim: Some(&v.claim),
                read_only: v.read_only,
            });
        }

        let containers = spec
            .containers
            .iter()
            .map(|c| container_view(c, spec, &settings.gpu_resource))
            .collect();

        let replicas = if spec.paused { 0 } else { spec.replicas };
        let strategy = if spec.volumes.iter().any(|v| !v.read_only) {
            "Recreate"
        } else {
            "RollingUpdate"
        };

        let network = network_view(spec, &selector);
        View {
            system: SystemView {
                name,
                namespace,
                session: spec.session.clone(),
            },
            spec,
            settings: SettingsView {
                gpu_resource: &settings.gpu_resource,
            },
            pod_labels: labels.clone(),
            labels,
            annotations,
            selector,
            pod_annotations,
            replicas,
            strategy,
            pod: PodView {
                restart_policy: (spec.workload == Workload::Pod).then_some("Always"),
                service_account_name: spec.service_account_name.as_deref(),
                node_selector: &spec.node_selector,
                tolerations: &spec.tolerations,
                security_context: spec.security_context.as_ref(),
                containers,
                volumes,
            },
            network,
            service: service_view(spec),
            files,
            files_config_map,
            files_hash,
        }
    }
}

/// ConfigMap key of a container's `index`-th file.
pub fn file_key(container: &str, index: usize) -> String {
    format!("{container}-{index}")
}

fn claim_volume_name(index: usize) -> String {
    format!("claim-{index}")
}

fn container_view<'a>(c: &'a ContainerSpec, spec: &'a SystemSpec, gpu: &str) -> ContainerView<'a> {
    let (command, args) = if c.sleep {
        (SLEEP_COMMAND.to_vec(), Vec::new())
    } else {
        (
            c.command.iter().map(String::as_str).collect(),
            c.args.iter().map(String::as_str).collect(),
        )
    };
    let mut mounts: Vec<MountView<'a>> = c
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| MountView {
            volume: FILES_VOLUME.to_string(),
            mount_path: &f.path,
            sub_path: Some(file_key(&c.name, i)),
            read_only: true,
        })
        .collect();
    for (i, v) in spec.volumes.iter().enumerate() {
        if v.container.as_deref().is_none_or(|n| n == c.name) {
            mounts.push(MountView {
                volume: claim_volume_name(i),
                mount_path: &v.mount_path,
                sub_path: v.sub_path.clone(),
                read_only: v.read_only,
            });
        }
    }
    let (mut limits, requests) = (
        resource_map(c.limits.as_ref(), gpu),
        resource_map(c.requests.as_ref(), gpu),
    );
    // Extended resources (GPUs) must appear in limits; a request alone means the same limit.
    if let Some(g) = requests.get(gpu)
        && !limits.contains_key(gpu)
    {
        limits.insert(gpu.to_string(), g.clone());
    }
    ContainerView {
        name: &c.name,
        image: &c.image,
        command,
        args,
        working_dir: c.working_dir.as_deref(),
        env: &c.env,
        ports: c
            .ports
            .iter()
            .map(|p| PortView {
                port: p.port,
                protocol: p.protocol.as_str(),
                name: p.name.as_deref(),
            })
            .collect(),
        limits,
        requests,
        readiness: c.readiness.as_ref(),
        mounts,
        sleep: c.sleep,
    }
}

/// Kubernetes resource names and quantities of a [`Resources`].
fn resource_map(r: Option<&Resources>, gpu: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(r) = r else { return out };
    if let Some(v) = &r.cpus {
        out.insert("cpu".to_string(), v.clone());
    }
    if let Some(v) = &r.memory {
        out.insert("memory".to_string(), v.clone());
    }
    if let Some(v) = &r.ephemeral_storage {
        out.insert("ephemeral-storage".to_string(), v.clone());
    }
    if let Some(g) = r.gpus {
        out.insert(gpu.to_string(), g.to_string());
    }
    out
}

/// Label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A peer of `spec.network` as a Kubernetes NetworkPolicyPeer.
fn peer_json(p: &model::NetworkPeer) -> serde_json::Value {
    use serde_json::json;
    if let Some(ns) = &p.namespace {
        json!({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}})
    } else if let Some(sel) = &p.namespace_selector {
        if sel.is_empty() {
            json!({"namespaceSelector": {}})
        } else {
            json!({"namespaceSelector": {"matchLabels": sel}})
        }
    } else {
        let mut block = json!({"cidr": p.cidr.clone().unwrap_or_default()});
        if !p.except.is_empty() {
            block["except"] = json!(p.except);
        }
        json!({"ipBlock": block})
    }
}

/// The NetworkPolicy, when `spec.network` isolates the pods (Ingress: the System's own pods and the
/// `allowFrom` peers on every port, anyone on the exposed ports) or restricts egress (Egress: the
/// System's own pods, each `egress.to` peer on its ports, DNS to any namespace unless `allowDNS` is
/// false).
fn network_view(spec: &SystemSpec, selector: &BTreeMap<String, String>) -> Option<NetworkView> {
    let network = spec.network.as_ref()?;
    if !network.isolated && network.egress.is_none() {
        return None;
    }
    let own = serde_json::json!({"podSelector": {"matchLabels": selector}});
    let mut policy_types = Vec::new();
    let mut ingress = Vec::new();
    if network.isolated {
        policy_types.push("Ingress");
        let mut peers = vec![own.clone()];
        peers.extend(network.allow_from.iter().map(peer_json));
        ingress.push(RuleView {
            peers,
            ports: Vec::new(),
        });
        if let Some(service) = service_view(spec) {
            ingress.push(RuleView {
                peers: Vec::new(),
                ports: service
                    .ports
                    .iter()
                    .map(|p| NetPortView {
                        port: p.port,
                        protocol: p.protocol,
                    })
                    .collect(),
            });
        }
    }
    let mut egress = Vec::new();
    if let Some(e) = &network.egress {
        policy_types.push("Egress");
        egress.push(RuleView {
            peers: vec![own],
            ports: Vec::new(),
        });
        for to in &e.to {
            egress.push(RuleView {
                peers: vec![peer_json(&to.peer())],
                ports: to
                    .ports
                    .iter()
                    .map(|p| NetPortView {
                        port: p.port,
                        protocol: p.protocol.as_str(),
                    })
                    .collect(),
            });
        }
        if e.allow_dns {
            egress.push(RuleView {
                peers: vec![serde_json::json!({"namespaceSelector": {}})],
                ports: [Protocol::UDP, Protocol::TCP]
                    .into_iter()
                    .map(|protocol| NetPortView {
                        port: 53,
                        protocol: protocol.as_str(),
                    })
                    .collect(),
            });
        }
    }
    Some(NetworkView {
        policy_types,
        ingress,
        egress,
    })
}

/// The Service, when some port is exposed and `expose` is not `None`. Port names: the port's own
/// name, else `<container>-<port>`, made unique (and at most 63 characters) deterministically.
fn service_view(spec: &SystemSpec) -> Option<ServiceView> {
    let r#type = match spec.expose {
        Expose::None => return None,
        Expose::NodePort => "NodePort",
        Expose::ClusterIP => "ClusterIP",
    };
    let mut used = BTreeSet::new();
    // Names chosen by the user are taken first so generated names step around them.
    for c in &spec.containers {
        for p in c.ports.iter().filter(|p| p.expose) {
            if let Some(n) = &p.name {
                used.insert(n.clone());
            }
        }
    }
    let mut ports = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().filter(|p| p.expose) {
            let name = match &p.name {
                Some(n) => n.clone(),
                None => unique_port_name(&c.name, p.port, p.protocol, &mut used),
            };
            ports.push(ServicePortView {
                name,
                port: p.port,
                protocol: p.protocol.as_str(),
                node_port: if spec.expose == Expose::NodePort {
                    p.node_port
                } else {
                    None
                },
            });
        }
    }
    if ports.is_empty() {
        return None;
    }
    Some(ServiceView { r#type, ports })
}

fn unique_port_name(
    container: &str,
    port: i32,
    protocol: Protocol,
    used: &mut BTreeSet<String>,
) -> String {
    let proto = protocol.as_str().to_ascii_lowercase();
    let candidates = (0..).map(|n: u32| match n {
        0 => format!("-{port}"),
        1 => format!("-{port}-{proto}"),
        n => format!("-{port}-{proto}-{n}"),
    });
    for suffix in candidates {
        let keep = 63usize.saturating_sub(suffix.len());
        let head: String = container.chars().take(keep).collect();
        let name = format!("{}{suffix}", head.trim_end_matches('-'));
        if used.insert(name.clone()) {
            return name;
        }
    }
    // The candidate sequence is infinite, so this is never reached.
    format!("{container}-{port}")
}

/// A stable FNV-1a 64-bit hash of every file's container, path, mode and content, in order.
fn files_hash(spec: &SystemSpec) -> String {
    let mut h = Fnv::new();
    for c in &spec.containers {
        for f in &c.files {
            h.field(c.name.as_bytes());
            h.field(f.path.as_bytes());
            h.field(f.mode.map(|m| m.to_string()).unwrap_or_default().as_bytes());
            match (&f.content, &f.binary_content) {
                (Some(t), _) => {
                    h.field(b"t");
                    h.field(t.as_bytes());
                }
                (None, Some(b)) => {
                    h.field(b"b");
                    h.field(b.as_bytes());
                }
                (None, None) => h.field(b"-"),
            }
        }
    }
    format!("{:016x}", h.finish())
}

/// FNV-1a 64 with length-prefixed fields, so that field boundaries cannot be shifted.
struct Fnv(fnv::FnvHasher);

impl Fnv {
    fn new() -> Self {
        Fnv(fnv::FnvHasher::default())
    }
    fn field(&mut self, data: &[u8]) {
        use std::hash::Hasher;
        self.0.write(&(data.len() as u64).to_le_bytes());
        self.0.write(data);
    }
    fn finish(&self) -> u64 {
        std::hash::Hasher::finish(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_str_escapes_everything_yaml_could_read_as_structure() {
        let mut s = String::new();
        write_json_str("a\"b\\c\nd\re\tf\u{7f}\u{85}\u{2028}\u{1}", &mut s);
        assert_eq!(s, r#""a\"b\\c\nd\re\tf\u007f\u0085\u2028\u0001""#);
    }

    #[test]
    fn a_renderer_can_be_shared_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Renderer>();
        assert_send_sync::<Rendered>();
    }

    #[test]
    fn generated_port_names_are_unique_and_short() {
        let mut used = BTreeSet::from(["web-80".to_string()]);
        assert_eq!(
            unique_port_name("web", 80, Protocol::TCP, &mut used),
            "web-80-tcp"
        );
        let long = "a".repeat(63);
        let n = unique_port_name(&long, 8080, Protocol::UDP, &mut used);
        assert!(n.len() <= 63 && n.ends_with("-8080"), "{n}");
    }

    fn system(spec: serde_json::Value) -> System {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn policy(spec: serde_json::Value) -> Option<serde_json::Value> {
        let r = Renderer::new(RenderSettings::default())
            .unwrap()
            .render(&system(spec))
            .unwrap();
        r.network_policy.map(|np| serde_json::to_value(np).unwrap())
    }

    #[test]
    fn no_network_policy_unless_isolated_or_egress_is_restricted() {
        let c = serde_json::json!([{"name": "c", "image": "nginx", "ports": [{"port": 80}]}]);
        assert!(policy(serde_json::json!({"containers": c})).is_none());
        assert!(
            policy(serde_json::json!({"containers": c, "network": {"isolated": false}})).is_none()
        );
        let egress_only =
            policy(serde_json::json!({"containers": c, "network": {"egress": {}}})).unwrap();
        assert_eq!(
            egress_only["spec"]["policyTypes"],
            serde_json::json!(["Egress"])
        );
        assert!(egress_only["spec"].get("ingress").is_none());
    }

    #[test]
    fn an_isolated_system_renders_its_network_policy() {
        let np = policy(serde_json::json!({
            "containers": [{"name": "c", "image": "nginx",
                            "ports": [{"port": 80}, {"port": 9090, "expose": false}, {"port": 53, "protocol": "UDP"}]}],
            "labels": {"team": "a"},
            "network": {
                "isolated": true,
                "allowFrom": [
                    {"namespace": "monitoring"},
                    {"namespaceSelector": {"team": "a"}},
                    {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}
                ],
                "egress": {"to": [{"cidr": "192.168.0.0/16", "ports": [{"port": 5432}]}]}
            }
        }))
        .unwrap();
        let own = serde_json::json!({"podSelector": {"matchLabels": {"tycho.dev/system": "web"}}});
        assert_eq!(np["metadata"]["name"], "web");
        assert_eq!(np["metadata"]["namespace"], "ns");
        assert_eq!(np["metadata"]["labels"]["tycho.dev/system"], "web");
        assert_eq!(np["metadata"]["labels"]["team"], "a");
        assert_eq!(np["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(np["metadata"]["ownerReferences"][0]["controller"], true);
        let spec = &np["spec"];
        assert_eq!(spec["podSelector"], own["podSelector"]);
        assert_eq!(
            spec["policyTypes"],
            serde_json::json!(["Ingress", "Egress"])
        );
        assert_eq!(
            spec["ingress"],
            serde_json::json!([
                {"from": [
                    own,
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
                    {"namespaceSelector": {"matchLabels": {"team": "a"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
                ]},
                // Only the exposed ports, from anywhere.
                {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
            ])
        );
        assert_eq!(
            spec["egress"],
            serde_json::json!([
                {"to": [own]},
                {"to": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": [{"port": 5432, "protocol": "TCP"}]},
                {"to": [{"namespaceSelector": {}}],
                 "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
            ])
        );
    }

    #[test]
    fn an_unexposed_isolated_system_admits_only_its_peers_and_dns_can_be_refused() {
        let np = policy(serde_json::json!({
            "containers": [{"name": "c", "image": "nginx", "ports": [{"port": 80}]}],
            "expose": "None",
            "network": {"isolated": true, "egress": {"allowDNS": false}}
        }))
        .unwrap();
        let own = serde_json::json!({"podSelector": {"matchLabels": {"tycho.dev/system": "web"}}});
        assert_eq!(np["spec"]["ingress"], serde_json::json!([{"from": [own]}]));
        assert_eq!(np["spec"]["egress"], serde_json::json!([{"to": [own]}]));
    }
}
