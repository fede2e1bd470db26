//! Compose import: a Compose file's services as one [`System`] (or a [`SystemTemplate`]). Pure.
//!
//! All services become containers of one pod, so they share its network, as Tycho's containers do;
//! a Compose file whose services reach each other by name gets those names rewritten to `127.0.0.1`
//! where they clearly are host names (`db:3306`, `http://api/`, `WORDPRESS_DB_HOST: db`), with a note.
//!
//! | Compose | Tycho |
//! |---|---|
//! | `image` | `containers[].image` |
//! | `entrypoint` / `command` | `command` / `args` (string forms split as a shell would, without running one) |
//! | `environment` (list or map) | `env` (a bare `KEY` takes the value from the environment, or becomes a template parameter) |
//! | `ports`, `expose` | `ports` (the container port; published ports `expose: true`, a published port in 30000–32767 becomes its `nodePort`; ranges and protocols) |
//! | `working_dir` | `workingDir` |
//! | `deploy.resources.limits` / `.reservations` (`cpus`, `memory`; GPU `devices`), `cpus`, `mem_limit`, `mem_reservation`, `gpus` | `limits` / `requests` (`cpus`, `memory`, `gpus`) |
//! | named `volumes` | `spec.volumes` claims of that name (the claim must exist) |
//! | `healthcheck` with `curl`/`wget` of a local URL, or `nc -z` | `readiness.http` / `readiness.tcp` |
//! | `configs` / `secrets` with inline `content` (or `environment`) | pre-boot `files` |
//! | `labels`, `annotations` | `spec.labels` (or `spec.annotations` where the value is no label value) |
//! | `${VAR}`, `${VAR:-default}` … | the environment's values; with a template, parameters |
//!
//! Everything else (build, networks, depends_on, bind mounts, restart policies other than always,
//! profiles, extends, user, …) is reported as a [`Warning`], never dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::quantity::Quantity;
use crate::validate::{
    FieldError, check_clean_path, check_qualified_name, is_dns1035_label, is_dns1123_subdomain,
    is_iana_svc_name, is_label_value,
};
use crate::{
    ContainerSpec, EnvVar, FileSpec, HttpCheck, ParameterType, PortSpec, Protocol, Readiness,
    Resources, System, SystemSpec, SystemTemplate, SystemTemplateSpec, TcpCheck, TemplateParameter,
    VolumeSpec,
};

/// What [`import`] makes, and how it interpolates.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Make a [`SystemTemplate`] whose parameters are the Compose variables, instead of a [`System`]
    /// whose variables are taken from [`ImportOptions::env`].
    pub template: bool,
    /// Name of the System or template; it must be a DNS-1035 label of at most 57 characters. When
    /// unset: the Compose file's `name`, else [`ImportOptions::fallback_name`], made into such a label.
    pub name: Option<String>,
    /// The name to use when neither [`ImportOptions::name`] nor the file gives one (the command line
    /// passes the file's directory name, as Compose does for its project name).
    pub fallback_name: Option<String>,
    /// The variables `${VAR}` takes its value from (without `template`): the process environment
    /// over a `.env` file, as Compose does.
    pub env: BTreeMap<String, String>,
    /// Active Compose profiles: a service with `profiles` is imported only when one of them is active.
    pub profiles: Vec<String>,
    /// Where the file came from, for the template's description.
    pub source: Option<String>,
}

/// One thing the import could not map, or mapped with a change the user must know of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The Compose service it is about (`None` for top-level keys and variables).
    pub service: Option<String>,
    /// The Compose field, relative to the service when there is one (`ports[1]`, `build`).
    pub field: String,
    /// What happened and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Some(s) if self.field.is_empty() => write!(f, "services.{s}: {}", self.message),
            Some(s) => write!(f, "services.{s}.{}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// The object an import made.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportedObject {
    /// A System (without `--template`).
    System(Box<System>),
    /// A SystemTemplate (with `--template`).
    Template(Box<SystemTemplate>),
}

/// The result of [`import`].
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The System or template.
    pub object: ImportedObject,
    /// What could not be mapped (Compose fields dropped or changed in meaning); `--strict` refuses them.
    pub warnings: Vec<Warning>,
    /// What was mapped with a consequence to know (a claim that must exist, a host name rewritten).
    pub notes: Vec<Warning>,
}

/// Why a Compose file cannot be imported. Each names the Compose field.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The text is not YAML.
    #[error("invalid YAML")]
    Yaml(#[source] serde_saphyr::Error),
    /// A field has the wrong shape (a list where a mapping belongs, a malformed port).
    #[error("{field}: {message}")]
    Shape {
        /// The Compose field, e.g. `services.web.ports[0]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The file has no services (or none of the active profiles).
    #[error("services: no services to import{0}")]
    NoServices(String),
    /// A service has no `image` (a `build` alone cannot run on Kubernetes).
    #[error(
        "services.{service}: no image; Tycho runs images only (build and push it, then give `image:`)"
    )]
    NoImage {
        /// The service.
        service: String,
    },
    /// A `${…}` cannot be interpolated.
    #[error("{field}: {message}")]
    Interpolation {
        /// The Compose field.
        field: String,
        /// Why.
        message: String,
    },
    /// Two services listen on or publish the same port: in one pod, they cannot both have it.
    #[error(
        "services.{first} and services.{second} both {what} port {port}/{protocol}; the services share one pod's network, so a port can be used once"
    )]
    PortConflict {
        /// `use` (the container port) or `publish`.
        what: &'static str,
        /// The port.
        port: i32,
        /// Its protocol.
        protocol: &'static str,
        /// The service that has it first.
        first: String,
        /// The other one.
        second: String,
    },
    /// Two services whose names become the same container name.
    #[error("services.{first} and services.{second} both become container {name:?}")]
    NameConflict {
        /// The container name.
        name: String,
        /// A service.
        first: String,
        /// Another one.
        second: String,
    },
    /// More of something than a System holds.
    #[error("{field}: {got} is more than a System holds (at most {max})")]
    TooMany {
        /// The Tycho field.
        field: String,
        /// How many the import made.
        got: usize,
        /// The most allowed.
        max: usize,
    },
    /// `--name` is not a valid System name.
    #[error(
        "name {0:?}: must be a DNS-1035 label of at most 57 characters (lowercase letters, digits and '-', starting with a letter)"
    )]
    InvalidName(String),
    /// The translation does not pass [`crate::validate::validate`].
    #[error("the imported System is not valid: {}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parse a Compose `.env` file: `KEY=VALUE` lines, `#` comments, `export ` prefixes, and values in
/// single quotes (literal) or double quotes (with `\n`, `\"` and `\\` escapes). Malformed lines are skipped.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !is_var_name(k) {
            continue;
        }
        let v = v.trim();
        let value = if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            inner.to_string()
        } else if let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            unescape_double(inner)
        } else {
            // An unquoted value ends at ` #` (an inline comment).
            v.split(" #").next().unwrap_or(v).trim_end().to_string()
        };
        out.insert(k.to_string(), value);
    }
    out
}

fn unescape_double(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Translate a Compose file into a System (or, with `opts.template`, a SystemTemplate) that passes
/// [`crate::validate::validate`], with what could not be mapped as warnings.
pub fn import(yaml: &str, opts: &ImportOptions) -> Result<Imported, ComposeError> {
    let options = serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: true,
    };
    let doc: Value =
        serde_saphyr::from_str_with_options(yaml, options.clone()).map_err(ComposeError::Yaml)?;
    let Value::Object(top) = &doc else {
        return Err(shape("(top level)", "must be a mapping with `services`"));
    };
    let order: ServiceOrder =
        serde_saphyr::from_str_with_options(yaml, options).map_err(ComposeError::Yaml)?;
    let mut cx = Cx {
        opts,
        warnings: Vec::new(),
        notes: Vec::new(),
        unset: BTreeMap::new(),
        params: Vec::new(),
    };
    let compose = Compose::read(&mut cx, top, &order.services.0)?;
    let name = cx.system_name(top)?;
    let spec = cx.build(&compose)?;
    let system = System {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    crate::validate::validate(&system).map_err(ComposeError::Invalid)?;
    cx.report_unset();
    let object = if opts.template {
        if cx.params.len() > 64 {
            return Err(ComposeError::TooMany {
                field: "spec.parameters".into(),
                got: cx.params.len(),
                max: 64,
            });
        }
        let services: Vec<&str> = compose.services.iter().map(|s| s.name.as_str()).collect();
        let description = format!(
            "Imported from {} (services: {})",
            opts.source.as_deref().unwrap_or("a Compose file"),
            services.join(", ")
        );
        let parameters = cx.params.iter().map(Param::to_parameter).collect();
        ImportedObject::Template(Box::new(SystemTemplate {
            metadata: ObjectMeta {
                name: Some(name),
                ..ObjectMeta::default()
            },
            spec: SystemTemplateSpec {
                description: Some(truncate(&description, 1024)),
                parameters,
                max_per_owner: None,
                system: system.spec,
            },
        }))
    } else {
        ImportedObject::System(Box::new(system))
    };
    Ok(Imported {
        object,
        warnings: cx.warnings,
        notes: cx.notes,
    })
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or(s).to_string()
}

fn shape(field: impl Into<String>, message: impl Into<String>) -> ComposeError {
    ComposeError::Shape {
        field: field.into(),
        message: message.into(),
    }
}

/// The service names in file order (a `serde_json::Value` map is sorted).
#[derive(Deserialize, Default)]
struct ServiceOrder {
    #[serde(default)]
    services: Keys,
}

#[derive(Default)]
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of services")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Keys, E> {
                Ok(Keys::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a value comes from: a service (or none) and the field within it.
#[derive(Clone)]
struct At {
    service: Option<String>,
    field: String,
}

impl At {
    fn top(field: impl Into<String>) -> At {
        At {
            service: None,
            field: field.into(),
        }
    }
    fn svc(service: &str, field: impl Into<String>) -> At {
        At {
            service: Some(service.to_string()),
            field: field.into(),
        }
    }
    fn join(&self, more: impl fmt::Display) -> At {
        let more = more.to_string();
        let field = if self.field.is_empty() {
            more
        } else if more.starts_with('[') {
            format!("{}{more}", self.field)
        } else {
            format!("{}.{more}", self.field)
        };
        At {
            service: self.service.clone(),
            field,
        }
    }
    /// The full Compose path, e.g. `services.web.ports[0]`.
    fn full(&self) -> String {
        match &self.service {
            Some(s) if self.field.is_empty() => format!("services.{s}"),
            Some(s) => format!("services.{s}.{}", self.field),
            None => self.field.clone(),
        }
    }
}

/// Where an interpolated string goes. In a template, a `Free` field may hold `${param}`; a `Fixed`
/// one has a format the CRD checks (a number, a quantity, a path), so it takes the default.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Fixed,
}

/// The operator of a `${NAME…}`.
enum Op<'a> {
    Plain,
    /// `:-` (`empty`: also when set but empty) or `-`.
    Default {
        empty: bool,
        text: &'a str,
    },
    /// `:?` or `?`.
    Required {
        empty: bool,
        message: &'a str,
    },
    /// `:+` or `+`.
    Alternative {
        empty: bool,
        text: &'a str,
    },
}

/// A template parameter collected from the file's variables.
struct Param {
    name: String,
    default: Option<String>,
    message: Option<String>,
    used_in: Vec<String>,
}

impl Param {
    fn to_parameter(&self) -> TemplateParameter {
        let mut description = format!("Compose variable ${{{}}}", self.name);
        if let Some(m) = &self.message {
            description.push_str(&format!(": {m}"));
        }
        description.push_str(&format!(" (in {})", self.used_in.join(", ")));
        TemplateParameter {
            name: self.name.clone(),
            kind: ParameterType::String,
            description: Some(truncate(&description, 1024)),
            default: self.default.clone().map(Value::String),
            allowed: Vec::new(),
        }
    }
}

struct Cx<'a> {
    opts: &'a ImportOptions,
    warnings: Vec<Warning>,
    notes: Vec<Warning>,
    /// Variables that were not set, with where they were used.
    unset: BTreeMap<String, Vec<String>>,
    params: Vec<Param>,
}

