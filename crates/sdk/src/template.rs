//! Spawning from the catalog: a [`TemplateSpec`] names a `SystemTemplate` and gives its parameters.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SdkError;
use tycho_model::{self as model, ParameterType, Protocol, SystemSpec, SystemTemplate};

/// What to spawn from a catalog template (`kubectl get systemtemplates`): its name, parameter values and
/// a System name prefix. [`Location::spawn_template`](crate::Location::spawn_template) reads the template
/// to check the parameters and to learn the ports to tunnel, then creates a session-owned System naming it;
/// the controller fills the template in.
///
/// ```
/// use tycho_sdk::TemplateSpec;
///
/// let spec = TemplateSpec::new("jupyter")
///     .param("flavour", "scipy")
///     .param("cpus", 2)
///     .name("notebook");
/// assert_eq!(spec.template(), "jupyter");
/// ```
///
/// **Parameter types.** A value is a JSON scalar. A string given for a parameter the template declares as
/// `integer`, `number` or `boolean` is parsed as one (so text from a command line works); an unknown
/// parameter, a value that does not parse, and a required parameter (one without a default) left out are
/// [`SdkError::InvalidSpec`] before anything is created.
#[derive(Debug, Clone, Default)]
pub struct TemplateSpec {
    template: String,
    name: Option<String>,
    parameters: BTreeMap<String, Value>,
}

impl TemplateSpec {
    /// A spec of the template named `template`.
    pub fn new(template: impl Into<String>) -> TemplateSpec {
        TemplateSpec {
            template: template.into(),
            ..TemplateSpec::default()
        }
    }

    /// The template's name.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// A parameter value (a string, number or boolean).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// The parameter values given so far.
    pub fn parameters(&self) -> &BTreeMap<String, Value> {
        &self.parameters
    }

    /// Name prefix of the System (default: the template's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Name prefix of the System: the given name or the template's, as a DNS label.
    pub(crate) fn name_prefix(&self) -> String {
        model::system_name_prefix(self.name.as_deref().unwrap_or(&self.template))
    }

    /// The parameters checked against `template`'s declarations, strings parsed into declared types.
    pub fn resolve_parameters(
        &self,
        template: &SystemTemplate,
    ) -> Result<BTreeMap<String, Value>, SdkError> {
        let declared = &template.spec.parameters;
        let invalid = |m: String| SdkError::InvalidSpec(format!("template {}: {m}", self.template));
        let mut out = BTreeMap::new();
        for (name, value) in &self.parameters {
            let Some(p) = declared.iter().find(|p| &p.name == name) else {
                let known: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
                return Err(invalid(format!(
                    "it has no parameter {name:?} (it declares: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let typed = match (p.kind, value) {
                (ParameterType::String, v) | (_, v @ (Value::Number(_) | Value::Bool(_))) => {
                    v.clone()
                }
                (ParameterType::Integer, Value::String(s)) => {
                    s.trim().parse::<i64>().map(Value::from).map_err(|_| {
                        invalid(format!("parameter {name}: {s:?} is not an integer"))
                    })?
                }
                (ParameterType::Number, Value::String(s)) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| invalid(format!("parameter {name}: {s:?} is not a number")))?,
                (ParameterType::Boolean, Value::String(s)) => match s.trim() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        return Err(invalid(format!(
                            "parameter {name}: {s:?} is not true or false"
                        )));
                    }
                },
                (_, v) => v.clone(),
            };
            out.insert(name.clone(), typed);
        }
        let missing: Vec<&str> = declared
            .iter()
            .filter(|p| p.default.is_none() && !out.contains_key(&p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(invalid(format!(
                "required parameters not given: {}",
                missing.join(", ")
            )));
        }
        Ok(out)
    }

    /// The System spec naming the template with these parameters, owned by `session`.
    pub(crate) fn to_system_spec(
        &self,
        template: &SystemTemplate,
        session: &str,
    ) -> Result<SystemSpec, SdkError> {
        Ok(SystemSpec {
            template: Some(self.template.clone()),
            parameters: self.resolve_parameters(template)?,
            session: Some(session.to_string()),
            ..SystemSpec::default()
        })
    }
}

/// The TCP ports a template's System exposes (in the order its containers list them), which a client
/// tunnels to.
pub fn template_ports(template: &SystemTemplate) -> Vec<u16> {
    let mut out = Vec::new();
    for c in &template.spec.system.containers {
        for p in &c.ports {
            if p.expose
                && p.protocol == Protocol::TCP
                && let Ok(port) = u16::try_from(p.port)
                && !out.contains(&port)
            {
                out.push(port);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jupyter() -> SystemTemplate {
        serde_json::from_value(json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "SystemTemplate",
            "metadata": {"name": "jupyter"},
            "spec": {
                "parameters": [
                    {"name": "flavour", "default": "base"},
                    {"name": "cpus", "type": "integer", "default": 1},
                    {"name": "ratio", "type": "number", "default": 0.5},
                    {"name": "lab", "type": "boolean", "default": true},
                    {"name": "token"}
                ],
                "system": {"containers": [
                    {"name": "jupyter", "image": "quay.io/jupyter/${flavour}-notebook",
                     "ports": [{"port": 8888}, {"port": 9000, "expose": false}, {"port": 53, "protocol": "UDP"}]},
                    {"name": "proxy", "image": "nginx", "ports": [{"port": 80}, {"port": 8888}]}
                ]}
            }
        }))
        .unwrap()
    }

    #[test]
    fn parameters_are_typed_by_the_templates_declarations() {
        let spec = TemplateSpec::new("jupyter")
            .param("flavour", "scipy")
            .param("cpus", "2")
            .param("ratio", " 0.25")
            .param("lab", "false")
            .param("token", "t");
        let s = spec.to_system_spec(&jupyter(), "lease-1").unwrap();
        assert_eq!(s.template.as_deref(), Some("jupyter"));
        assert_eq!(s.session.as_deref(), Some("lease-1"));
        assert!(s.containers.is_empty(), "the template gives the containers");
        assert_eq!(
            serde_json::to_value(&s.parameters).unwrap(),
            json!({"flavour": "scipy", "cpus": 2, "ratio": 0.25, "lab": false, "token": "t"})
        );
        assert_eq!(spec.name_prefix(), "jupyter");
        assert_eq!(
            spec.clone().name("My Notebook").name_prefix(),
            "my-notebook"
        );
    }

    #[test]
    fn unknown_unparsable_and_missing_parameters_are_refused_before_spawning() {
        let t = jupyter();
        let err = |spec: TemplateSpec| spec.resolve_parameters(&t).unwrap_err().to_string();
        let e = err(TemplateSpec::new("jupyter")
            .param("token", "t")
            .param("flavor", "x"));
        assert!(
            e.contains("no parameter \"flavor\"") && e.contains("flavour"),
            "{e}"
        );
        let e = err(TemplateSpec::new("jupyter")
            .param("token", "t")
            .param("cpus", "two"));
        assert!(e.contains("cpus") && e.contains("not an integer"), "{e}");
        let e = err(TemplateSpec::new("jupyter")
            .param("token", "t")
            .param("lab", "yes"));
        assert!(e.contains("lab"), "{e}");
        let e = err(TemplateSpec::new("jupyter"));
        assert!(e.contains("required parameters not given: token"), "{e}");
    }

    #[test]
    fn the_ports_to_tunnel_are_the_exposed_tcp_ports() {
        assert_eq!(template_ports(&jupyter()), vec![8888, 80]);
    }
}
