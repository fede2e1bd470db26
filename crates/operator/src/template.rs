//! What a System runs once its template and owner are applied: the template's `system` with the
//! parameters filled in, the System's own fields laid over it, a default lifetime from the template's
//! `tycho.dev/max-age`, and the owner's label and environment. Pure: unit-tested without an API.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::{Map, Value};
use tycho_model::{
    ANNOTATION_MAX_AGE, ContainerSpec, ENV_OWNER, EnvVar, ParameterType, System, SystemSpec,
    SystemTemplate,
};

/// Why a System's template cannot be applied. Each names the template and the parameter or field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// `spec.template` names no SystemTemplate.
    #[error("spec.template: SystemTemplate {0:?} not found")]
    NotFound(String),
    /// A parameter the template does not declare.
    #[error(
        "spec.parameters.{name}: SystemTemplate {template:?} declares no parameter {name:?} (it declares: {declared})"
    )]
    Unknown {
        /// Template.
        template: String,
        /// Parameter.
        name: String,
        /// What it declares.
        declared: String,
    },
    /// A value of the wrong type.
    #[error("spec.parameters.{name}: must be a {expected} (got {got})")]
    WrongType {
        /// Parameter.
        name: String,
        /// Declared type.
        expected: &'static str,
        /// The value given.
        got: String,
    },
    /// A value outside the allowed ones.
    #[error("spec.parameters.{name}: {value} is not one of the allowed values {allowed}")]
    NotAllowed {
        /// Parameter.
        name: String,
        /// The value.
        value: String,
        /// The allowed values.
        allowed: String,
    },
    /// A parameter without default that the System does not give.
    #[error("spec.parameters.{name}: SystemTemplate {template:?} requires it (it has no default)")]
    Missing {
        /// Template.
        template: String,
        /// Parameter.
        name: String,
    },
    /// The template itself is wrong (its annotation, or its system after the parameters are filled in).
    #[error("SystemTemplate {template:?}: {message}")]
    Invalid {
        /// Template.
        template: String,
        /// What is wrong.
        message: String,
    },
}

impl TemplateError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            TemplateError::NotFound(_) => "TemplateNotFound",
            TemplateError::Invalid { .. } => "InvalidTemplate",
            _ => "InvalidParameters",
        }
    }
}

/// A System as it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The System with the template applied (metadata unchanged).
    pub system: System,
    /// `name@resourceVersion` of the template used.
    pub template_version: Option<String>,
    /// The template's `maxPerOwner`.
    pub max_per_owner: Option<i32>,
}

/// Seconds of a `tycho.dev/max-age` value: whole seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_age(value: &str) -> Option<i64> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c),
        _ => (v, 's'),
    };
    let n: i64 = digits.parse().ok().filter(|n| *n > 0)?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn type_name(t: ParameterType) -> &'static str {
    match t {
        ParameterType::String => "string",
        ParameterType::Integer => "integer",
        ParameterType::Number => "number",
        ParameterType::Boolean => "boolean",
    }
}