impl Cx<'_> {
    fn warn(&mut self, at: &At, message: impl Into<String>) {
        let w = Warning {
            service: at.service.clone(),
            field: at.field.clone(),
            message: message.into(),
        };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    fn note(&mut self, at: &At, message: impl Into<String>) {
        let w = Warning {
            service: at.service.clone(),
            field: at.field.clone(),
            message: message.into(),
        };
        if !self.notes.contains(&w) {
            self.notes.push(w);
        }
    }

    // ---- interpolation ----

    /// Interpolate `${…}` and `$NAME` in `s` as Compose does (`$$` is a literal `$`).
    fn interp(&mut self, s: &str, at: &At, slot: Slot) -> Result<String, ComposeError> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = closing_brace(body).ok_or_else(|| ComposeError::Interpolation {
                    field: at.full(),
                    message: format!("unterminated ${{ in {s:?}"),
                })?;
                out.push_str(&self.braced(&body[..end], at, slot)?);
                rest = &body[end + 1..];
            } else {
                let len = after
                    .char_indices()
                    .find(|&(i, c)| {
                        !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                    })
                    .map_or(after.len(), |(i, _)| i);
                if len == 0 {
                    return Err(ComposeError::Interpolation {
                        field: at.full(),
                        message: format!(
                            "invalid interpolation in {s:?}: a '$' starts ${{NAME}} or $NAME; write $$ for a literal '$'"
                        ),
                    });
                }
                out.push_str(&self.var(&after[..len], Op::Plain, at, slot)?);
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn braced(&mut self, inner: &str, at: &At, slot: Slot) -> Result<String, ComposeError> {
        let len = inner
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(inner.len());
        let (name, rest) = inner.split_at(len);
        let bad = || ComposeError::Interpolation {
            field: at.full(),
            message: format!("invalid interpolation format ${{{inner}}}"),
        };
        if !is_var_name(name) {
            return Err(bad());
        }
        let op = if rest.is_empty() {
            Op::Plain
        } else if let Some(t) = rest.strip_prefix(":-") {
            Op::Default {
                empty: true,
                text: t,
            }
        } else if let Some(t) = rest.strip_prefix('-') {
            Op::Default {
                empty: false,
                text: t,
            }
        } else if let Some(t) = rest.strip_prefix(":?") {
            Op::Required {
                empty: true,
                message: t,
            }
        } else if let Some(t) = rest.strip_prefix('?') {
            Op::Required {
                empty: false,
                message: t,
            }
        } else if let Some(t) = rest.strip_prefix(":+") {
            Op::Alternative {
                empty: true,
                text: t,
            }
        } else if let Some(t) = rest.strip_prefix('+') {
            Op::Alternative {
                empty: false,
                text: t,
            }
        } else {
            return Err(bad());
        };
        self.var(name, op, at, slot)
    }

    fn var(&mut self, name: &str, op: Op<'_>, at: &At, slot: Slot) -> Result<String, ComposeError> {
        if !self.opts.template {
            let value = self.opts.env.get(name).cloned();
            let missing = |empty: bool| match &value {
                None => true,
                Some(v) => empty && v.is_empty(),
            };
            return match op {
                Op::Plain => Ok(value.unwrap_or_else(|| {
                    self.unset
                        .entry(name.to_string())
                        .or_default()
                        .push(at.full());
                    String::new()
                })),
                Op::Default { empty, text } => {
                    if missing(empty) {
                        self.interp(text, at, slot)
                    } else {
                        Ok(value.unwrap_or_default())
                    }
                }
                Op::Required { empty, message } => {
                    if missing(empty) {
                        Err(ComposeError::Interpolation {
                            field: at.full(),
                            message: format!(
                                "required variable {name} is missing a value: {message}"
                            ),
                        })
                    } else {
                        Ok(value.unwrap_or_default())
                    }
                }
                Op::Alternative { empty, text } => {
                    if missing(empty) {
                        Ok(String::new())
                    } else {
                        self.interp(text, at, slot)
                    }
                }
            };
        }
        let placeholder = format!("${{{name}}}");
        match (op, slot) {
            (Op::Plain, Slot::Free) => {
                self.declare(name, None, None, at);
                Ok(placeholder)
            }
            (Op::Default { text, .. }, Slot::Free) => {
                let default = self.interp(text, at, Slot::Fixed)?;
                self.declare(name, Some(default), None, at);
                Ok(placeholder)
            }
            (Op::Required { message, .. }, Slot::Free) => {
                self.declare(name, None, Some(message.to_string()), at);
                Ok(placeholder)
            }
            (Op::Plain | Op::Required { .. }, Slot::Fixed) => Err(ComposeError::Interpolation {
                field: at.full(),
                message: format!(
                    "${{{name}}} has no default, and this field cannot hold a template parameter (the CRD checks its format): give it one, as ${{{name}:-value}}"
                ),
            }),
            (Op::Default { text, .. }, Slot::Fixed) => {
                let default = self.interp(text, at, Slot::Fixed)?;
                self.warn(
                    at,
                    format!(
                        "${{{name}}} cannot be a template parameter in this field (the CRD checks its format): its default {default:?} is used"
                    ),
                );
                Ok(default)
            }
            (Op::Alternative { .. }, _) => {
                self.warn(
                    at,
                    format!(
                        "${{{name}:+…}} (a value only when {name} is set) has no template equivalent: it is left empty"
                    ),
                );
                Ok(String::new())
            }
        }
    }

    fn declare(&mut self, name: &str, default: Option<String>, message: Option<String>, at: &At) {
        let used = at.full();
        if let Some(p) = self.params.iter_mut().find(|p| p.name == name) {
            if !p.used_in.contains(&used) {
                p.used_in.push(used);
            }
            if p.message.is_none() {
                p.message = message;
            }
            let clash = match (&p.default, &default) {
                (Some(a), Some(b)) if a != b => Some(format!(
                    "${{{name}}} has the default {a:?} elsewhere and {b:?} here: a template parameter has one default, {a:?}"
                )),
                (None, Some(b)) => {
                    p.default = Some(b.clone());
                    Some(format!(
                        "${{{name}}} is used without a default elsewhere: the template parameter's default {b:?} applies there too"
                    ))
                }
                (Some(a), None) => Some(format!(
                    "${{{name}}} has no default here, but the default {a:?} elsewhere: the template parameter's default applies here too"
                )),
                _ => None,
            };
            if let Some(m) = clash {
                self.warn(at, m);
            }
            return;
        }
        self.params.push(Param {
            name: name.to_string(),
            default,
            message,
            used_in: vec![used],
        });
    }

    fn report_unset(&mut self) {
        for (name, used) in std::mem::take(&mut self.unset) {
            let mut used = used;
            used.dedup();
            self.warnings.push(Warning {
                service: None,
                field: format!("${{{name}}}"),
                message: format!(
                    "variable {name} is not set: an empty string is used in {} (set it in the environment or in .env)",
                    used.join(", ")
                ),
            });
        }
    }

    /// A scalar as text (strings interpolated); `None` for null.
    fn text(&mut self, v: &Value, at: &At, slot: Slot) -> Result<Option<String>, ComposeError> {
        match v {
            Value::String(s) => Ok(Some(self.interp(s, at, slot)?)),
            Value::Number(n) => Ok(Some(n.to_string())),
            Value::Bool(b) => Ok(Some(b.to_string())),
            Value::Null => Ok(None),
            _ => Err(shape(at.full(), "must be a string or a number")),
        }
    }

    /// A string or a list of strings as a list (a string split as a shell would).
    fn words(&mut self, v: &Value, at: &At) -> Result<Option<Vec<String>>, ComposeError> {
        match v {
            Value::Null => Ok(None),
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let a = at.join(format!("[{i}]"));
                    out.push(self.text(item, &a, Slot::Free)?.unwrap_or_default());
                }
                Ok(Some(out))
            }
            _ => {
                let s = self.text(v, at, Slot::Free)?.unwrap_or_default();
                split_words(&s)
                    .map(Some)
                    .map_err(|m| shape(at.full(), format!("{m} in {s:?}")))
            }
        }
    }

    // ---- names ----

    fn system_name(
        &mut self,
        top: &serde_json::Map<String, Value>,
    ) -> Result<String, ComposeError> {
        if let Some(n) = &self.opts.name {
            return if is_dns1035_label(n) && n.len() <= crate::MAX_NAME_LEN {
                Ok(n.clone())
            } else {
                Err(ComposeError::InvalidName(n.clone()))
            };
        }
        let at = At::top("name");
        let given = match top.get("name") {
            Some(v) => self.text(v, &at, Slot::Fixed)?,
            None => None,
        };
        let (given, at) = match given.filter(|s| !s.is_empty()) {
            Some(n) => (n, at),
            None => (
                self.opts
                    .fallback_name
                    .clone()
                    .unwrap_or_else(|| "compose".into()),
                At::top("(project name)"),
            ),
        };
        let name = system_name(&given);
        if name != given {
            self.note(
                &at,
                format!("{given:?} is not a valid System name: the import is named {name:?} (give --name to choose)"),
            );
        }
        Ok(name)
    }
}

/// Index of the `}` that closes a `${` whose body starts at `body` (nested `${…}` allowed).
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_var_name(s: &str) -> bool {
    s.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        && s.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && s.len() <= 256
}

/// Lowercase letters, digits and single '-'s; other characters become '-'.
fn dns_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A System name (DNS-1035 label of at most 57 characters) made from any text.
fn system_name(s: &str) -> String {
    let mut n = dns_text(s);
    if !n.starts_with(|c: char| c.is_ascii_lowercase()) {
        n = format!("c-{n}");
    }
    n.truncate(crate::MAX_NAME_LEN);
    let n = n.trim_end_matches('-').to_string();
    if n == "c" { "compose".into() } else { n }
}

/// A container name (DNS-1123 label) made from a service name; `None` when nothing is left.
fn container_name(service: &str) -> Option<String> {
    let mut n = dns_text(service);
    n.truncate(63);
    let n = n.trim_end_matches('-').to_string();
    (!n.is_empty()).then_some(n)
}

/// Split a command line into words as a POSIX shell would (quotes and backslashes), without
/// expanding anything.
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

// ---- the model read from the file ----

struct Compose<'a> {
    services: Vec<Service<'a>>,
    /// Top-level `volumes`: name → claim name.
    volumes: BTreeMap<String, String>,
    configs: &'a serde_json::Map<String, Value>,
    secrets: &'a serde_json::Map<String, Value>,
    /// Every name other services may use to reach a service (service names, hostnames, aliases).
    hosts: BTreeSet<String>,
}

struct Service<'a> {
    name: String,
    container: String,
    body: &'a serde_json::Map<String, Value>,
}

static EMPTY: std::sync::LazyLock<serde_json::Map<String, Value>> =
    std::sync::LazyLock::new(serde_json::Map::new);

fn mapping<'a>(
    v: Option<&'a Value>,
    at: &At,
) -> Result<&'a serde_json::Map<String, Value>, ComposeError> {
    match v {
        None | Some(Value::Null) => Ok(&EMPTY),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(shape(at.full(), "must be a mapping")),
    }
}

impl<'a> Compose<'a> {
    fn read(
        cx: &mut Cx<'_>,
        top: &'a serde_json::Map<String, Value>,
        order: &[String],
    ) -> Result<Compose<'a>, ComposeError> {
        for (k, v) in top {
            match k.as_str() {
                "services" | "volumes" | "configs" | "secrets" | "name" => {}
                // Obsolete; Compose ignores it too.
                "version" => {}
                k if k.starts_with("x-") => {}
                "networks" => {
                    if v.as_object().is_some_and(|m| !m.is_empty()) {
                        cx.warn(
                            &At::top("networks"),
                            "not mapped: the services run as containers of one pod and share its network (they reach each other on 127.0.0.1, not by name)",
                        );
                    }
                }
                "include" => cx.warn(
                    &At::top("include"),
                    "not followed: import the included files on their own, or merge them with `docker compose config` first",
                ),
                other => cx.warn(
                    &At::top(other),
                    "not mapped: Tycho has no equivalent of this top-level key",
                ),
            }
        }
        let services_map = mapping(top.get("services"), &At::top("services"))?;
        let mut services = Vec::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut hosts = BTreeSet::new();
        let mut skipped = Vec::new();
        // File order, then any the order pass did not see (it always sees all of them).
        let mut keys: Vec<&String> = order
            .iter()
            .filter(|k| services_map.contains_key(*k))
            .collect();
        for k in services_map.keys() {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for key in keys {
            let at = At::svc(key, "");
            let Some(Value::Object(body)) = services_map.get(key) else {
                return Err(shape(at.full(), "must be a mapping"));
            };
            hosts.insert(key.clone());
            for k in ["hostname", "container_name"] {
                if let Some(Value::String(h)) = body.get(k) {
                    hosts.insert(h.clone());
                }
            }
            if let Some(Value::Array(links)) = body.get("links") {
                for l in links.iter().filter_map(Value::as_str) {
                    if let Some((_, alias)) = l.split_once(':') {
                        hosts.insert(alias.to_string());
                    }
                }
            }
            if let Some(Value::Object(nets)) = body.get("networks") {
                for net in nets.values() {
                    if let Some(Value::Array(aliases)) = net.get("aliases") {
                        hosts.extend(aliases.iter().filter_map(Value::as_str).map(String::from));
                    }
                }
            }
            if let Some(profiles) = body.get("profiles") {
                let profiles: Vec<String> = match profiles {
                    Value::Array(p) => p
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                    Value::String(p) => vec![p.clone()],
                    _ => Vec::new(),
                };
                if !profiles.iter().any(|p| cx.opts.profiles.contains(p)) {
                    cx.warn(
                        &at.join("profiles"),
                        format!(
                            "the service belongs to the profiles {profiles:?}, none of them active: it is left out, as `docker compose up` leaves it (give --profile to include it)"
                        ),
                    );
                    skipped.push(key.clone());
                    continue;
                }
            }
            let container = container_name(key).ok_or_else(|| {
                shape(
                    at.full(),
                    "the service name has no letters or digits for a container name",
                )
            })?;
            if let Some(first) = names.insert(container.clone(), key.clone()) {
                return Err(ComposeError::NameConflict {
                    name: container,
                    first,
                    second: key.clone(),
                });
            }
            if &container != key {
                cx.note(
                    &at,
                    format!("becomes the container {container:?} (a DNS label)"),
                );
            }
            services.push(Service {
                name: key.clone(),
                container,
                body,
            });
        }
        if services.is_empty() {
            let why = if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({} left out by their profiles)", skipped.join(", "))
            };
            return Err(ComposeError::NoServices(why));
        }
        if services.len() > 16 {
            return Err(ComposeError::TooMany {
                field: "spec.containers".into(),
                got: services.len(),
                max: 16,
            });
        }
        let mut volumes = BTreeMap::new();
        let top_volumes = mapping(top.get("volumes"), &At::top("volumes"))?;
        for (name, def) in top_volumes {
            let at = At::top(format!("volumes.{name}"));
            let def = mapping(Some(def), &at)?;
            let mut claim_source = name.clone();
            for (k, v) in def {
                match k.as_str() {
                    "name" => {
                        if let Some(n) = cx.text(v, &at.join("name"), Slot::Fixed)? {
                            claim_source = n;
                        }
                    }
                    "external" => {}
                    k if k.starts_with("x-") => {}
                    other => cx.warn(
                        &at.join(other),
                        "not kept: the PersistentVolumeClaim decides how its volume is stored",
                    ),
                }
            }
            let claim = claim_name(&claim_source);
            if claim != claim_source {
                cx.note(
                    &at,
                    format!("{claim_source:?} is no PersistentVolumeClaim name: the claim is named {claim:?}"),
                );
            }
            volumes.insert(name.clone(), claim);
        }
        Ok(Compose {
            services,
            volumes,
            configs: mapping(top.get("configs"), &At::top("configs"))?,
            secrets: mapping(top.get("secrets"), &At::top("secrets"))?,
            hosts,
        })
    }
}

/// A PersistentVolumeClaim name (DNS-1123 subdomain) for a Compose volume name.
fn claim_name(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    if is_dns1123_subdomain(&lower) {
        return lower;
    }
    let mut n = dns_text(s);
    n.truncate(253);
    let n = n.trim_end_matches('-').to_string();
    if n.is_empty() { "data".into() } else { n }
}

// ---- ports ----

/// Whether a port is published: `None`: no; `Some(None)`: on a host port Docker picks; `Some(Some(p))`: on `p`.
type Published = Option<Option<i32>>;

/// One container port from `ports` or `expose`.
struct PortUse {
    target: i32,
    protocol: Protocol,
    /// `None`: not published; `Some(None)`: published on a port Docker picks; `Some(Some(p))`: on `p`.
    published: Published,
    host_ip: Option<String>,
    name: Option<String>,
    at: At,
}

fn protocol(s: &str) -> Option<Protocol> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Some(Protocol::TCP),
        "udp" => Some(Protocol::UDP),
        "sctp" => Some(Protocol::SCTP),
        _ => None,
    }
}

/// `8000` or `8000-8010`.
fn port_range(s: &str) -> Option<(i32, i32)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: i32 = a.trim().parse().ok()?;
    let b: i32 = b.trim().parse().ok()?;
    ((1..=65535).contains(&a) && (a..=65535).contains(&b)).then_some((a, b))
}

/// Expand targets and published ports (single or ranges of the same length) into pairs.
fn expand(
    target: (i32, i32),
    published: Option<Option<(i32, i32)>>,
) -> Result<Vec<(i32, Published)>, String> {
    let n = target.1 - target.0;
    if n >= 16 {
        return Err(format!(
            "the range {}-{} has more ports than a container holds (16)",
            target.0, target.1
        ));
    }
    let mut out = Vec::new();
    for i in 0..=n {
        let p = match published {
            None => None,
            Some(None) => Some(None),
            Some(Some((a, b))) if b - a == n => Some(Some(a + i)),
            // A published range of another length: Docker picks a port of it.
            Some(Some(_)) => Some(None),
        };
        out.push((target.0 + i, p));
    }
    Ok(out)
}

impl Cx<'_> {
    fn ports(&mut self, svc: &Service<'_>) -> Result<Vec<PortUse>, ComposeError> {
        let mut out = Vec::new();
        if let Some(v) = svc.body.get("ports") {
            let at = At::svc(&svc.name, "ports");
            let Value::Array(items) = v else {
                return Err(shape(at.full(), "must be a list"));
            };
            for (i, item) in items.iter().enumerate() {
                let at = at.join(format!("[{i}]"));
                match item {
                    Value::Object(m) => out.extend(self.long_port(m, &at)?),
                    other => {
                        let s = self.text(other, &at, Slot::Fixed)?.unwrap_or_default();
                        out.extend(self.short_port(&s, &at, true)?);
                    }
                }
            }
        }
        if let Some(v) = svc.body.get("expose") {
            let at = At::svc(&svc.name, "expose");
            let Value::Array(items) = v else {
                return Err(shape(at.full(), "must be a list"));
            };
            for (i, item) in items.iter().enumerate() {
                let at = at.join(format!("[{i}]"));
                let s = self.text(item, &at, Slot::Fixed)?.unwrap_or_default();
                out.extend(self.short_port(&s, &at, false)?);
            }
        }
        Ok(out)
    }

    /// `[[HOST_IP:]PUBLISHED:]TARGET[/PROTOCOL]` (or, from `expose`, `TARGET[/PROTOCOL]`).
    fn short_port(
        &mut self,
        s: &str,
        at: &At,
        publish: bool,
    ) -> Result<Vec<PortUse>, ComposeError> {
        let bad = |m: &str| shape(at.full(), format!("{s:?}: {m}"));
        let (spec, proto) = match s.rsplit_once('/') {
            Some((spec, p)) => (spec, protocol(p).ok_or_else(|| bad("unknown protocol"))?),
            None => (s, Protocol::TCP),
        };
        let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
            let (ip, rest) = r
                .split_once("]:")
                .ok_or_else(|| bad("malformed IPv6 address"))?;
            (Some(ip.to_string()), rest)
        } else {
            match spec.matches(':').count() {
                0 | 1 => (None, spec),
                2 => {
                    let (ip, rest) = spec.split_once(':').ok_or_else(|| bad("malformed"))?;
                    (Some(ip.to_string()), rest)
                }
                _ => return Err(bad("an IPv6 host address must be in brackets")),
            }
        };
        let (published, target) = match rest.rsplit_once(':') {
            Some((p, t)) if !publish => {
                return Err(bad(&format!(
                    "expose takes container ports only, not {p}:{t}"
                )));
            }
            Some(("", t)) => (Some(None), t),
            Some((p, t)) => (
                Some(Some(
                    port_range(p).ok_or_else(|| bad("not a port or port range"))?,
                )),
                t,
            ),
            None if publish => (Some(None), rest),
            None => (None, rest),
        };
        let target = port_range(target).ok_or_else(|| bad("not a port or port range"))?;
        let pairs = expand(target, published).map_err(|m| bad(&m))?;
        Ok(pairs
            .into_iter()
            .map(|(t, p)| PortUse {
                target: t,
                protocol: proto,
                published: p,
                host_ip: host_ip.clone(),
                name: None,
                at: at.clone(),
            })
            .collect())
    }

    fn long_port(
        &mut self,
        m: &serde_json::Map<String, Value>,
        at: &At,
    ) -> Result<Vec<PortUse>, ComposeError> {
        let mut target = None;
        let mut published = Some(None);
        let mut proto = Protocol::TCP;
        let mut host_ip = None;
        let mut name = None;
        for (k, v) in m {
            let a = at.join(k);
            match k.as_str() {
                "target" => {
                    let t = self.text(v, &a, Slot::Fixed)?.unwrap_or_default();
                    target = Some(
                        port_range(&t)
                            .ok_or_else(|| shape(a.full(), format!("{t:?} is not a port")))?,
                    );
                }
                "published" => {
                    if let Some(p) = self.text(v, &a, Slot::Fixed)?.filter(|p| !p.is_empty()) {
                        published = Some(Some(port_range(&p).ok_or_else(|| {
                            shape(a.full(), format!("{p:?} is not a port or port range"))
                        })?));
                    }
                }
                "protocol" => {
                    let p = self.text(v, &a, Slot::Fixed)?.unwrap_or_default();
                    proto = protocol(&p)
                        .ok_or_else(|| shape(a.full(), format!("unknown protocol {p:?}")))?;
                }
                "host_ip" => host_ip = self.text(v, &a, Slot::Fixed)?,
                "name" => name = self.text(v, &a, Slot::Fixed)?,
                // Swarm's routing mesh; one pod has no such choice.
                "mode" => {}
                k if k.starts_with("x-") => {}
                other => self.warn(&a, format!("not mapped: a Tycho port has no {other}")),
            }
        }
        let target = target.ok_or_else(|| shape(at.full(), "a port needs a target"))?;
        let pairs = expand(target, published).map_err(|e| shape(at.full(), e))?;
        Ok(pairs
            .into_iter()
            .map(|(t, p)| PortUse {
                target: t,
                protocol: proto,
                published: p,
                host_ip: host_ip.clone(),
                name: name.clone(),
                at: at.clone(),
            })
            .collect())
    }

    /// The container's ports from its uses: one per port and protocol.
    fn port_specs(&mut self, uses: Vec<PortUse>) -> Vec<PortSpec> {
        let mut specs: Vec<PortSpec> = Vec::new();
        for u in uses {
            let mut expose = u.published.is_some();
            if expose && let Some(ip) = u.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                if matches!(ip, "127.0.0.1" | "::1" | "localhost") {
                    expose = false;
                    self.warn(
                        &u.at,
                        format!(
                            "published on the host's {ip} only: not exposed (reach port {} with `tycho tunnel`)",
                            u.target
                        ),
                    );
                } else if !matches!(ip, "0.0.0.0" | "::") {
                    self.warn(
                        &u.at,
                        format!("the host address {ip} is not kept: port {} is exposed on the System's Service", u.target),
                    );
                }
            }
            let node_port = match u.published {
                Some(Some(p)) if expose && (30000..=32767).contains(&p) => Some(p),
                _ => None,
            };
            let name = u.name.and_then(|n| {
                if is_iana_svc_name(&n) {
                    Some(n)
                } else {
                    self.warn(
                        &u.at.join("name"),
                        format!("{n:?} is no port name (at most 15 lowercase letters, digits and '-'): left out"),
                    );
                    None
                }
            });
            match specs
                .iter_mut()
                .find(|s| s.port == u.target && s.protocol == u.protocol)
            {
                Some(s) => {
                    if expose && !s.expose {
                        s.expose = true;
                    } else if u.published.is_some() {
                        self.warn(
                            &u.at,
                            format!(
                                "port {}/{} is published more than once: it is exposed once, on the System's Service",
                                u.target,
                                u.protocol.as_str()
                            ),
                        );
                    }
                    if s.node_port.is_none() {
                        s.node_port = node_port;
                    }
                    if s.name.is_none() {
                        s.name = name;
                    }
                }
                None => specs.push(PortSpec {
                    port: u.target,
                    name,
                    protocol: u.protocol,
                    expose,
                    node_port,
                }),
            }
        }
        specs
    }
}

// ---- resources ----

/// Docker's memory units (`512m`, `1g`, `1.5GB`: powers of 1024; bytes without a unit) as a quantity.
fn docker_memory(s: &str) -> Option<String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits);
    if num.is_empty() || num.parse::<f64>().is_err() {
        return None;
    }
    let unit = unit.trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let suffix = match unit {
        "" => "",
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        "t" => "Ti",
        "p" => "Pi",
        _ => return None,
    };
    let q = format!("{num}{suffix}");
    Quantity::parse(&q).ok().map(|_| q)
}

/// CPUs (`0.5`, `"1.25"`) as a quantity (`500m`, `1250m`, `2`).
fn cpu_quantity(s: &str) -> Option<String> {
    let f: f64 = s.trim().parse().ok()?;
    if !f.is_finite() || f <= 0.0 {
        return None;
    }
    let milli = (f * 1000.0).round();
    if !(1.0..=1e12).contains(&milli) {
        return None;
    }
    let milli = milli as i64;
    Some(if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    })
}

#[derive(Default)]
struct Res {
    limits: Resources,
    requests: Resources,
}

fn non_empty(r: Resources) -> Option<Resources> {
    (r != Resources::default()).then_some(r)
}