fn fits(t: ParameterType, v: &Value) -> bool {
    match t {
        ParameterType::String => v.is_string(),
        ParameterType::Integer => v.is_i64() || v.is_u64(),
        ParameterType::Number => v.is_number(),
        ParameterType::Boolean => v.is_boolean(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The parameter values a System's template gets: given, else default; each checked.
pub fn resolve(
    template: &SystemTemplate,
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let tname = template.name_any();
    let declared = &template.spec.parameters;
    if let Some(name) = given
        .keys()
        .find(|k| !declared.iter().any(|p| &p.name == *k))
    {
        return Err(TemplateError::Unknown {
            template: tname,
            name: name.clone(),
            declared: if declared.is_empty() {
                "none".into()
            } else {
                declared
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    let mut out = BTreeMap::new();
    for p in declared {
        let value = match given.get(&p.name).or(p.default.as_ref()) {
            Some(v) => v,
            None => {
                return Err(TemplateError::Missing {
                    template: tname,
                    name: p.name.clone(),
                });
            }
        };
        if !fits(p.kind, value) {
            return Err(TemplateError::WrongType {
                name: p.name.clone(),
                expected: type_name(p.kind),
                got: value.to_string(),
            });
        }
        if !p.allowed.is_empty() && !p.allowed.contains(value) {
            return Err(TemplateError::NotAllowed {
                name: p.name.clone(),
                value: value.to_string(),
                allowed: Value::Array(p.allowed.clone()).to_string(),
            });
        }
        out.insert(p.name.clone(), text(value));
    }
    Ok(out)
}

/// Replace `${name}` of every declared parameter in every string of `v` (other `${…}` stay, e.g. shell
/// variables in a command).
fn substitute(v: &mut Value, values: &BTreeMap<String, String>) {
    match v {
        Value::String(s) if s.contains("${") => {
            for (k, val) in values {
                let pattern = format!("${{{k}}}");
                if s.contains(&pattern) {
                    *s = s.replace(&pattern, val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, values)),
        Value::Object(m) => m.values_mut().for_each(|x| substitute(x, values)),
        _ => {}
    }
}

/// Lay `over` onto `base`, field by field: a field of `over` equal to its default (`defaults`) is
/// left to `base`; maps merge by key; `env` merges by name; other values are replaced.
fn lay_over(
    base: &mut Map<String, Value>,
    over: &Map<String, Value>,
    defaults: &Map<String, Value>,
) {
    for (k, v) in over {
        if defaults.get(k) == Some(v) || v.is_null() {
            continue;
        }
        match (base.get_mut(k), v) {
            (Some(Value::Array(b)), Value::Array(o)) if k == "env" => {
                for item in o {
                    match b.iter_mut().find(|x| x.get("name") == item.get("name")) {
                        Some(slot) => *slot = item.clone(),
                        None => b.push(item.clone()),
                    }
                }
            }
            (Some(Value::Object(b)), Value::Object(o))
                if matches!(k.as_str(), "labels" | "annotations" | "nodeSelector") =>
            {
                for (kk, vv) in o {
                    b.insert(kk.clone(), vv.clone());
                }
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The System's spec laid over the template's (after parameters): see [`lay_over`]; containers by name.
fn merge(template: &SystemSpec, own: &SystemSpec) -> Result<SystemSpec, serde_json::Error> {
    let mut base = object(serde_json::to_value(template)?);
    let mut over = object(serde_json::to_value(own)?);
    let defaults = object(serde_json::to_value(SystemSpec::default())?);
    let own_containers = over.remove("containers");
    over.remove("template");
    over.remove("parameters");
    lay_over(&mut base, &over, &defaults);
    if let Some(Value::Array(own_containers)) = own_containers {
        let containers = base
            .entry("containers")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = containers {
            for c in own_containers {
                let c = object(c);
                let name = c.get("name").cloned();
                let defaults = object(serde_json::to_value(ContainerSpec {
                    name: c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    ..ContainerSpec::default()
                })?);
                match list.iter_mut().find(|x| x.get("name") == name.as_ref()) {
                    Some(Value::Object(slot)) => lay_over(slot, &c, &defaults),
                    _ => list.push(Value::Object(c)),
                }
            }
        }
    }
    serde_json::from_value(Value::Object(base))
}

/// Put the owner into the containers: `TYCHO_OWNER` in every one (a container's own `TYCHO_OWNER` is
/// kept). The renderer puts the `tycho.dev/owner` label on every child.
pub fn apply_owner(spec: &mut SystemSpec) {
    let Some(owner) = spec.owner.clone() else {
        return;
    };
    for c in &mut spec.containers {
        if !c.env.iter().any(|e| e.name == ENV_OWNER) {
            c.env.push(EnvVar {
                name: ENV_OWNER.to_string(),
                value: Some(owner.clone()),
                value_from: None,
            });
        }
    }
}

/// The System as it runs, from the System and (when it names one) its template as cached; `None` for a
/// template it names means the template does not exist. The owner is applied after validation
/// ([`apply_owner`]).
pub fn effective(
    system: &System,
    template: Option<&SystemTemplate>,
) -> Result<Effective, TemplateError> {
    let mut out = system.clone();
    let Some(name) = system.spec.template.clone() else {
        return Ok(Effective {
            system: out,
            template_version: None,
            max_per_owner: None,
        });
    };
    let template = template.ok_or_else(|| TemplateError::NotFound(name.clone()))?;
    let invalid = |message: String| TemplateError::Invalid {
        template: name.clone(),
        message,
    };
    let values = resolve(template, &system.spec.parameters)?;
    let mut base =
        serde_json::to_value(&template.spec.system).map_err(|e| invalid(e.to_string()))?;
    substitute(&mut base, &values);
    let base: SystemSpec = serde_json::from_value(base).map_err(|e| {
        invalid(format!(
            "its system after the parameters are filled in: {e}"
        ))
    })?;
    let mut spec = merge(&base, &system.spec).map_err(|e| invalid(e.to_string()))?;
    spec.template = system.spec.template.clone();
    spec.parameters = system.spec.parameters.clone();
    if spec.lifetime.is_none()
        && let Some(age) = template.annotations().get(ANNOTATION_MAX_AGE)
    {
        spec.lifetime = Some(parse_age(age).ok_or_else(|| {
            invalid(format!(
                "annotation {ANNOTATION_MAX_AGE}: {age:?} is not a duration (seconds, or a number with s, m, h or d)"
            ))
        })?);
    }
    out.spec = spec;
    Ok(Effective {
        system: out,
        template_version: Some(format!(
            "{name}@{}",
            template
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default()
        )),
        max_per_owner: template.spec.max_per_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(spec: Value, annotations: Value) -> SystemTemplate {
        serde_json::from_value(json!({
            "apiVersion": "tycho.dev/v1alpha1",
            "kind": "SystemTemplate",
            "metadata": {"name": "jupyter", "resourceVersion": "7", "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    fn jupyter() -> SystemTemplate {
        template(
            json!({
                "parameters": [
                    {"name": "flavour", "default": "base", "allowed": ["base", "scipy"]},
                    {"name": "cpus", "type": "integer", "default": 1},
                    {"name": "token"}
                ],
                "maxPerOwner": 2,
                "system": {
                    "replicas": 1,
                    "expose": "ClusterIP",
                    "labels": {"app": "notebook"},
                    "containers": [{
                        "name": "jupyter",
                        "image": "quay.io/jupyter/${flavour}-notebook",
                        "args": ["--token=${token}", "--home=${HOME}"],
                        "ports": [{"port": 8888}],
                        "env": [{"name": "CPUS", "value": "${cpus}"}, {"name": "MODE", "value": "lab"}],
                        "limits": {"cpus": "${cpus}"}
                    }]
                }
            }),
            json!({"tycho.dev/max-age": "8h"}),
        )
    }

    fn system(spec: Value) -> System {
        serde_json::from_value(json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": "nb", "namespace": "ns"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn parameters_fill_the_template_and_the_systems_fields_win() {
        let s = system(json!({
            "template": "jupyter",
            "parameters": {"flavour": "scipy", "token": "t0k", "cpus": 2},
            "replicas": 3,
            "labels": {"team": "a"},
            "owner": "system:serviceaccount:a:alice",
            "containers": [
                {"name": "jupyter", "image": "quay.io/jupyter/scipy-notebook:2026", "env": [{"name": "MODE", "value": "notebook"}]},
                {"name": "sidecar", "image": "busybox"}
            ]
        }));
        let mut e = effective(&s, Some(&jupyter())).unwrap();
        apply_owner(&mut e.system.spec);
        let spec = &e.system.spec;
        assert_eq!(e.template_version.as_deref(), Some("jupyter@7"));
        assert_eq!(e.max_per_owner, Some(2));
        assert_eq!(spec.replicas, 3, "the System's own field wins");
        assert_eq!(
            spec.expose,
            tycho_model::Expose::ClusterIP,
            "a default leaves the template's value"
        );
        assert_eq!(spec.labels["app"], "notebook");
        assert_eq!(spec.labels["team"], "a");
        assert_eq!(
            spec.lifetime,
            Some(8 * 3600),
            "max-age is the default lifetime"
        );
        let j = &spec.containers[0];
        assert_eq!(j.image, "quay.io/jupyter/scipy-notebook:2026");
        assert_eq!(
            j.args,
            ["--token=t0k", "--home=${HOME}"],
            "undeclared ${{…}} stay"
        );
        let env: Vec<(&str, &str)> = j
            .env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            env,
            [
                ("CPUS", "2"),
                ("MODE", "notebook"),
                (ENV_OWNER, "system:serviceaccount:a:alice")
            ]
        );
        assert_eq!(j.limits.as_ref().unwrap().cpus.as_deref(), Some("2"));
        assert_eq!(
            j.ports[0].port, 8888,
            "unset container fields keep the template's"
        );
        assert_eq!(
            spec.containers[1].name, "sidecar",
            "new containers are added"
        );
    }

    #[test]
    fn a_systems_own_lifetime_beats_max_age() {
        let s =
            system(json!({"template": "jupyter", "parameters": {"token": "x"}, "lifetime": 60}));
        assert_eq!(
            effective(&s, Some(&jupyter()))
                .unwrap()
                .system
                .spec
                .lifetime,
            Some(60)
        );
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let t = jupyter();
        let err = |p: Value| {
            effective(
                &system(json!({"template": "jupyter", "parameters": p})),
                Some(&t),
            )
            .unwrap_err()
        };
        let e = err(json!({"token": "x", "colour": "red"}));
        assert_eq!(e.reason(), "InvalidParameters");
        assert!(e.to_string().starts_with("spec.parameters.colour:"), "{e}");
        assert!(e.to_string().contains("flavour, cpus, token"), "{e}");
        let e = err(json!({"token": "x", "cpus": "two"}));
        assert!(
            e.to_string()
                .contains("spec.parameters.cpus: must be a integer"),
            "{e}"
        );
        let e = err(json!({"token": "x", "flavour": "r"}));
        assert!(
            e.to_string().contains("not one of the allowed values"),
            "{e}"
        );
        let e = err(json!({}));
        assert!(e.to_string().starts_with("spec.parameters.token:"), "{e}");
        let missing = effective(&system(json!({"template": "nope"})), None).unwrap_err();
        assert_eq!(missing.reason(), "TemplateNotFound");
        assert!(missing.to_string().contains("\"nope\""));
    }

    #[test]
    fn a_bad_max_age_is_the_templates_fault() {
        let t = template(
            json!({"system": {"containers": [{"name": "a", "image": "nginx"}]}}),
            json!({"tycho.dev/max-age": "soon"}),
        );
        let e = effective(&system(json!({"template": "jupyter"})), Some(&t)).unwrap_err();
        assert_eq!(e.reason(), "InvalidTemplate");
        assert!(e.to_string().contains("tycho.dev/max-age"));
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90"), Some(90));
        assert_eq!(parse_age("90m"), Some(5400));
        assert_eq!(parse_age("2d"), Some(172_800));
        assert_eq!(parse_age("0"), None);
        assert_eq!(parse_age("1w"), None);
        assert_eq!(parse_age("h"), None);
    }

    #[test]
    fn without_a_template_only_the_owner_is_applied() {
        let s = system(json!({"owner": "bob", "containers": [{"name": "a", "image": "nginx"}]}));
        let mut e = effective(&s, None).unwrap();
        assert_eq!(e.system, s);
        apply_owner(&mut e.system.spec);
        assert_eq!(e.template_version, None);
        assert_eq!(e.system.spec.containers[0].env[0].name, ENV_OWNER);
        let plain = system(json!({"containers": [{"name": "a", "image": "nginx"}]}));
        assert_eq!(effective(&plain, None).unwrap().system, plain);
    }
}