impl Cx<'_> {
    fn cpus(&mut self, v: &Value, at: &At) -> Result<Option<String>, ComposeError> {
        let Some(s) = self.text(v, at, Slot::Fixed)? else {
            return Ok(None);
        };
        let q = cpu_quantity(&s);
        if q.is_none() {
            self.warn(at, format!("{s:?} is no number of CPUs: left out"));
        }
        Ok(q)
    }

    fn memory(&mut self, v: &Value, at: &At) -> Result<Option<String>, ComposeError> {
        let Some(s) = self.text(v, at, Slot::Fixed)? else {
            return Ok(None);
        };
        let q = docker_memory(&s);
        if q.is_none() {
            self.warn(at, format!("{s:?} is no amount of memory: left out"));
        }
        Ok(q)
    }

    /// GPU device requests (`deploy.resources.reservations.devices`, or the service's `gpus`) → a count.
    fn gpu_devices(
        &mut self,
        v: &Value,
        at: &At,
        implied_gpu: bool,
    ) -> Result<Option<i32>, ComposeError> {
        let items = match v {
            Value::Array(items) => items.clone(),
            Value::String(s) if s == "all" => {
                self.warn(
                    at,
                    "\"all\" GPUs cannot be requested on Kubernetes: 1 GPU is requested (change limits.gpus)",
                );
                return Ok(Some(1));
            }
            Value::Null => return Ok(None),
            _ => return Err(shape(at.full(), "must be a list of device requests")),
        };
        let mut total: Option<i32> = None;
        for (i, item) in items.iter().enumerate() {
            let a = at.join(format!("[{i}]"));
            let Value::Object(d) = item else {
                return Err(shape(a.full(), "must be a mapping"));
            };
            let caps: Vec<String> = match d.get("capabilities") {
                Some(Value::Array(c)) => c
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            };
            if !implied_gpu && !caps.iter().any(|c| c == "gpu") {
                self.warn(
                    &a,
                    format!("a device with capabilities {caps:?} (no gpu) is not mapped: Tycho requests GPUs only"),
                );
                continue;
            }
            let mut n = 1;
            match (d.get("count"), d.get("device_ids")) {
                (Some(c), ids) => {
                    if ids.is_some() {
                        self.warn(&a.join("device_ids"), "not kept with count: Kubernetes picks the devices");
                    }
                    let c = self.text(c, &a.join("count"), Slot::Fixed)?.unwrap_or_default();
                    match c.parse::<i32>() {
                        Ok(k) if (0..=64).contains(&k) => n = k,
                        _ if c == "all" => self.warn(
                            &a.join("count"),
                            "\"all\" GPUs cannot be requested on Kubernetes: 1 GPU is requested (change limits.gpus)",
                        ),
                        _ => return Err(shape(a.join("count").full(), format!("{c:?} is not a GPU count"))),
                    }
                }
                (None, Some(Value::Array(ids))) => {
                    n = i32::try_from(ids.len()).unwrap_or(64).min(64);
                    self.warn(
                        &a.join("device_ids"),
                        format!("particular devices cannot be chosen: {n} GPU(s) are requested, Kubernetes picks which"),
                    );
                }
                _ => self.warn(
                    &a,
                    "no count: Compose gives all GPUs, which Kubernetes cannot request; 1 GPU is requested (change limits.gpus)",
                ),
            }
            for k in d.keys() {
                match k.as_str() {
                    "count" | "device_ids" | "capabilities" => {}
                    "driver" => {
                        if d.get("driver")
                            .and_then(Value::as_str)
                            .is_some_and(|x| x != "nvidia")
                        {
                            self.warn(
                                &a.join("driver"),
                                "not kept: GPUs are requested as the extended resource the operator is configured with (default nvidia.com/gpu)",
                            );
                        }
                    }
                    other => self.warn(&a.join(other), "not mapped: a GPU request is a count only"),
                }
            }
            total = Some(total.unwrap_or(0).saturating_add(n).min(64));
        }
        Ok(total)
    }

    fn resources(&mut self, svc: &Service<'_>) -> Result<Res, ComposeError> {
        let mut r = Res::default();
        let at = At::svc(&svc.name, "");
        for (k, v) in svc.body {
            let a = at.join(k);
            match k.as_str() {
                "cpus" => r.limits.cpus = self.cpus(v, &a)?,
                "mem_limit" => r.limits.memory = self.memory(v, &a)?,
                "mem_reservation" => r.requests.memory = self.memory(v, &a)?,
                "gpus" => r.limits.gpus = self.gpu_devices(v, &a, true)?,
                _ => {}
            }
        }
        let deploy = mapping(svc.body.get("deploy"), &at.join("deploy"))?;
        for (k, v) in deploy {
            let a = at.join("deploy").join(k);
            match k.as_str() {
                "resources" => {
                    for (rk, rv) in mapping(Some(v), &a)? {
                        let ra = a.join(rk);
                        let is_limit = match rk.as_str() {
                            "limits" => true,
                            "reservations" => false,
                            _ => {
                                self.warn(
                                    &ra,
                                    "not mapped: Tycho has limits and reservations (requests)",
                                );
                                continue;
                            }
                        };
                        let mut got = Resources::default();
                        for (fk, fv) in mapping(Some(rv), &ra)? {
                            let fa = ra.join(fk);
                            match fk.as_str() {
                                "cpus" => got.cpus = self.cpus(fv, &fa)?,
                                "memory" => got.memory = self.memory(fv, &fa)?,
                                "devices" if !is_limit => {
                                    got.gpus = self.gpu_devices(fv, &fa, false)?
                                }
                                "pids" => self.warn(&fa, "not mapped: Tycho sets no PID limit"),
                                _ => {
                                    self.warn(&fa, "not mapped: Tycho limits CPUs, memory and GPUs")
                                }
                            }
                        }
                        let dst = if is_limit {
                            &mut r.limits
                        } else {
                            &mut r.requests
                        };
                        dst.cpus = got.cpus.or(dst.cpus.take());
                        dst.memory = got.memory.or(dst.memory.take());
                        if got.gpus.is_some() {
                            // GPUs are a limit on Kubernetes (the request equals it).
                            r.limits.gpus = got.gpus;
                        }
                    }
                }
                "replicas" => {
                    if v.as_i64() != Some(1) {
                        self.warn(
                            &a,
                            "not mapped: the services share one pod, so one service cannot be scaled alone (spec.replicas scales the whole System)",
                        );
                    }
                }
                "restart_policy" => {
                    let cond = v.get("condition").and_then(Value::as_str).unwrap_or("any");
                    if cond != "any" {
                        self.warn(
                            &a,
                            format!("condition {cond:?} not kept: Kubernetes restarts the containers of a Deployment's pod always"),
                        );
                    }
                }
                other => self.warn(
                    &a,
                    format!("not mapped: deploy.{other} is for Swarm; Tycho has no equivalent"),
                ),
            }
        }
        Ok(r)
    }
}

// ---- environment and host names ----

/// Whether an environment variable's name says it holds a host (so a bare service name is one).
fn host_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["HOST", "SERVER", "ADDR"].iter().any(|w| k.contains(w))
}

/// Replace other services' names where they clearly are host names with `127.0.0.1`: the whole
/// value when `whole_is_host`, `name:PORT`, and the host of a URL (`scheme://[user@]name…`).
fn rewrite_hosts(text: &str, hosts: &BTreeSet<String>, whole_is_host: bool) -> Option<String> {
    if whole_is_host && hosts.contains(text) {
        return Some("127.0.0.1".into());
    }
    let mut names: Vec<&String> = hosts.iter().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let boundary_before = |c: Option<char>| {
        c.is_none_or(|c| {
            c.is_whitespace() || matches!(c, '=' | ',' | ';' | '\'' | '"' | '(' | '/' | '@')
        })
    };
    let mut out = String::new();
    let mut changed = false;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let before = text[..i].chars().next_back();
        let hit = names.iter().find(|n| {
            if !rest.starts_with(n.as_str()) || !boundary_before(before) {
                return false;
            }
            let after = &rest[n.len()..];
            let port = after
                .strip_prefix(':')
                .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_digit()));
            let in_url = text[..i].ends_with("//") || before == Some('@');
            let url_end = after.chars().next().is_none_or(|c| {
                c.is_whitespace()
                    || matches!(c, ':' | '/' | '?' | ',' | ';' | '\'' | '"' | ')' | '#')
            });
            port || (in_url && url_end)
        });
        match hit {
            Some(n) => {
                out.push_str("127.0.0.1");
                i += n.len();
                changed = true;
            }
            None => {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    changed.then_some(out)
}

impl Cx<'_> {
    fn rewrite(
        &mut self,
        value: String,
        hosts: &BTreeSet<String>,
        whole_is_host: bool,
        at: &At,
    ) -> String {
        match rewrite_hosts(&value, hosts, whole_is_host) {
            Some(new) => {
                self.note(
                    at,
                    format!(
                        "{value:?} → {new:?}: the services share one pod's network, so the others are on 127.0.0.1"
                    ),
                );
                new
            }
            None => value,
        }
    }

    /// A command or its arguments, with host names rewritten (`--db-host=db` too).
    fn rewrite_words(
        &mut self,
        words: Vec<String>,
        hosts: &BTreeSet<String>,
        at: &At,
    ) -> Vec<String> {
        words
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let a = at.join(format!("[{i}]"));
                match w.split_once('=') {
                    Some((k, v)) if host_key(k) && hosts.contains(v) => {
                        let new = format!("{k}=127.0.0.1");
                        self.note(
                            &a,
                            format!("{w:?} → {new:?}: the services share one pod's network, so the others are on 127.0.0.1"),
                        );
                        new
                    }
                    _ => self.rewrite(w, hosts, false, &a),
                }
            })
            .collect()
    }

    fn environment(
        &mut self,
        svc: &Service<'_>,
        hosts: &BTreeSet<String>,
    ) -> Result<Vec<EnvVar>, ComposeError> {
        let at = At::svc(&svc.name, "environment");
        let mut pairs: Vec<(String, Option<String>, At)> = Vec::new();
        match svc.body.get("environment") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let a = at.join(format!("[{i}]"));
                    let Value::String(s) = item else {
                        return Err(shape(a.full(), "must be KEY=VALUE or KEY"));
                    };
                    match s.split_once('=') {
                        Some((k, v)) => {
                            let v = self.interp(v, &a, Slot::Free)?;
                            pairs.push((k.to_string(), Some(v), a));
                        }
                        None => pairs.push((s.clone(), None, a)),
                    }
                }
            }
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let a = at.join(k);
                    let v = self.text(v, &a, Slot::Free)?;
                    pairs.push((k.clone(), v, a));
                }
            }
            Some(_) => return Err(shape(at.full(), "must be a list or a mapping")),
        }
        let mut env: Vec<EnvVar> = Vec::new();
        for (name, value, a) in pairs {
            if !is_env_name(&name) {
                self.warn(
                    &a,
                    format!(
                        "{name:?} is no environment variable name Kubernetes accepts: left out"
                    ),
                );
                continue;
            }
            let value = match value {
                Some(v) => v,
                // `KEY` alone: the value of KEY where Compose runs.
                None if self.opts.template => {
                    if is_var_name(&name) {
                        self.declare(&name, Some(String::new()), None, &a);
                        format!("${{{name}}}")
                    } else {
                        self.warn(&a, format!("{name} takes its value from the environment, which no template parameter can be named as: left out"));
                        continue;
                    }
                }
                None => match self.opts.env.get(&name) {
                    Some(v) => v.clone(),
                    None => {
                        self.warn(&a, format!("{name} takes its value from the environment, where it is not set: left out, as Compose leaves it"));
                        continue;
                    }
                },
            };
            let value = self.rewrite(value, hosts, host_key(&name), &a);
            if let Some(prev) = env.iter_mut().find(|e| e.name == name) {
                self.warn(
                    &a,
                    format!("{name} is given more than once: the last value is used"),
                );
                prev.value = Some(value);
            } else {
                env.push(EnvVar {
                    name,
                    value: Some(value),
                    value_from: None,
                });
            }
        }
        Ok(env)
    }
}

// ---- volumes, files ----

impl Cx<'_> {
    fn volumes(
        &mut self,
        compose: &Compose<'_>,
        svc: &Service<'_>,
    ) -> Result<Vec<VolumeSpec>, ComposeError> {
        let at = At::svc(&svc.name, "volumes");
        let items = match svc.body.get("volumes") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(shape(at.full(), "must be a list")),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let a = at.join(format!("[{i}]"));
            // (type, source, target, read_only, subpath)
            let (kind, source, target, read_only, sub_path) = match item {
                Value::String(s) => {
                    let s = self.interp(s, &a, Slot::Fixed)?;
                    let parts: Vec<&str> = s.splitn(3, ':').collect();
                    match parts.as_slice() {
                        [target] => ("volume".to_string(), None, target.to_string(), false, None),
                        [source, target, rest @ ..] => {
                            let mode = rest.first().copied().unwrap_or("");
                            let read_only = mode.split(',').any(|m| m == "ro");
                            for m in mode.split(',').filter(|m| !matches!(*m, "" | "ro" | "rw")) {
                                self.warn(&a, format!("mount option {m:?} not mapped"));
                            }
                            let kind =
                                if source.starts_with(['.', '/', '~']) || source.contains('/') {
                                    "bind"
                                } else {
                                    "volume"
                                };
                            (
                                kind.to_string(),
                                Some(source.to_string()),
                                target.to_string(),
                                read_only,
                                None,
                            )
                        }
                        [] => return Err(shape(a.full(), "empty volume")),
                    }
                }
                Value::Object(m) => {
                    let mut kind = "volume".to_string();
                    let mut source = None;
                    let mut target = String::new();
                    let mut read_only = false;
                    let mut sub_path = None;
                    for (k, v) in m {
                        let fa = a.join(k);
                        match k.as_str() {
                            "type" => kind = self.text(v, &fa, Slot::Fixed)?.unwrap_or_default(),
                            "source" => {
                                source = self.text(v, &fa, Slot::Fixed)?.filter(|s| !s.is_empty())
                            }
                            "target" => {
                                target = self.text(v, &fa, Slot::Fixed)?.unwrap_or_default()
                            }
                            "read_only" => read_only = v.as_bool().unwrap_or(false),
                            "volume" => {
                                for (vk, vv) in mapping(Some(v), &fa)? {
                                    match vk.as_str() {
                                        "subpath" => {
                                            sub_path = self.text(vv, &fa.join(vk), Slot::Fixed)?
                                        }
                                        other => self.warn(&fa.join(other), "not mapped"),
                                    }
                                }
                            }
                            "consistency" => {}
                            other => {
                                self.warn(&fa, format!("not mapped: a claim mount has no {other}"))
                            }
                        }
                    }
                    (kind, source, target, read_only, sub_path)
                }
                _ => return Err(shape(a.full(), "must be a string or a mapping")),
            };
            match (kind.as_str(), source) {
                ("volume", Some(name)) => {
                    let Some(claim) = compose.volumes.get(&name).cloned() else {
                        return Err(shape(
                            a.full(),
                            format!("the volume {name:?} is not declared under the top-level volumes"),
                        ));
                    };
                    if let Err(m) = check_clean_path(&target) {
                        self.warn(&a, format!("mount path {target:?} {m}: left out"));
                        continue;
                    }
                    self.note(
                        &a,
                        format!(
                            "volume {name:?} is mounted from the PersistentVolumeClaim {claim:?}, which must exist in the System's namespace (Tycho mounts existing claims and never creates one)"
                        ),
                    );
                    out.push(VolumeSpec {
                        claim,
                        mount_path: target,
                        sub_path,
                        read_only,
                        container: Some(svc.container.clone()),
                    });
                }
                ("volume", None) => self.warn(
                    &a,
                    format!("anonymous volume at {target:?} not mapped: the container's own filesystem is used (emptied when the pod is replaced)"),
                ),
                ("bind", source) => self.warn(
                    &a,
                    format!(
                        "bind mount of the host path {:?} at {target:?} not mapped: a System mounts no host paths (use a claim, or put small files under the container's files)",
                        source.unwrap_or_default()
                    ),
                ),
                (other, _) => self.warn(&a, format!("{other} mount at {target:?} not mapped: a System mounts claims only")),
            }
        }
        Ok(out)
    }

    fn files(
        &mut self,
        compose: &Compose<'_>,
        svc: &Service<'_>,
    ) -> Result<Vec<FileSpec>, ComposeError> {
        let mut out = Vec::new();
        for (kind, defs) in [("configs", compose.configs), ("secrets", compose.secrets)] {
            let at = At::svc(&svc.name, kind);
            let items = match svc.body.get(kind) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(items)) => items,
                Some(_) => return Err(shape(at.full(), "must be a list")),
            };
            for (i, item) in items.iter().enumerate() {
                let a = at.join(format!("[{i}]"));
                let (source, target, mode) = match item {
                    Value::String(s) => (s.clone(), None, None),
                    Value::Object(m) => {
                        let source = m
                            .get("source")
                            .and_then(Value::as_str)
                            .ok_or_else(|| shape(a.full(), "needs a source"))?
                            .to_string();
                        let target = match m.get("target") {
                            Some(t) => self.text(t, &a.join("target"), Slot::Fixed)?,
                            None => None,
                        };
                        let mode = match m.get("mode") {
                            Some(Value::Number(n)) => n.as_i64(),
                            Some(Value::String(s)) => {
                                i64::from_str_radix(s.trim_start_matches("0o"), 8).ok()
                            }
                            _ => None,
                        };
                        for k in m.keys().filter(|k| matches!(k.as_str(), "uid" | "gid")) {
                            self.warn(
                                &a.join(k),
                                "not mapped: pre-boot files belong to the pod's user",
                            );
                        }
                        (source, target, mode)
                    }
                    _ => return Err(shape(a.full(), "must be a name or a mapping")),
                };
                let target = match target {
                    Some(t) if t.starts_with('/') => t,
                    Some(t) if kind == "secrets" => format!("/run/secrets/{t}"),
                    Some(t) => format!("/{t}"),
                    None if kind == "secrets" => format!("/run/secrets/{source}"),
                    None => format!("/{source}"),
                };
                let def_at = At::top(format!("{kind}.{source}"));
                let Some(Value::Object(def)) = defs.get(&source) else {
                    return Err(shape(
                        a.full(),
                        format!("{source:?} is not declared under the top-level {kind}"),
                    ));
                };
                let content = if let Some(c) = def.get("content") {
                    self.text(c, &def_at.join("content"), Slot::Free)?
                } else if let Some(var) = def.get("environment").and_then(Value::as_str) {
                    if self.opts.template {
                        self.declare(var, None, None, &def_at.join("environment"));
                        Some(format!("${{{var}}}"))
                    } else if let Some(v) = self.opts.env.get(var) {
                        Some(v.clone())
                    } else {
                        self.warn(&a, format!("{kind} {source:?} comes from the variable {var}, which is not set: left out"));
                        continue;
                    }
                } else if let Some(file) = def.get("file").and_then(Value::as_str) {
                    self.warn(
                        &a,
                        format!("{kind} {source:?} is the file {file:?}, which is not read: give its text as content: (or put it under the container's files)"),
                    );
                    continue;
                } else {
                    self.warn(
                        &a,
                        format!("{kind} {source:?} is external (or has no content): not mapped; create it in Kubernetes and mount or reference it"),
                    );
                    continue;
                };
                if kind == "secrets" {
                    self.warn(
                        &a,
                        format!(
                            "secret {source:?} becomes a plain pre-boot file at {target:?}: Tycho keeps pre-boot files in a ConfigMap, not a Secret (for a real secret, use env valueFrom.secretKeyRef)"
                        ),
                    );
                }
                if let Err(m) = check_clean_path(&target) {
                    self.warn(&a, format!("target {target:?} {m}: left out"));
                    continue;
                }
                let mode = match mode {
                    Some(m) if (0..=0o777).contains(&m) => i32::try_from(m).ok(),
                    Some(m) => {
                        self.warn(
                            &a.join("mode"),
                            format!("{m} is no file mode: 0444 is used"),
                        );
                        Some(0o444)
                    }
                    // Compose's default.
                    None => Some(0o444),
                };
                out.push(FileSpec {
                    path: target,
                    content: Some(content.unwrap_or_default()),
                    binary_content: None,
                    mode,
                });
            }
        }
        Ok(out)
    }
}

// ---- healthcheck ----

/// What a health check command tests, when it is a plain HTTP GET or TCP connect of this container.
enum Check {
    Http { port: i32, path: String },
    Https { port: i32 },
    Tcp { port: i32 },
}

fn is_local_host(h: &str, own: &[&str]) -> bool {
    matches!(h, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]" | "::1") || own.contains(&h)
}

/// `http://localhost:8080/health` → port and path, when the host is this container.
fn local_url(url: &str, own: &[&str]) -> Option<Check> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        (true, url.strip_prefix("https://")?)
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if authority.starts_with('[') {
        match authority.split_once("]:") {
            Some((h, p)) => (format!("{h}]"), Some(p)),
            None => (authority.to_string(), None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if !is_local_host(&host, own) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| (1..=65535).contains(p))?,
        None if https => 443,
        None => 80,
    };
    if https {
        return Some(Check::Https { port });
    }
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Some(Check::Http { port, path })
}

/// Recognize `curl …URL`, `wget …URL` and `nc -z HOST PORT` (the first command of a `||`/`&&` chain).
fn recognize(words: &[String], own: &[&str]) -> Option<Check> {
    let cmd: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .take_while(|w| !matches!(*w, "||" | "&&" | ";" | "|"))
        .collect();
    let program = cmd.first()?.rsplit('/').next()?;
    match program {
        "curl" | "wget" => cmd
            .iter()
            .skip(1)
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .and_then(|u| local_url(u, own)),
        "nc" | "netcat" | "ncat" => {
            let flags_z = cmd
                .iter()
                .skip(1)
                .any(|w| w.starts_with('-') && w.contains('z'));
            let args: Vec<&&str> = cmd.iter().skip(1).filter(|w| !w.starts_with('-')).collect();
            match args.as_slice() {
                [host, port] if flags_z && is_local_host(host, own) => port
                    .parse()
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .map(|port| Check::Tcp { port }),
                _ => None,
            }
        }
        _ => None,
    }
}

impl Cx<'_> {
    fn readiness(
        &mut self,
        svc: &Service<'_>,
        own_hosts: &[&str],
        ports: &mut Vec<PortSpec>,
    ) -> Result<Option<Readiness>, ComposeError> {
        let at = At::svc(&svc.name, "healthcheck");
        let hc = mapping(svc.body.get("healthcheck"), &at)?;
        if hc.is_empty() || hc.get("disable").and_then(Value::as_bool) == Some(true) {
            return Ok(None);
        }
        let test_at = at.join("test");
        let words: Vec<String> = match hc.get("test") {
            None => {
                self.warn(
                    &at,
                    "no test: the image's HEALTHCHECK cannot be read here, so no readiness is set",
                );
                return Ok(None);
            }
            Some(Value::Array(items)) => {
                let mut w = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    w.push(
                        self.text(item, &test_at.join(format!("[{i}]")), Slot::Fixed)?
                            .unwrap_or_default(),
                    );
                }
                match w.first().map(String::as_str) {
                    Some("NONE") => return Ok(None),
                    Some("CMD") => w.split_off(1),
                    Some("CMD-SHELL") => {
                        let line = w.get(1).cloned().unwrap_or_default();
                        split_words(&line).map_err(|m| shape(test_at.full(), m))?
                    }
                    _ => {
                        return Err(shape(
                            test_at.full(),
                            "must start with CMD, CMD-SHELL or NONE",
                        ));
                    }
                }
            }
            Some(v) => {
                let line = self.text(v, &test_at, Slot::Fixed)?.unwrap_or_default();
                split_words(&line).map_err(|m| shape(test_at.full(), m))?
            }
        };
        let shown = words.join(" ");
        let timing: Vec<&str> = [
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
        ]
        .into_iter()
        .filter(|k| hc.contains_key(*k))
        .collect();
        for k in hc.keys() {
            if !matches!(
                k.as_str(),
                "test"
                    | "disable"
                    | "interval"
                    | "timeout"
                    | "retries"
                    | "start_period"
                    | "start_interval"
            ) {
                self.warn(&at.join(k), "not mapped");
            }
        }
        let check = recognize(&words, own_hosts);
        let (readiness, port) = match check {
            Some(Check::Http { port, path }) => (
                Readiness {
                    http: Some(HttpCheck {
                        path,
                        port,
                        host: None,
                    }),
                    tcp: None,
                },
                port,
            ),
            Some(Check::Https { port }) => {
                self.warn(
                    &test_at,
                    format!("{shown:?} checks HTTPS, which a readiness check cannot: a TCP connect to port {port} is checked instead"),
                );
                (
                    Readiness {
                        http: None,
                        tcp: Some(TcpCheck { port }),
                    },
                    port,
                )
            }
            Some(Check::Tcp { port }) => (
                Readiness {
                    http: None,
                    tcp: Some(TcpCheck { port }),
                },
                port,
            ),
            None => {
                let hint = match ports.as_slice() {
                    [p] => format!(" (for example readiness: {{tcp: {{port: {}}}}})", p.port),
                    _ => String::new(),
                };
                self.warn(
                    &test_at,
                    format!(
                        "{shown:?} runs a command; Tycho's readiness is an HTTP GET or a TCP connect, which cannot be inferred from a command: no readiness is set, add one by hand{hint}"
                    ),
                );
                return Ok(None);
            }
        };
        if !timing.is_empty() {
            self.warn(
                &at,
                format!(
                    "{} not kept: Kubernetes' probe defaults apply",
                    timing.join(", ")
                ),
            );
        }
        if !ports.iter().any(|p| p.port == port) {
            // The check's port is one the container listens on, though Compose did not list it.
            ports.push(PortSpec {
                port,
                name: None,
                protocol: Protocol::TCP,
                expose: false,
                node_port: None,
            });
            self.note(
                &test_at,
                format!("port {port} (checked by the healthcheck) is added as an unexposed port"),
            );
        }
        Ok(Some(readiness))
    }
}

// ---- the System ----

/// Service keys handled by [`Cx::build`]; any other is warned about.
const HANDLED: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "expose",
    "working_dir",
    "deploy",
    "cpus",
    "mem_limit",
    "mem_reservation",
    "gpus",
    "volumes",
    "healthcheck",
    "configs",
    "secrets",
    "labels",
    "annotations",
    "profiles",
];

impl Cx<'_> {
    fn build(&mut self, compose: &Compose<'_>) -> Result<SystemSpec, ComposeError> {
        let mut spec = SystemSpec {
            replicas: 1,
            ..SystemSpec::default()
        };
        let mut used_ports: BTreeMap<(i32, &'static str), String> = BTreeMap::new();
        let mut published: BTreeMap<(i32, &'static str), String> = BTreeMap::new();
        let mut label_from: BTreeMap<String, String> = BTreeMap::new();
        for svc in &compose.services {
            let at = At::svc(&svc.name, "");
            let image = match svc.body.get("image") {
                Some(v) => self
                    .text(v, &at.join("image"), Slot::Free)?
                    .filter(|s| !s.is_empty()),
                None => None,
            };
            let Some(image) = image else {
                return Err(ComposeError::NoImage {
                    service: svc.name.clone(),
                });
            };
            let mut c = ContainerSpec {
                name: svc.container.clone(),
                image,
                ..ContainerSpec::default()
            };
            if let Some(e) = svc.body.get("entrypoint") {
                let a = at.join("entrypoint");
                if let Some(words) = self.words(e, &a)? {
                    if words.is_empty() {
                        self.warn(&a, "an empty entrypoint (clearing the image's) cannot be expressed: the image's entrypoint is used");
                    }
                    c.command = self.rewrite_words(words, &compose.hosts, &a);
                }
            }
            if let Some(cmd) = svc.body.get("command") {
                let a = at.join("command");
                if let Some(words) = self.words(cmd, &a)? {
                    c.args = self.rewrite_words(words, &compose.hosts, &a);
                }
            }
            c.env = self.environment(svc, &compose.hosts)?;
            if let Some(wd) = svc.body.get("working_dir") {
                let a = at.join("working_dir");
                if let Some(wd) = self.text(wd, &a, Slot::Fixed)?.filter(|s| !s.is_empty()) {
                    if wd.starts_with('/') {
                        c.working_dir = Some(wd);
                    } else {
                        self.warn(&a, format!("{wd:?} is not an absolute path: left out"));
                    }
                }
            }
            let uses = self.ports(svc)?;
            // Published host ports clash in Compose too; say so with both names.
            for u in &uses {
                let Some(Some(port)) = u.published else {
                    continue;
                };
                let key = (port, u.protocol.as_str());
                match published.get(&key) {
                    Some(first) if first != &svc.name => {
                        return Err(ComposeError::PortConflict {
                            what: "publish",
                            port,
                            protocol: u.protocol.as_str(),
                            first: first.clone(),
                            second: svc.name.clone(),
                        });
                    }
                    _ => {
                        published.insert(key, svc.name.clone());
                    }
                }
            }
            let mut ports = self.port_specs(uses);
            let mut own: Vec<&str> = vec![svc.name.as_str()];
            for k in ["hostname", "container_name"] {
                if let Some(h) = svc.body.get(k).and_then(Value::as_str) {
                    own.push(h);
                }
            }
            c.readiness = self.readiness(svc, &own, &mut ports)?;
            for p in &ports {
                let key = (p.port, p.protocol.as_str());
                if let Some(first) = used_ports.insert(key, svc.name.clone()) {
                    return Err(ComposeError::PortConflict {
                        what: "use",
                        port: p.port,
                        protocol: p.protocol.as_str(),
                        first,
                        second: svc.name.clone(),
                    });
                }
            }
            if ports.len() > 16 {
                return Err(ComposeError::TooMany {
                    field: format!(
                        "spec.containers[{}].ports (services.{})",
                        spec.containers.len(),
                        svc.name
                    ),
                    got: ports.len(),
                    max: 16,
                });
            }
            c.ports = ports;
            let res = self.resources(svc)?;
            c.limits = non_empty(res.limits);
            c.requests = non_empty(res.requests);
            c.files = self.files(compose, svc)?;
            for v in self.volumes(compose, svc)? {
                spec.volumes.push(v);
            }
            self.labels(svc, &mut spec, &mut label_from)?;
            self.other_keys(svc);
            spec.containers.push(c);
        }
        self.merge_volumes(&mut spec);
        for (field, got, max) in [
            ("spec.volumes", spec.volumes.len(), 16),
            ("spec.labels", spec.labels.len(), 64),
        ] {
            if got > max {
                return Err(ComposeError::TooMany {
                    field: field.into(),
                    got,
                    max,
                });
            }
        }
        for (i, c) in spec.containers.iter().enumerate() {
            for (field, got, max) in [
                ("command", c.command.len(), 64),
                ("args", c.args.len(), 256),
                ("env", c.env.len(), 128),
                ("files", c.files.len(), 64),
            ] {
                if got > max {
                    return Err(ComposeError::TooMany {
                        field: format!("spec.containers[{i}].{field}"),
                        got,
                        max,
                    });
                }
            }
        }
        Ok(spec)
    }

    /// One mount per claim and path: a claim mounted at the same path by several services is mounted
    /// into every container (a System's volume list is keyed by claim and path).
    fn merge_volumes(&mut self, spec: &mut SystemSpec) {
        let mut merged: Vec<(VolumeSpec, Vec<String>)> = Vec::new();
        for v in std::mem::take(&mut spec.volumes) {
            let who = v.container.clone().unwrap_or_default();
            match merged
                .iter_mut()
                .find(|(m, _)| m.claim == v.claim && m.mount_path == v.mount_path)
            {
                Some((m, users)) => {
                    if m.sub_path != v.sub_path {
                        self.warn(
                            &At::svc(&who, "volumes"),
                            format!(
                                "the claim {:?} is mounted at {:?} by another service with another sub-path: one mount per claim and path, the first sub-path is used",
                                v.claim, v.mount_path
                            ),
                        );
                    }
                    m.container = None;
                    m.read_only &= v.read_only;
                    users.push(who);
                }
                None => merged.push((v, vec![who])),
            }
        }
        let all: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
        for (v, users) in merged {
            if v.container.is_none() {
                let others: Vec<&String> = all.iter().filter(|c| !users.contains(c)).collect();
                if !others.is_empty() {
                    self.warn(
                        &At::top("volumes"),
                        format!(
                            "the claim {:?} is mounted at {:?} by several services ({}), so it is mounted into every container, {} too",
                            v.claim,
                            v.mount_path,
                            users.join(", "),
                            others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            spec.volumes.push(v);
        }
    }

    fn labels(
        &mut self,
        svc: &Service<'_>,
        spec: &mut SystemSpec,
        label_from: &mut BTreeMap<String, String>,
    ) -> Result<(), ComposeError> {
        for kind in ["labels", "annotations"] {
            let at = At::svc(&svc.name, kind);
            let mut pairs = Vec::new();
            match svc.body.get(kind) {
                None | Some(Value::Null) => continue,
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let a = at.join(k);
                        let slot = if kind == "labels" {
                            Slot::Fixed
                        } else {
                            Slot::Free
                        };
                        pairs.push((k.clone(), self.text(v, &a, slot)?.unwrap_or_default(), a));
                    }
                }
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let a = at.join(format!("[{i}]"));
                        let s = self.text(item, &a, Slot::Fixed)?.unwrap_or_default();
                        let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                        pairs.push((k.to_string(), v.to_string(), a));
                    }
                }
                Some(_) => return Err(shape(at.full(), "must be a list or a mapping")),
            }
            for (k, v, a) in pairs {
                if let Err(m) = check_qualified_name(&k) {
                    self.warn(
                        &a,
                        format!("{k:?} is no Kubernetes label or annotation key ({m}): left out"),
                    );
                    continue;
                }
                if k.starts_with("tycho.dev/")
                    || k == crate::LABEL_MANAGED_BY
                    || k == crate::LABEL_NAME
                {
                    self.warn(&a, format!("{k:?} is reserved for Tycho: left out"));
                    continue;
                }
                let as_label = kind == "labels" && is_label_value(&v);
                if kind == "labels" && !as_label {
                    self.note(&a, "the value is no label value: kept as an annotation of the System's objects");
                }
                let map = if as_label {
                    &mut spec.labels
                } else {
                    &mut spec.annotations
                };
                if let Some(old) = map.get(&k)
                    && old != &v
                {
                    let first = label_from.get(&k).cloned().unwrap_or_default();
                    self.warn(
                        &a,
                        format!("{k:?} is {old:?} in services.{first}: the labels of all services go on the one pod, and the first value is kept"),
                    );
                    continue;
                }
                label_from
                    .entry(k.clone())
                    .or_insert_with(|| svc.name.clone());
                map.insert(k, v);
            }
        }
        Ok(())
    }

    /// Warn about every service key that is not mapped.
    fn other_keys(&mut self, svc: &Service<'_>) {
        for (k, v) in svc.body {
            if HANDLED.contains(&k.as_str()) || k.starts_with("x-") {
                continue;
            }
            let at = At::svc(&svc.name, k.as_str());
            let message: String = match k.as_str() {
                "build" => "not mapped: Tycho runs images only; the image named by `image` is used (build and push it first)".into(),
                "restart" => {
                    let policy = match v {
                        Value::Bool(false) => "no".to_string(),
                        other => other.as_str().unwrap_or("").to_string(),
                    };
                    if matches!(policy.as_str(), "always" | "unless-stopped") {
                        continue;
                    }
                    format!("{policy:?} not kept: Kubernetes restarts the containers of a Deployment's pod always")
                }
                "depends_on" => "not mapped: the containers of one pod start together, in no order (conditions such as service_healthy are not kept either); make each service wait for what it needs".into(),
                "networks" | "network_mode" | "links" | "external_links" => {
                    "not mapped: the services run as containers of one pod and share its network (they reach each other on 127.0.0.1, not by name)".into()
                }
                "hostname" | "domainname" | "container_name" => {
                    format!("not mapped: the container is named {:?} and the pod has its own host name", svc.container)
                }
                "extends" => "not followed: the service is imported as written here (merge it with `docker compose config` first)".into(),
                "env_file" => "not read: put its variables under environment (or in a Secret, with env valueFrom)".into(),
                "user" => "not mapped: Tycho sets no per-container user (spec.securityContext sets the pod's)".into(),
                "shm_size" => "not mapped: Tycho sets no /dev/shm size".into(),
                "privileged" | "cap_add" | "cap_drop" | "security_opt" => {
                    "not mapped: Tycho grants no container privileges or capabilities".into()
                }
                "devices" => "not mapped: Tycho passes no host devices (GPUs go through deploy.resources.reservations.devices)".into(),
                "tmpfs" => "not mapped: a System mounts claims only".into(),
                "stop_grace_period" | "stop_signal" => "not mapped: Kubernetes' termination defaults apply".into(),
                "scale" => "not mapped: the services share one pod, so one service cannot be scaled alone".into(),
                "platform" => "not mapped: Kubernetes picks the image for the node's platform".into(),
                "pull_policy" => "not mapped: Kubernetes' image pull policy defaults apply".into(),
                "runtime" => "not mapped: GPUs are requested through deploy.resources.reservations.devices".into(),
                other => format!("not mapped: Tycho has no equivalent of {other}"),
            };
            self.warn(&at, message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ImportOptions {
        ImportOptions {
            name: Some("stack".into()),
            ..ImportOptions::default()
        }
    }

    fn system(yaml: &str, o: &ImportOptions) -> (System, Vec<Warning>, Vec<Warning>) {
        let imported = import(yaml, o).unwrap_or_else(|e| panic!("{e}"));
        match imported.object {
            ImportedObject::System(s) => (*s, imported.warnings, imported.notes),
            ImportedObject::Template(_) => panic!("a template"),
        }
    }

    fn template(yaml: &str) -> (SystemTemplate, Vec<Warning>) {
        let o = ImportOptions {
            template: true,
            ..opts()
        };
        let imported = import(yaml, &o).unwrap_or_else(|e| panic!("{e}"));
        match imported.object {
            ImportedObject::Template(t) => (*t, imported.warnings),
            ImportedObject::System(_) => panic!("a System"),
        }
    }

    fn has(ws: &[Warning], service: Option<&str>, field: &str, text: &str) -> bool {
        ws.iter().any(|w| {
            w.service.as_deref() == service && w.field == field && w.message.contains(text)
        })
    }

    #[track_caller]
    fn assert_has(ws: &[Warning], service: Option<&str>, field: &str, text: &str) {
        assert!(
            has(ws, service, field, text),
            "no warning {service:?} {field} ~ {text:?} in {ws:#?}"
        );
    }

    #[test]
    fn services_become_containers_in_file_order_with_command_entrypoint_and_env() {
        let (s, w, _) = system(
            r#"
services:
  zeta:
    image: busybox:1.37
    entrypoint: /bin/sh -c
    command: ["echo hi; sleep 1000"]
    environment:
      - A=1
      - B="quoted"
    working_dir: /work
  alpha:
    image: redis:7
    command: redis-server --appendonly 'yes please'
    environment:
      C: 3
      D: true
      E: "x y"
"#,
            &opts(),
        );
        assert!(w.is_empty(), "{w:#?}");
        let names: Vec<&str> = s.spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        let z = &s.spec.containers[0];
        assert_eq!(z.command, ["/bin/sh", "-c"]);
        assert_eq!(z.args, ["echo hi; sleep 1000"]);
        assert_eq!(z.working_dir.as_deref(), Some("/work"));
        let env: Vec<(&str, &str)> = z
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "\"quoted\"")]);
        let a = &s.spec.containers[1];
        assert!(a.command.is_empty());
        assert_eq!(a.args, ["redis-server", "--appendonly", "yes please"]);
        let env: Vec<(&str, &str)> = a
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(env, [("C", "3"), ("D", "true"), ("E", "x y")]);
        assert_eq!(s.metadata.name.as_deref(), Some("stack"));
    }

    #[test]
    fn interpolation_from_the_environment_names_unset_variables() {
        let o = ImportOptions {
            env: [
                ("TAG".to_string(), "1.27".to_string()),
                ("EMPTY".into(), String::new()),
            ]
            .into_iter()
            .collect(),
            ..opts()
        };
        let (s, w, _) = system(
            r#"
services:
  web:
    image: nginx:${TAG}
    environment:
      A: ${MISSING}
      B: ${EMPTY:-fallback}
      C: ${EMPTY-kept-empty}
      D: $$HOME and $TAG
      E: ${NOPE:-${TAG}-nested}
      F: ${TAG:+set}
      G: ${NOPE:+set}
"#,
            &o,
        );
        let c = &s.spec.containers[0];
        assert_eq!(c.image, "nginx:1.27");
        let v = |n: &str| {
            c.env
                .iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(v("A").as_deref(), Some(""));
        assert_eq!(v("B").as_deref(), Some("fallback"));
        assert_eq!(v("C").as_deref(), Some(""));
        assert_eq!(v("D").as_deref(), Some("$HOME and 1.27"));
        assert_eq!(v("E").as_deref(), Some("1.27-nested"));
        assert_eq!(v("F").as_deref(), Some("set"));
        assert_eq!(v("G").as_deref(), Some(""));
        assert_has(&w, None, "${MISSING}", "services.web.environment.A");
        assert_eq!(w.len(), 1, "{w:#?}");
    }

    #[test]
    fn required_variables_and_bad_dollars_are_errors() {
        let e = import(
            "services: {web: {image: \"${IMG:?give an image}\"}}",
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("services.web.image"), "{e}");
        assert!(e.to_string().contains("give an image"), "{e}");
        let e = import("services: {web: {image: \"nginx$ 1\"}}", &opts()).unwrap_err();
        assert!(e.to_string().contains("$$"), "{e}");
        let e = import("services: {web: {image: \"${A\"}}", &opts()).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }

    #[test]
    fn a_template_turns_variables_into_parameters() {
        let (t, w) = template(
            r#"
name: My_Stack
services:
  web:
    image: ${IMAGE:-nginx}:${TAG}
    environment:
      PASSWORD: ${PASSWORD:?the admin password}
      MODE: prod-${TAG}
      PASSTHROUGH:
    ports:
      - "${PORT:-8080}:80"
    deploy:
      resources:
        limits:
          memory: ${MEM:-1g}
"#,
        );
        assert_eq!(t.metadata.name.as_deref(), Some("stack"));
        let c = &t.spec.system.containers[0];
        assert_eq!(c.image, "${IMAGE}:${TAG}");
        let v = |n: &str| {
            c.env
                .iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(v("PASSWORD").as_deref(), Some("${PASSWORD}"));
        assert_eq!(v("MODE").as_deref(), Some("prod-${TAG}"));
        assert_eq!(v("PASSTHROUGH").as_deref(), Some("${PASSTHROUGH}"));
        assert_eq!(c.ports[0].port, 80);
        assert_eq!(
            c.limits.as_ref().and_then(|l| l.memory.as_deref()),
            Some("1Gi")
        );
        let p: Vec<(&str, Option<&Value>)> = t
            .spec
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.default.as_ref()))
            .collect();
        let s = |x: &str| Value::String(x.into());
        assert_eq!(
            p,
            [
                ("IMAGE", Some(&s("nginx"))),
                ("TAG", None),
                ("PASSWORD", None),
                ("PASSTHROUGH", Some(&s(""))),
            ]
        );
        let pw = &t.spec.parameters[2];
        assert!(
            pw.description
                .as_deref()
                .is_some_and(|d| d.contains("the admin password")
                    && d.contains("services.web.environment.PASSWORD")),
            "{pw:?}"
        );
        // Ports and quantities have formats the CRD checks: their defaults are used, and said so.
        assert_has(
            &w,
            Some("web"),
            "deploy.resources.limits.memory",
            "its default \"1g\" is used",
        );
        assert!(w.iter().any(|w| w.message.contains("${PORT}")), "{w:#?}");
        let d = t.spec.description.as_deref().unwrap_or("");
        assert!(d.contains("services: web"), "{d}");
    }

    #[test]
    fn a_template_refuses_a_variable_without_default_where_no_parameter_fits() {
        let o = ImportOptions {
            template: true,
            ..opts()
        };
        let e = import(
            "services: {web: {image: nginx, ports: [\"${PORT}:80\"]}}",
            &o,
        )
        .unwrap_err();
        assert!(e.to_string().contains("services.web.ports[0]"), "{e}");
        assert!(e.to_string().contains("${PORT:-value}"), "{e}");
    }

    #[test]
    fn ports_short_and_long_ranges_protocols_and_host_addresses() {
        let (s, w, _) = system(
            r#"
services:
  web:
    image: nginx
    ports:
      - 80
      - "8443:443"
      - "127.0.0.1:9000:9000"
      - "9090-9091:8080-8081"
      - "5353:53/udp"
      - "[::1]:6001:6001"
      - "30080:3000"
      - target: 7000
        published: "7001"
        protocol: sctp
        name: metrics
        app_protocol: http
    expose:
      - "5000"
      - 6000-6001/udp
"#,
            &opts(),
        );
        let ports: Vec<(i32, &str, bool, Option<i32>)> = s.spec.containers[0]
            .ports
            .iter()
            .map(|p| (p.port, p.protocol.as_str(), p.expose, p.node_port))
            .collect();
        assert_eq!(
            ports,
            [
                (80, "TCP", true, None),
                (443, "TCP", true, None),
                (9000, "TCP", false, None),
                (8080, "TCP", true, None),
                (8081, "TCP", true, None),
                (53, "UDP", true, None),
                (6001, "TCP", false, None),
                (3000, "TCP", true, Some(30080)),
                (7000, "SCTP", true, None),
                (5000, "TCP", false, None),
                (6000, "UDP", false, None),
                (6001, "UDP", false, None),
            ]
        );
        assert_eq!(
            s.spec.containers[0].ports[8].name.as_deref(),
            Some("metrics")
        );
        assert_has(&w, Some("web"), "ports[2]", "127.0.0.1 only: not exposed");
        assert_has(&w, Some("web"), "ports[5]", "::1 only");
        assert_has(&w, Some("web"), "ports[7].app_protocol", "not mapped");
        assert_eq!(w.len(), 3, "{w:#?}");
    }

    #[test]
    fn malformed_ports_are_errors_naming_the_entry() {
        for bad in ["\"80/quic\"", "\"a:b\"", "\"1:2:3:4\"", "\"70000\""] {
            let e = import(
                &format!("services: {{web: {{image: x, ports: [{bad}]}}}}"),
                &opts(),
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("services.web.ports[0]"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn two_services_with_the_same_port_are_an_error_naming_both() {
        let e = import(
            "services: {a: {image: x, ports: [\"8080:80\"]}, b: {image: y, ports: [\"8081:80\"]}}",
            &opts(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("services.a and services.b both use port 80/TCP"),
            "{m}"
        );
        let e = import(
            "services: {a: {image: x, ports: [\"8080:80\"]}, b: {image: y, ports: [\"8080:81\"]}}",
            &opts(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("publish port 8080/TCP") && m.contains("services.a and services.b"),
            "{m}"
        );
        // An interpolated published port is compared after interpolation.
        let e = import(
            "services: {a: {image: x, ports: [\"8080:80\"]}, b: {image: y, ports: [\"${P:-8080}:81\"]}}",
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("publish port 8080/TCP"), "{e}");
        // Different protocols are different ports.
        let (s, _, _) = system(
            "services: {a: {image: x, ports: [\"53:53/udp\"]}, b: {image: y, ports: [\"53:53\"]}}",
            &opts(),
        );
        assert_eq!(s.spec.containers.len(), 2);
    }

    #[test]
    fn resources_map_to_limits_and_requests_with_gpus() {
        let (s, w, _) = system(
            r#"
services:
  nb:
    image: quay.io/jupyter/pytorch-notebook:cuda12-latest
    deploy:
      resources:
        limits:
          cpus: "2.5"
          memory: 8G
          pids: 100
        reservations:
          cpus: 0.5
          memory: 512m
          devices:
            - driver: nvidia
              count: 2
              capabilities: [gpu]
  side:
    image: busybox
    cpus: 0.25
    mem_limit: 1.5gb
    mem_reservation: "268435456"
    gpus: all
"#,
            &opts(),
        );
        let nb = &s.spec.containers[0];
        let l = nb
            .limits
            .as_ref()
            .map(|l| (l.cpus.as_deref(), l.memory.as_deref(), l.gpus));
        assert_eq!(l, Some((Some("2500m"), Some("8Gi"), Some(2))));
        let r = nb
            .requests
            .as_ref()
            .map(|l| (l.cpus.as_deref(), l.memory.as_deref(), l.gpus));
        assert_eq!(r, Some((Some("500m"), Some("512Mi"), None)));
        let side = &s.spec.containers[1];
        let l = side
            .limits
            .as_ref()
            .map(|l| (l.cpus.as_deref(), l.memory.as_deref(), l.gpus));
        assert_eq!(l, Some((Some("250m"), Some("1.5Gi"), Some(1))));
        assert_eq!(
            side.requests.as_ref().and_then(|r| r.memory.as_deref()),
            Some("268435456")
        );
        assert_has(
            &w,
            Some("nb"),
            "deploy.resources.limits.pids",
            "no PID limit",
        );
        assert_has(&w, Some("side"), "gpus", "1 GPU is requested");
        assert_eq!(w.len(), 2, "{w:#?}");
    }

    #[test]
    fn gpu_device_ids_and_other_capabilities() {
        let (s, w, _) = system(
            r#"
services:
  a:
    image: x
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu, utility]
              device_ids: ["0", "3"]
            - capabilities: [tpu]
              count: 1
"#,
            &opts(),
        );
        assert_eq!(
            s.spec.containers[0].limits.as_ref().and_then(|l| l.gpus),
            Some(2)
        );
        assert_has(
            &w,
            Some("a"),
            "deploy.resources.reservations.devices[0].device_ids",
            "2 GPU(s)",
        );
        assert_has(
            &w,
            Some("a"),
            "deploy.resources.reservations.devices[1]",
            "\"tpu\"",
        );
    }

    #[test]
    fn memory_and_cpu_units() {
        assert_eq!(docker_memory("512M").as_deref(), Some("512Mi"));
        assert_eq!(docker_memory("1g").as_deref(), Some("1Gi"));
        assert_eq!(docker_memory("2GB").as_deref(), Some("2Gi"));
        assert_eq!(docker_memory("64KiB").as_deref(), Some("64Ki"));
        assert_eq!(docker_memory("1000").as_deref(), Some("1000"));
        assert_eq!(docker_memory("lots"), None);
        assert_eq!(docker_memory("1x"), None);
        assert_eq!(cpu_quantity("0.5").as_deref(), Some("500m"));
        assert_eq!(cpu_quantity("2").as_deref(), Some("2"));
        assert_eq!(cpu_quantity("0.0001"), None);
        assert_eq!(cpu_quantity("-1"), None);
    }

    #[test]
    fn named_volumes_become_claims_others_warn() {
        let (s, w, n) = system(
            r#"
services:
  db:
    image: postgres:17
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./init.sql:/docker-entrypoint-initdb.d/init.sql:ro
      - /var/lib/cache
      - type: volume
        source: shared
        target: /shared
        read_only: true
        volume: {subpath: db}
      - type: tmpfs
        target: /tmp
  web:
    image: nginx
    volumes:
      - shared:/srv:ro
volumes:
  pgdata:
  shared:
    name: Team_Shared
    driver: local
"#,
            &opts(),
        );
        type Mount<'a> = (&'a str, &'a str, bool, Option<&'a str>, Option<&'a str>);
        let v: Vec<Mount<'_>> = s
            .spec
            .volumes
            .iter()
            .map(|v| {
                (
                    v.claim.as_str(),
                    v.mount_path.as_str(),
                    v.read_only,
                    v.sub_path.as_deref(),
                    v.container.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            v,
            [
                (
                    "pgdata",
                    "/var/lib/postgresql/data",
                    false,
                    None,
                    Some("db")
                ),
                ("team-shared", "/shared", true, Some("db"), Some("db")),
                ("team-shared", "/srv", true, None, Some("web")),
            ]
        );
        assert_has(&w, Some("db"), "volumes[1]", "host path \"./init.sql\"");
        assert_has(
            &w,
            Some("db"),
            "volumes[2]",
            "anonymous volume at \"/var/lib/cache\"",
        );
        assert_has(&w, Some("db"), "volumes[4]", "tmpfs mount");
        assert_has(&w, None, "volumes.shared.driver", "not kept");
        assert_has(
            &n,
            Some("db"),
            "volumes[0]",
            "PersistentVolumeClaim \"pgdata\", which must exist",
        );
        assert_has(&n, None, "volumes.shared", "\"team-shared\"");
    }

    #[test]
    fn one_claim_at_one_path_in_several_services_is_one_mount() {
        let (s, w, _) = system(
            r#"
services:
  a: {image: x, volumes: ["data:/data"]}
  b: {image: y, volumes: ["data:/data"]}
  c: {image: z}
volumes: {data: {}}
"#,
            &opts(),
        );
        assert_eq!(s.spec.volumes.len(), 1);
        assert_eq!(s.spec.volumes[0].container, None);
        assert_has(&w, None, "volumes", "c too");
    }

    #[test]
    fn an_undeclared_volume_is_an_error() {
        let e = import(
            "services: {a: {image: x, volumes: [\"data:/data\"]}}",
            &opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("services.a.volumes[0]"), "{e}");
    }

    #[test]
    fn healthchecks_map_where_they_can() {
        let (s, w, n) = system(
            r#"
services:
  web:
    image: nginx
    ports: ["80:80"]
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://localhost/healthz?full=1 || exit 1"]
      interval: 10s
  api:
    image: api
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:8080/ready"]
  db:
    image: postgres
    healthcheck:
      test: pg_isready -U postgres
  cache:
    image: redis
    ports: ["6379"]
    healthcheck:
      test: nc -z localhost 6379
  tls:
    image: x
    healthcheck:
      test: ["CMD", "curl", "-k", "https://localhost:8443/"]
  off:
    image: y
    healthcheck:
      disable: true
"#,
            &opts(),
        );
        let r = |i: usize| s.spec.containers[i].readiness.clone();
        assert_eq!(
            r(0).and_then(|r| r.http).map(|h| (h.path, h.port)),
            Some(("/healthz?full=1".into(), 80))
        );
        assert_eq!(
            r(1).and_then(|r| r.http).map(|h| (h.path, h.port)),
            Some(("/ready".into(), 8080))
        );
        // The check's port is added (unexposed) so the readiness names one of the container's ports.
        assert_eq!(s.spec.containers[1].ports[0].port, 8080);
        assert!(!s.spec.containers[1].ports[0].expose);
        assert_has(&n, Some("api"), "healthcheck.test", "port 8080");
        assert_eq!(r(2), None);
        assert_has(
            &w,
            Some("db"),
            "healthcheck.test",
            "cannot be inferred from a command",
        );
        assert_eq!(r(3).and_then(|r| r.tcp).map(|t| t.port), Some(6379));
        assert_eq!(r(4).and_then(|r| r.tcp).map(|t| t.port), Some(8443));
        assert_has(&w, Some("tls"), "healthcheck.test", "checks HTTPS");
        assert_eq!(r(5), None);
        assert_has(&w, Some("web"), "healthcheck", "interval not kept");
    }

    #[test]
    fn inline_configs_and_secrets_become_pre_boot_files() {
        let o = ImportOptions {
            env: [("TOKEN".to_string(), "s3cr3t".to_string())]
                .into_iter()
                .collect(),
            ..opts()
        };
        let (s, w, _) = system(
            r#"
services:
  web:
    image: nginx
    configs:
      - site
      - source: site
        target: /etc/nginx/conf.d/default.conf
        mode: 0440
      - source: fromfile
    secrets:
      - token
configs:
  site:
    content: |
      server { listen 80; }
  fromfile:
    file: ./nginx.conf
secrets:
  token:
    environment: TOKEN
"#,
            &o,
        );
        let f: Vec<(&str, &str, Option<i32>)> = s.spec.containers[0]
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_deref().unwrap_or(""), f.mode))
            .collect();
        assert_eq!(
            f,
            [
                ("/site", "server { listen 80; }\n", Some(0o444)),
                (
                    "/etc/nginx/conf.d/default.conf",
                    "server { listen 80; }\n",
                    Some(0o440)
                ),
                ("/run/secrets/token", "s3cr3t", Some(0o444)),
            ]
        );
        assert_has(
            &w,
            Some("web"),
            "configs[2]",
            "\"./nginx.conf\", which is not read",
        );
        assert_has(&w, Some("web"), "secrets[0]", "not a Secret");
    }

    #[test]
    fn labels_go_to_labels_or_annotations() {
        let (s, w, n) = system(
            r#"
services:
  a:
    image: x
    labels:
      team: research
      traefik.http.routers.a.rule: Host(`a.example.com`)
      "bad key!": x
  b:
    image: y
    labels: ["team=ops", "tier=backend"]
    annotations: {example.com/owner: "Data Science"}
"#,
            &opts(),
        );
        assert_eq!(
            s.spec.labels.get("team").map(String::as_str),
            Some("research")
        );
        assert_eq!(
            s.spec.labels.get("tier").map(String::as_str),
            Some("backend")
        );
        assert_eq!(
            s.spec
                .annotations
                .get("traefik.http.routers.a.rule")
                .map(String::as_str),
            Some("Host(`a.example.com`)")
        );
        assert_eq!(
            s.spec
                .annotations
                .get("example.com/owner")
                .map(String::as_str),
            Some("Data Science")
        );
        assert_has(
            &n,
            Some("a"),
            "labels.traefik.http.routers.a.rule",
            "kept as an annotation",
        );
        assert_has(&w, Some("a"), "labels.bad key!", "no Kubernetes label");
        assert_has(&w, Some("b"), "labels[0]", "\"research\" in services.a");
    }

    #[test]
    fn unmapped_keys_warn_and_extension_fields_do_not() {
        let (_, w, _) = system(
            r#"
version: "3.9"
x-common: &common
  restart: always
services:
  app:
    <<: *common
    image: ghcr.io/example/app:1
    build: .
    depends_on: [db]
    networks: [back]
    env_file: .env.app
    user: "1000"
    shm_size: 1gb
    restart: on-failure
    x-note: ignored
    extends: {file: base.yml, service: base}
    stop_grace_period: 30s
    oom_score_adj: 10
  db:
    image: mariadb:11
    restart: unless-stopped
    deploy: {replicas: 2, placement: {constraints: [node.role==manager]}}
networks:
  back: {}
include: [other.yml]
"#,
            &opts(),
        );
        for (svc, field, text) in [
            (Some("app"), "build", "runs images only"),
            (Some("app"), "depends_on", "start together"),
            (Some("app"), "networks", "share its network"),
            (Some("app"), "env_file", "not read"),
            (Some("app"), "user", "no per-container user"),
            (Some("app"), "shm_size", "/dev/shm"),
            (Some("app"), "restart", "\"on-failure\" not kept"),
            (Some("app"), "extends", "not followed"),
            (Some("app"), "stop_grace_period", "termination"),
            (
                Some("app"),
                "oom_score_adj",
                "no equivalent of oom_score_adj",
            ),
            (Some("db"), "deploy.replicas", "scaled alone"),
            (Some("db"), "deploy.placement", "Swarm"),
            (None, "networks", "share its network"),
            (None, "include", "not followed"),
        ] {
            assert_has(&w, svc, field, text);
        }
        assert_eq!(w.len(), 14, "{w:#?}");
    }

    #[test]
    fn services_of_inactive_profiles_are_left_out_and_said_so() {
        let yaml = "services: {web: {image: nginx}, debug: {image: busybox, profiles: [debug]}}";
        let (s, w, _) = system(yaml, &opts());
        assert_eq!(s.spec.containers.len(), 1);
        assert_has(&w, Some("debug"), "profiles", "left out");
        let o = ImportOptions {
            profiles: vec!["debug".into()],
            ..opts()
        };
        let (s, w, _) = system(yaml, &o);
        assert_eq!(s.spec.containers.len(), 2);
        assert!(w.is_empty(), "{w:#?}");
    }

    #[test]
    fn names_become_dns_labels_and_collisions_are_errors() {
        let (s, _, n) = system("services: {Web_App: {image: x}}", &opts());
        assert_eq!(s.spec.containers[0].name, "web-app");
        assert_has(&n, Some("Web_App"), "", "\"web-app\"");
        let e = import(
            "services: {web_app: {image: x}, web-app: {image: y}}",
            &opts(),
        )
        .unwrap_err();
        assert!(matches!(e, ComposeError::NameConflict { .. }), "{e}");
        let e = import(
            "services: {a: {image: x}}",
            &ImportOptions {
                name: Some("Bad_Name".into()),
                ..opts()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ComposeError::InvalidName(_)), "{e}");
        let o = ImportOptions {
            fallback_name: Some("9 My Project".into()),
            ..ImportOptions::default()
        };
        let (s, _, _) = system("services: {a: {image: x}}", &o);
        assert_eq!(s.metadata.name.as_deref(), Some("c-9-my-project"));
        let (s, _, _) = system(
            "name: wordpress\nservices: {a: {image: x}}",
            &ImportOptions::default(),
        );
        assert_eq!(s.metadata.name.as_deref(), Some("wordpress"));
    }

    #[test]
    fn a_build_without_image_and_no_services_are_errors() {
        let e = import("services: {app: {build: .}}", &opts()).unwrap_err();
        assert!(matches!(e, ComposeError::NoImage { .. }), "{e}");
        assert!(e.to_string().contains("services.app"), "{e}");
        let e = import("services: {}", &opts()).unwrap_err();
        assert!(matches!(e, ComposeError::NoServices(_)), "{e}");
        let e = import("- a\n- b\n", &opts()).unwrap_err();
        assert!(matches!(e, ComposeError::Shape { .. }), "{e}");
        let e = import("services: [", &opts()).unwrap_err();
        assert!(matches!(e, ComposeError::Yaml(_)), "{e}");
    }

    #[test]
    fn other_services_names_become_localhost_where_they_are_hosts() {
        let (s, _, n) = system(
            r#"
services:
  wordpress:
    image: wordpress
    environment:
      WORDPRESS_DB_HOST: db
      WORDPRESS_DB_NAME: db
      CACHE_URL: redis://cache:6379/0
      API: http://user:pw@api/v1
      OTHER: database
    command: ["--db=db:3306", "--db-host=db", "db"]
  db: {image: mariadb}
  cache: {image: redis}
  api: {image: api, hostname: api.internal}
"#,
            &opts(),
        );
        let c = &s.spec.containers[0];
        let v = |n: &str| {
            c.env
                .iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(v("WORDPRESS_DB_HOST").as_deref(), Some("127.0.0.1"));
        assert_eq!(v("WORDPRESS_DB_NAME").as_deref(), Some("db"));
        assert_eq!(v("CACHE_URL").as_deref(), Some("redis://127.0.0.1:6379/0"));
        assert_eq!(v("API").as_deref(), Some("http://user:pw@127.0.0.1/v1"));
        assert_eq!(v("OTHER").as_deref(), Some("database"));
        assert_eq!(c.args, ["--db=127.0.0.1:3306", "--db-host=127.0.0.1", "db"]);
        assert_has(
            &n,
            Some("wordpress"),
            "environment.WORDPRESS_DB_HOST",
            "\"db\" → \"127.0.0.1\"",
        );
    }

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\" \$f" g\ h"#).ok(),
            Some(vec![
                "a".into(),
                "b c".into(),
                "d \"e\" $f".into(),
                "g h".into()
            ])
        );
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn env_files_parse() {
        let e = parse_env_file(
            "# c\nA=1\nexport B='x y'\nC=\"l1\\nl2\"\nD=v # comment\nbad line\n1X=no\n",
        );
        let want: BTreeMap<String, String> =
            [("A", "1"), ("B", "x y"), ("C", "l1\nl2"), ("D", "v")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(e, want);
    }

    #[test]
    fn the_output_is_validated() {
        // A whitespace image is refused by validation, naming the field.
        let e = import("services: {a: {image: \"ngi nx\"}}", &opts()).unwrap_err();
        assert!(e.to_string().contains("spec.containers[0].image"), "{e}");
    }
}
