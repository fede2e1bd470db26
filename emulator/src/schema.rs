//! Custom resource validation against a CRD version's structural schema, as kube-apiserver's
//! apiextensions handler does it
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>):
//!
//! 1. pruning: fields the schema does not declare are dropped (and reported for
//!    `fieldValidation=Warn|Strict`), unless `x-kubernetes-preserve-unknown-fields: true`;
//! 2. defaulting: `default`s fill missing fields (and `null`s of non-nullable fields), also
//!    inside defaulted values; non-nullable `null`s without a default are dropped;
//! 3. validation: OpenAPI v3 value validations with kube-openapi's messages converted to
//!    Kubernetes field errors, list-type set/map uniqueness, then CEL
//!    `x-kubernetes-validations` rules through the `kube-cel` crate
//!    (<https://kubernetes.io/docs/reference/using-api/cel/>), with `oldSelf` correlated as
//!    Kubernetes does (object fields, map values, `listType=map` items by key). On update,
//!    unchanged values are not re-validated (CRD validation ratcheting, on by default
//!    since 1.30).
//!
//! Compiled schemas (with their CEL programs) are cached by schema text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use kube_cel::cel::{Context, Program};
use serde_json::{Map, Value};

/// One validation failure, as a Kubernetes `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The cause reason.
    pub reason: FieldErrorReason,
    /// The error body, e.g. `Invalid value: "Bad_Name": spec.name in body should match '^[a-z]+$'`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == FieldErrorReason::UnknownField {
            return write!(f, "{}", self.message);
        }
        if self.field.is_empty() {
            write!(f, "<nil>: {}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The Kubernetes `field.ErrorType` of a [`FieldError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorReason {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Unsupported value` (enum).
    NotSupported,
    /// `Too long` (maxLength).
    TooLong,
    /// `Too many` (maxItems, maxProperties).
    TooMany,
    /// `Duplicate value` (list-type set/map).
    Duplicate,
    /// `Forbidden`.
    Forbidden,
    /// `Invalid value` for a value of the wrong type.
    TypeInvalid,
    /// A field the schema does not declare, under `fieldValidation=Strict`. Kubernetes answers
    /// these with 400 BadRequest `strict decoding error: unknown field "spec.foo"` (see
    /// [`strict_decoding_message`]), not with a 422 Invalid.
    UnknownField,
}

impl FieldErrorReason {
    /// The `StatusCause.reason` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            FieldErrorReason::Required => "FieldValueRequired",
            FieldErrorReason::Invalid => "FieldValueInvalid",
            FieldErrorReason::NotSupported => "FieldValueNotSupported",
            FieldErrorReason::TooLong => "FieldValueTooLong",
            FieldErrorReason::TooMany => "FieldValueTooMany",
            FieldErrorReason::Duplicate => "FieldValueDuplicate",
            FieldErrorReason::Forbidden => "FieldValueForbidden",
            FieldErrorReason::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorReason::UnknownField => "FieldValueUnknown",
        }
    }
}

/// What to do with fields the schema does not declare (the `fieldValidation` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownFields {
    /// Drop them silently (`Ignore`).
    Ignore,
    /// Drop them and warn (`Warn`, `Warning: unknown field "spec.foo"`).
    #[default]
    Warn,
    /// Reject the request (`Strict`).
    Strict,
}

/// A custom resource after pruning and defaulting, with the warnings to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The pruned and defaulted object.
    pub object: Value,
    /// `unknown field "spec.foo"` warnings (only with [`UnknownFields::Warn`]).
    pub warnings: Vec<String>,
}

/// The message kube-apiserver returns (400 BadRequest) when strict field validation found
/// unknown fields: `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
/// None when `errors` holds no unknown-field error.
pub fn strict_decoding_message(errors: &[FieldError]) -> Option<String> {
    let unknown: Vec<&str> = errors
        .iter()
        .filter(|e| e.reason == FieldErrorReason::UnknownField)
        .map(|e| e.message.as_str())
        .collect();
    if unknown.is_empty() {
        None
    } else {
        Some(format!("strict decoding error: {}", unknown.join(", ")))
    }
}

// ----------------------------------------------------------------------------------------
// Field error constructors (k8s.io/apimachinery/pkg/util/validation/field)

/// Go's rendering of a bad value in `field.Error.ErrorBody`.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn required(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Required,
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Invalid,
        message: if detail.is_empty() {
            format!("Invalid value: {value}")
        } else {
            format!("Invalid value: {value}: {detail}")
        },
    }
}

fn type_invalid(field: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        reason: FieldErrorReason::TypeInvalid,
        ..invalid(field, value, detail)
    }
}

fn forbidden(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Forbidden,
        message: if detail.is_empty() {
            "Forbidden".into()
        } else {
            format!("Forbidden: {detail}")
        },
    }
}

fn not_supported(field: &str, value: &Value, allowed: &[Value]) -> FieldError {
    let values: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => quoted(s),
            other => quoted(&other.to_string()),
        })
        .collect();
    let mut message = format!("Unsupported value: {}", go_value(value));
    if !values.is_empty() {
        message.push_str(&format!(": supported values: {}", values.join(", ")));
    }
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::NotSupported,
        message,
    }
}

fn too_long(field: &str, max: u64) -> FieldError {
    let unit = if max == 1 { "byte" } else { "bytes" };
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::TooLong,
        message: format!("Too long: may not be more than {max} {unit}"),
    }
}

fn too_many(field: &str, actual: usize, max: u64) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::TooMany,
        message: format!("Too many: {actual}: must have at most {max} {unit}"),
    }
}

fn duplicate(field: &str, value: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        reason: FieldErrorReason::Duplicate,
        message: format!("Duplicate value: {value}"),
    }
}

fn unknown_field(path: &str) -> FieldError {
    FieldError {
        field: path.to_string(),
        reason: FieldErrorReason::UnknownField,
        message: format!("unknown field {}", quoted(path)),
    }
}

/// kube-openapi names the field in its message (`spec.x in body should ...`).
fn in_body(path: &str) -> String {
    format!("{path} in body")
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

// ----------------------------------------------------------------------------------------
// Compiled structural schema

#[derive(Default)]
struct Node {
    ty: Option<String>,
    format: Option<String>,
    nullable: bool,
    enum_values: Option<Vec<Value>>,
    pattern: Option<String>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_props: Option<u64>,
    max_props: Option<u64>,
    unique_items: bool,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_min: bool,
    exclusive_max: bool,
    multiple_of: Option<f64>,
    required: Vec<String>,
    properties: BTreeMap<String, Node>,
    items: Option<Box<Node>>,
    additional: Option<Box<Node>>,
    preserve_unknown: bool,
    embedded: bool,
    int_or_string: bool,
    default: Option<Value>,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Box<Node>>,
    /// The CEL rules of this node, compiled by kube-cel over a copy of the node's schema
    /// without the rules of its descendants (they run at their own nodes).
    cel: Option<kube_cel::CompiledSchema>,
}

fn u64_of(s: &Map<String, Value>, k: &str) -> Option<u64> {
    s.get(k).and_then(Value::as_u64)
}

fn f64_of(s: &Map<String, Value>, k: &str) -> Option<f64> {
    s.get(k).and_then(Value::as_f64)
}

fn bool_of(s: &Map<String, Value>, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool) == Some(true)
}

/// A copy of `schema` without `x-kubernetes-validations` below its top level.
fn strip_descendant_rules(schema: &Value) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if k == "x-kubernetes-validations" {
                        continue;
                    }
                    out.insert(k.clone(), strip_children(k, v));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    fn strip_children(key: &str, v: &Value) -> Value {
        match key {
            "properties" => match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, s)| (k.clone(), strip(s)))
                        .collect::<Map<String, Value>>(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" => strip(v),
            "allOf" | "anyOf" | "oneOf" => match v {
                Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
                other => other.clone(),
            },
            _ => v.clone(),
        }
    }
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), strip_children(k, v));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn compile_node(schema: &Value) -> Node {
    let Some(s) = schema.as_object() else {
        return Node::default();
    };
    let mut n = Node {
        ty: s.get("type").and_then(Value::as_str).map(str::to_string),
        format: s.get("format").and_then(Value::as_str).map(str::to_string),
        nullable: bool_of(s, "nullable"),
        enum_values: s.get("enum").and_then(Value::as_array).cloned(),
        pattern: s.get("pattern").and_then(Value::as_str).map(str::to_string),
        min_length: u64_of(s, "minLength"),
        max_length: u64_of(s, "maxLength"),
        min_items: u64_of(s, "minItems"),
        max_items: u64_of(s, "maxItems"),
        min_props: u64_of(s, "minProperties"),
        max_props: u64_of(s, "maxProperties"),
        unique_items: bool_of(s, "uniqueItems"),
        minimum: f64_of(s, "minimum"),
        maximum: f64_of(s, "maximum"),
        exclusive_min: bool_of(s, "exclusiveMinimum"),
        exclusive_max: bool_of(s, "exclusiveMaximum"),
        multiple_of: f64_of(s, "multipleOf"),
        required: s
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        preserve_unknown: bool_of(s, "x-kubernetes-preserve-unknown-fields"),
        embedded: bool_of(s, "x-kubernetes-embedded-resource"),
        int_or_string: bool_of(s, "x-kubernetes-int-or-string"),
        default: s.get("default").cloned(),
        list_type: s
            .get("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .map(str::to_string),
        list_map_keys: s
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        ..Node::default()
    };
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            n.properties.insert(k.clone(), compile_node(v));
        }
    }
    if let Some(items) = s.get("items")
        && items.is_object()
    {
        n.items = Some(Box::new(compile_node(items)));
    }
    if let Some(add) = s.get("additionalProperties")
        && add.is_object()
    {
        n.additional = Some(Box::new(compile_node(add)));
    }
    for (key, list) in [
        ("allOf", &mut n.all_of),
        ("anyOf", &mut n.any_of),
        ("oneOf", &mut n.one_of),
    ] {
        if let Some(a) = s.get(key).and_then(Value::as_array) {
            *list = a.iter().map(compile_node).collect();
        }
    }
    if let Some(not) = s.get("not")
        && not.is_object()
    {
        n.not = Some(Box::new(compile_node(not)));
    }
    if s.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        n.cel = Some(kube_cel::compile_schema(&strip_descendant_rules(schema)));
    }
    n
}

const CACHE_LIMIT: usize = 512;

fn compiled(schema: &Value) -> Arc<Node> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Node>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(c) = cache.lock()
        && let Some(n) = c.get(&key)
    {
        return n.clone();
    }
    let node = Arc::new(compile_node(schema));
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(key, node.clone());
    }
    node
}

// ----------------------------------------------------------------------------------------
// Pruning and defaulting

const ROOT_KEEP: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn prune(n: &Node, v: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if n.int_or_string {
                return;
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || n.embedded) && ROOT_KEEP.contains(&k.as_str()) {
                    if let Some(prop) = n.properties.get(&k)
                        && k != "metadata"
                        && let Some(cv) = m.get_mut(&k)
                    {
                        prune(prop, cv, &child(path, &k), false, unknown);
                    }
                    continue;
                }
                let p = child(path, &k);
                if let Some(prop) = n.properties.get(&k) {
                    if let Some(cv) = m.get_mut(&k) {
                        prune(prop, cv, &p, false, unknown);
                    }
                } else if let Some(add) = &n.additional {
                    if let Some(cv) = m.get_mut(&k) {
                        prune(add, cv, &p, false, unknown);
                    }
                } else if !n.preserve_unknown {
                    m.remove(&k);
                    unknown.push(p);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &n.items {
                for (i, item) in a.iter_mut().enumerate() {
                    prune(items, item, &index(path, i), false, unknown);
                }
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(v: &Value, n: &Node) -> bool {
    v.is_null() && !n.nullable
}

/// structuraldefaulting.Default: missing fields and non-nullable nulls get the default,
/// then every present field (defaulted ones included) is defaulted recursively.
fn apply_defaults(n: &Node, v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, prop) in &n.properties {
                if let Some(d) = &prop.default {
                    let missing = match m.get(k) {
                        None => true,
                        Some(cv) => is_non_nullable_null(cv, prop),
                    };
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, cv) in m.iter_mut() {
                if let Some(prop) = n.properties.get(k) {
                    apply_defaults(prop, cv);
                } else if let Some(add) = &n.additional {
                    if is_non_nullable_null(cv, add)
                        && let Some(d) = &add.default
                    {
                        *cv = d.clone();
                    }
                    apply_defaults(add, cv);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &n.items {
                for item in a.iter_mut() {
                    if is_non_nullable_null(item, items)
                        && let Some(d) = &items.default
                    {
                        *item = d.clone();
                    }
                    apply_defaults(items, item);
                }
            }
        }
        _ => {}
    }
}

/// structuraldefaulting.PruneNonNullableNullsWithoutDefaults.
fn prune_nulls(n: &Node, v: &mut Value) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let prop = n.properties.get(&k).or(n.additional.as_deref());
                let Some(prop) = prop else { continue };
                let drop = m
                    .get(&k)
                    .is_some_and(|cv| is_non_nullable_null(cv, prop) && prop.default.is_none());
                if drop {
                    m.remove(&k);
                } else if let Some(cv) = m.get_mut(&k) {
                    prune_nulls(prop, cv);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &n.items {
                for item in a.iter_mut() {
                    prune_nulls(items, item);
                }
            }
        }
        _ => {}
    }
}

// ----------------------------------------------------------------------------------------
// Validation

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(num) => {
            if num.is_i64() || num.is_u64() || num.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    let actual = json_type(v);
    actual == ty || (ty == "number" && actual == "integer")
}

fn valid_format(format: &str, s: &str) -> bool {
    match format {
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "date-time" | "datetime" => {
            chrono::DateTime::parse_from_rfc3339(s).is_ok()
                || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        }
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uuid" => valid_uuid(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => valid_cidr(s),
        _ => true,
    }
}

fn valid_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, l)| g.len() == l && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// Checks that `pattern` compiles (by matching it once through CEL).
fn compile_pattern(pattern: &str) -> Result<(), String> {
    let prog = Program::compile("''.matches(p)").map_err(|e| e.to_string())?;
    let mut ctx = Context::default();
    ctx.add_variable_from_value("p", pattern.to_string());
    prog.execute(&ctx).map(|_| ()).map_err(|e| e.to_string())
}

/// Regular expression match through CEL's `matches` (RE2 syntax, as Kubernetes uses).
fn pattern_matches(pattern: &str, s: &str) -> bool {
    thread_local! {
        static PROGRAM: Option<Program> = Program::compile("s.matches(p)").ok();
    }
    PROGRAM.with(|prog| {
        let Some(prog) = prog else { return true };
        let mut ctx = Context::default();
        ctx.add_variable_from_value("s", s.to_string());
        ctx.add_variable_from_value("p", pattern.to_string());
        !matches!(prog.execute(&ctx), Ok(kube_cel::cel::Value::Bool(false)))
    })
}

/// Go's `%#v` of the key fields of a list-map item, as `field.Duplicate` prints it.
fn go_map_literal(keys: &[String], item: &Value) -> String {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let parts: Vec<String> = sorted
        .iter()
        .filter_map(|k| {
            item.get(k.as_str())
                .map(|v| format!("{}:{}", quoted(k), go_value(v)))
        })
        .collect();
    format!("map[string]interface {{}}{{{}}}", parts.join(", "))
}

struct Walker<'a> {
    errors: &'a mut Vec<FieldError>,
    /// When Some, CEL rule failures are collected here rather than in `errors` (so that the
    /// caller can drop them when a schema error blocks CEL, as kube-apiserver does).
    cel_errors: Option<Vec<FieldError>>,
    /// Whether any node with CEL rules was visited.
    saw_cel: bool,
}

impl<'a> Walker<'a> {
    fn new(errors: &'a mut Vec<FieldError>) -> Walker<'a> {
        Walker {
            errors,
            cel_errors: None,
            saw_cel: false,
        }
    }
}

impl Walker<'_> {
    fn validate(&mut self, n: &Node, v: &Value, old: Option<&Value>, path: &str) {
        // Validation ratcheting: an unchanged value is not validated again.
        if old.is_some_and(|o| o == v) {
            return;
        }
        if v.is_null() {
            if !n.nullable && n.ty.is_some() {
                let ty = n.ty.as_deref().unwrap_or_default();
                self.errors.push(type_invalid(
                    path,
                    &quoted("null"),
                    &format!("{} must be of type {ty}: \"null\"", in_body(path)),
                ));
            }
            return;
        }
        if n.int_or_string {
            if !matches!(json_type(v), "integer" | "string") {
                let actual = json_type(v);
                self.errors.push(type_invalid(
                    path,
                    &quoted(actual),
                    &format!(
                        "{} must be of type integer,string: {}",
                        in_body(path),
                        quoted(actual)
                    ),
                ));
                return;
            }
        } else if let Some(ty) = &n.ty
            && !type_matches(ty, v)
        {
            let actual = json_type(v);
            self.errors.push(type_invalid(
                path,
                &quoted(actual),
                &format!("{} must be of type {ty}: {}", in_body(path), quoted(actual)),
            ));
            return;
        }
        self.junctors(n, v, old, path);
        match v {
            Value::String(s) => self.string(n, s, v, path),
            Value::Number(num) => self.number(n, num, v, path),
            _ => {}
        }
        if let Value::Array(a) = v {
            self.array(n, a, old, path);
        }
        if let Some(allowed) = &n.enum_values
            && !allowed.iter().any(|a| a == v)
        {
            self.errors.push(not_supported(path, v, allowed));
        }
        if let Value::Object(m) = v {
            self.object(n, m, old, path);
        }
        self.cel(n, v, old, path);
    }

    fn junctors(&mut self, n: &Node, v: &Value, old: Option<&Value>, path: &str) {
        for branch in &n.all_of {
            self.validate(branch, v, old, path);
        }
        let passes = |b: &Node| {
            let mut errs = Vec::new();
            Walker::new(&mut errs).validate(b, v, None, path);
            errs.is_empty()
        };
        if !n.any_of.is_empty() && !n.any_of.iter().any(passes) {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!(
                    "{} must validate at least one schema (anyOf)",
                    in_body(path)
                ),
            ));
        }
        if !n.one_of.is_empty() && n.one_of.iter().filter(|b| passes(b)).count() != 1 {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!(
                    "{} must validate one and only one schema (oneOf)",
                    in_body(path)
                ),
            ));
        }
        if let Some(not) = &n.not
            && passes(not)
        {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!("{} must not validate the schema (not)", in_body(path)),
            ));
        }
    }

    fn string(&mut self, n: &Node, s: &str, v: &Value, path: &str) {
        let len = s.chars().count() as u64;
        if let Some(max) = n.max_length
            && len > max
        {
            self.errors.push(too_long(path, max));
        }
        if let Some(min) = n.min_length
            && len < min
        {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!("{} should be at least {min} chars long", in_body(path)),
            ));
        }
        if let Some(p) = &n.pattern
            && !pattern_matches(p, s)
        {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!("{} should match '{p}'", in_body(path)),
            ));
        }
        if let Some(f) = &n.format
            && !n.int_or_string
            && !valid_format(f, s)
        {
            self.errors.push(type_invalid(
                path,
                &go_value(v),
                &format!("{} must be of type {f}: {}", in_body(path), quoted(s)),
            ));
        }
    }

    fn number(&mut self, n: &Node, num: &serde_json::Number, v: &Value, path: &str) {
        let Some(x) = num.as_f64() else { return };
        if let Some(max) = n.maximum {
            let bad = if n.exclusive_max { x >= max } else { x > max };
            if bad {
                let rel = if n.exclusive_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.errors.push(invalid(
                    path,
                    &go_value(v),
                    &format!("{} should be {rel} {}", in_body(path), fmt_num(max)),
                ));
            }
        }
        if let Some(min) = n.minimum {
            let bad = if n.exclusive_min { x <= min } else { x < min };
            if bad {
                let rel = if n.exclusive_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.errors.push(invalid(
                    path,
                    &go_value(v),
                    &format!("{} should be {rel} {}", in_body(path), fmt_num(min)),
                ));
            }
        }
        if let Some(m) = n.multiple_of
            && m > 0.0
            && ((x / m) - (x / m).round()).abs() > 1e-9
        {
            self.errors.push(invalid(
                path,
                &go_value(v),
                &format!("{} should be a multiple of {}", in_body(path), fmt_num(m)),
            ));
        }
        if n.format.as_deref() == Some("int32")
            && (x > f64::from(i32::MAX) || x < f64::from(i32::MIN))
        {
            self.errors.push(type_invalid(
                path,
                &go_value(v),
                &format!(
                    "{} must be of type int32: {}",
                    in_body(path),
                    quoted(&num.to_string())
                ),
            ));
        }
    }

    fn array(&mut self, n: &Node, a: &[Value], old: Option<&Value>, path: &str) {
        if let Some(max) = n.max_items
            && a.len() as u64 > max
        {
            self.errors.push(too_many(path, a.len(), max));
        }
        if let Some(min) = n.min_items
            && (a.len() as u64) < min
        {
            self.errors.push(invalid(
                path,
                &a.len().to_string(),
                &format!("{} should have at least {min} items", in_body(path)),
            ));
        }
        if n.unique_items && a.iter().enumerate().any(|(i, x)| a[..i].contains(x)) {
            self.errors.push(invalid(
                path,
                "\"\"",
                &format!("{} shouldn't contain duplicates", in_body(path)),
            ));
        }
        match n.list_type.as_deref() {
            Some("set") => {
                for (i, x) in a.iter().enumerate() {
                    if a[..i].contains(x) {
                        self.errors.push(duplicate(&index(path, i), &go_value(x)));
                    }
                }
            }
            Some("map") => {
                let keys = &n.list_map_keys;
                for (i, x) in a.iter().enumerate() {
                    if !x.is_object() {
                        continue;
                    }
                    let mut complete = true;
                    for k in keys {
                        if x.get(k).is_none() {
                            complete = false;
                            self.errors.push(required(&child(&index(path, i), k), ""));
                        }
                    }
                    if complete
                        && a[..i]
                            .iter()
                            .any(|y| keys.iter().all(|k| y.get(k) == x.get(k)))
                    {
                        self.errors
                            .push(duplicate(&index(path, i), &go_map_literal(keys, x)));
                    }
                }
            }
            _ => {}
        }
        if let Some(items) = &n.items {
            let old_items = old.and_then(Value::as_array);
            for (i, x) in a.iter().enumerate() {
                let old_item = match (n.list_type.as_deref(), old_items) {
                    (Some("map"), Some(olds)) if !n.list_map_keys.is_empty() => olds
                        .iter()
                        .find(|o| n.list_map_keys.iter().all(|k| o.get(k) == x.get(k))),
                    _ => None,
                };
                self.validate(items, x, old_item, &index(path, i));
            }
        }
    }

    fn object(&mut self, n: &Node, m: &Map<String, Value>, old: Option<&Value>, path: &str) {
        for r in &n.required {
            if !m.contains_key(r) {
                self.errors.push(required(&child(path, r), ""));
            }
        }
        if n.embedded {
            for k in ["apiVersion", "kind"] {
                if !m.contains_key(k) {
                    self.errors
                        .push(required(&child(path, k), "must not be empty"));
                }
            }
        }
        if let Some(max) = n.max_props
            && m.len() as u64 > max
        {
            self.errors.push(too_many(path, m.len(), max));
        }
        if let Some(min) = n.min_props
            && (m.len() as u64) < min
        {
            self.errors.push(invalid(
                path,
                &m.len().to_string(),
                &format!("{} should have at least {min} properties", in_body(path)),
            ));
        }
        for (k, cv) in m {
            let sub = match n.properties.get(k) {
                Some(p) => Some(p),
                None => n.additional.as_deref(),
            };
            if let Some(sub) = sub {
                let old_child = old.and_then(|o| o.get(k));
                self.validate(sub, cv, old_child, &child(path, k));
            }
        }
    }

    fn cel(&mut self, n: &Node, v: &Value, old: Option<&Value>, path: &str) {
        let Some(compiled) = &n.cel else { return };
        self.saw_cel = true;
        let Err(errs) = kube_cel::validate_compiled(compiled, v, old) else {
            return;
        };
        let type_name = quoted(n.ty.as_deref().unwrap_or(""));
        for e in errs.iter() {
            let rel = e.field_path.trim_start_matches('.');
            let field = if rel.is_empty() {
                path.to_string()
            } else if path.is_empty() {
                rel.to_string()
            } else {
                format!("{path}.{rel}")
            };
            let err = match (&e.kind, e.reason.as_deref()) {
                (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueForbidden")) => {
                    forbidden(&field, &e.message)
                }
                (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueRequired")) => {
                    required(&field, &e.message)
                }
                (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueDuplicate")) => {
                    duplicate(&field, &type_name)
                }
                _ => invalid(&field, &type_name, &e.message),
            };
            match self.cel_errors.as_mut() {
                Some(c) => c.push(err),
                None => self.errors.push(err),
            }
        }
    }
}

/// Validates a custom resource against its CRD version's `openAPIV3Schema`: prunes unknown
/// fields (recording them: `Strict` → errors, `Warn` → warnings), applies defaults, then
/// validates types, formats (int-or-string, byte, date-time, ...), required, enum, pattern,
/// bounds, lengths, item counts, list-type set/map uniqueness, nullable, and the CEL
/// `x-kubernetes-validations` rules (transition rules when `old` is Some). `metadata` is left
/// to the caller.
pub fn validate_custom_resource(
    schema: &Value,
    obj: Value,
    old: Option<&Value>,
    unknown: UnknownFields,
) -> Result<Validated, Vec<FieldError>> {
    let root = compiled(schema);
    let mut obj = obj;
    let mut unknown_paths = Vec::new();
    prune(&root, &mut obj, "", true, &mut unknown_paths);
    if unknown == UnknownFields::Strict && !unknown_paths.is_empty() {
        return Err(unknown_paths.iter().map(|p| unknown_field(p)).collect());
    }
    let warnings = if unknown == UnknownFields::Warn {
        unknown_paths
            .iter()
            .map(|p| format!("unknown field {}", quoted(p)))
            .collect()
    } else {
        Vec::new()
    };
    apply_defaults(&root, &mut obj);
    prune_nulls(&root, &mut obj);
    let mut errors = Vec::new();
    validate_root(&root, &obj, old, &mut errors);
    if errors.is_empty() {
        Ok(Validated {
            object: obj,
            warnings,
        })
    } else {
        Err(errors)
    }
}

fn validate_root(root: &Node, obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let mut w = Walker {
        errors,
        cel_errors: Some(Vec::new()),
        saw_cel: false,
    };
    // The root's apiVersion/kind/metadata are the API server's business, not the schema's.
    let Value::Object(m) = obj else {
        w.validate(root, obj, old, "");
        w.finish_cel();
        return;
    };
    for r in &root.required {
        if !m.contains_key(r) && !ROOT_KEEP.contains(&r.as_str()) {
            w.errors.push(required(r, ""));
        }
    }
    for (k, cv) in m {
        if ROOT_KEEP.contains(&k.as_str()) {
            continue;
        }
        if let Some(sub) = root.properties.get(k) {
            w.validate(sub, cv, old.and_then(|o| o.get(k)), k);
        }
    }
    w.cel(root, obj, old, "");
    w.finish_cel();
}

impl Walker<'_> {
    /// kube-apiserver does not evaluate CEL rules when the schema found a blocking error
    /// (unsupported enum value, required, too long, too many, wrong type); it says so in a cause
    /// with the field `<nil>` instead.
    fn finish_cel(&mut self) {
        let cel = self.cel_errors.take().unwrap_or_default();
        let blocking = self.errors.iter().any(|e| {
            matches!(
                e.reason,
                FieldErrorReason::NotSupported
                    | FieldErrorReason::Required
                    | FieldErrorReason::TooLong
                    | FieldErrorReason::TooMany
                    | FieldErrorReason::TypeInvalid
            )
        });
        if blocking {
            if self.saw_cel {
                self.errors.push(FieldError {
                    field: "<nil>".into(),
                    reason: FieldErrorReason::Invalid,
                    message: "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
                });
            }
        } else {
            self.errors.extend(cel);
        }
    }
}

// ----------------------------------------------------------------------------------------
// CRD schema checks

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

struct SchemaChecker {
    errors: Vec<FieldError>,
    /// Forbidden causes of rules over the cost budget (kube-apiserver reports them after the
    /// schema's other errors).
    cost_errors: Vec<FieldError>,
    costs: cost::TotalCost,
}

/// Where a schema node sits, for CEL cost estimation: whether it is the resource root and the
/// product of the `maxItems`/`maxProperties` of its enclosing lists and maps (None: unbounded).
#[derive(Clone, Copy)]
struct Cardinality {
    root: bool,
    max: Option<u64>,
}

impl SchemaChecker {
    /// Structural-schema rules (KEP 1002) and CEL compilation of one schema node.
    fn check(
        &mut self,
        s: &Value,
        path: &str,
        in_junctor: bool,
        uncorrelatable: bool,
        card: Cardinality,
    ) {
        let Some(m) = s.as_object() else {
            self.errors.push(invalid(path, "\"\"", "must be an object"));
            return;
        };
        let ty = m.get("type").and_then(Value::as_str);
        let preserve = bool_of(m, "x-kubernetes-preserve-unknown-fields");
        let int_or_string = bool_of(m, "x-kubernetes-int-or-string");
        if let Some(t) = m.get("type") {
            match t.as_str() {
                Some(t) if TYPES.contains(&t) => {}
                _ => self.errors.push(not_supported(
                    &child(path, "type"),
                    t,
                    &TYPES.iter().map(|t| Value::from(*t)).collect::<Vec<_>>(),
                )),
            }
        } else if !in_junctor && !int_or_string && !preserve {
            self.errors.push(required(
                &child(path, "type"),
                "must not be empty for specified object fields",
            ));
        }
        if m.contains_key("properties") && m.contains_key("additionalProperties") {
            self.errors.push(forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if bool_of(m, "uniqueItems") {
            self.errors.push(forbidden(
                &child(path, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        if ty == Some("array") && !m.contains_key("items") {
            self.errors
                .push(required(&child(path, "items"), "must be specified"));
        }
        let list_type = m.get("x-kubernetes-list-type").and_then(Value::as_str);
        if let Some(lt) = m.get("x-kubernetes-list-type") {
            match lt.as_str() {
                Some("atomic" | "set" | "map") => {}
                _ => self.errors.push(not_supported(
                    &child(path, "x-kubernetes-list-type"),
                    lt,
                    &[
                        Value::from("atomic"),
                        Value::from("set"),
                        Value::from("map"),
                    ],
                )),
            }
        }
        if list_type == Some("map") {
            let keys = m
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if keys.is_empty() {
                self.errors.push(required(
                    &child(path, "x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
            let items = m.get("items");
            for k in keys.iter().filter_map(Value::as_str) {
                let prop = items.and_then(|i| i.pointer(&format!("/properties/{k}")));
                let req = items
                    .and_then(|i| i.get("required"))
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)));
                if prop.is_none() {
                    self.errors.push(invalid(
                        &child(path, "x-kubernetes-list-map-keys"),
                        &quoted(k),
                        "entries must all be names of item properties",
                    ));
                } else if !req && prop.and_then(|p| p.get("default")).is_none() {
                    self.errors.push(required(
                        &format!("{path}.items.properties[{k}]"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
            }
        }
        if let Some(rules) = m.get("x-kubernetes-validations") {
            self.check_rules(
                s,
                rules,
                &child(path, "x-kubernetes-validations"),
                uncorrelatable,
                (!in_junctor).then_some(card),
            );
        }
        let child_card = Cardinality {
            root: false,
            max: card
                .max
                .and_then(|c| cost::max_elements(s).map(|e| c.saturating_mul(e))),
        };
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                self.check(
                    v,
                    &format!("{path}.properties[{k}]"),
                    in_junctor,
                    uncorrelatable,
                    child_card,
                );
            }
        }
        if let Some(items) = m.get("items") {
            let unc = uncorrelatable || list_type != Some("map");
            self.check(items, &child(path, "items"), in_junctor, unc, child_card);
        }
        if let Some(add) = m.get("additionalProperties")
            && add.is_object()
        {
            self.check(
                add,
                &child(path, "additionalProperties"),
                in_junctor,
                uncorrelatable,
                child_card,
            );
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(a) = m.get(key).and_then(Value::as_array) {
                for (i, b) in a.iter().enumerate() {
                    self.check(
                        b,
                        &index(&child(path, key), i),
                        true,
                        uncorrelatable,
                        child_card,
                    );
                }
            }
        }
        if let Some(d) = m.get("default") {
            let node = compile_node(&strip_descendant_rules(s));
            Walker::new(&mut self.errors).validate(&node, d, None, &child(path, "default"));
        }
        if let Some(p) = m.get("pattern").and_then(Value::as_str)
            && let Err(e) = compile_pattern(p)
        {
            self.errors.push(invalid(
                &child(path, "pattern"),
                &quoted(p),
                &format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }

    fn check_rules(
        &mut self,
        schema: &Value,
        rules: &Value,
        path: &str,
        uncorrelatable: bool,
        card: Option<Cardinality>,
    ) {
        let Some(list) = rules.as_array() else {
            self.errors.push(invalid(path, "\"\"", "must be a list"));
            return;
        };
        let compiled = kube_cel::compile_schema(&strip_descendant_rules(schema));
        // The rules' CEL declaration, for their cost estimate (none inside allOf/anyOf/oneOf/not).
        let decl = card.and_then(|c| {
            let embedded = bool_of(
                schema.as_object().unwrap_or(&Map::new()),
                "x-kubernetes-embedded-resource",
            );
            cost::decl_type(schema, c.root || embedded).map(|d| (d, c.max))
        });
        for (i, raw) in list.iter().enumerate() {
            let rpath = index(path, i);
            let rule = raw.get("rule").and_then(Value::as_str).unwrap_or_default();
            if rule.trim().is_empty() {
                self.errors.push(required(&child(&rpath, "rule"), ""));
                continue;
            }
            if let Some(Err(e)) = compiled.validations.get(i) {
                self.errors.push(invalid(
                    &child(&rpath, "rule"),
                    &quoted(rule),
                    &format!("compilation failed: {e}"),
                ));
                continue;
            }
            if let Some((d, max)) = &decl {
                self.observe_cost(d, *max, rule, &child(&rpath, "rule"));
            }
            let uses_old = Program::compile(rule)
                .map(|p| p.references().has_variable("oldSelf"))
                .unwrap_or(false);
            if uses_old && uncorrelatable {
                self.errors.push(invalid(
                    &child(&rpath, "rule"),
                    &quoted(rule),
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within the list",
                ));
            }
            if let Some(r) = raw.get("reason").and_then(Value::as_str)
                && ![
                    "FieldValueInvalid",
                    "FieldValueForbidden",
                    "FieldValueRequired",
                    "FieldValueDuplicate",
                ]
                .contains(&r)
            {
                self.errors.push(not_supported(
                    &child(&rpath, "reason"),
                    &Value::from(r),
                    &[
                        Value::from("FieldValueInvalid"),
                        Value::from("FieldValueForbidden"),
                        Value::from("FieldValueRequired"),
                        Value::from("FieldValueDuplicate"),
                    ],
                ));
            }
        }
    }
}

impl SchemaChecker {
    /// The estimated cost of one rule times the cardinality of its node (`getExpressionCost`):
    /// refused over [`cost::STATIC_ESTIMATED_COST_LIMIT`], added to the schema's total.
    fn observe_cost(&mut self, decl: &cost::Decl, max: Option<u64>, rule: &str, path: &str) {
        let Ok(ast) = kube_cel::cel::parser::Parser::new().parse(rule) else {
            return;
        };
        let base = cost::rule_cost(decl, &ast);
        let cardinality = max.unwrap_or_else(|| cost::max_cardinality(decl.min_size()));
        let c = if base == 0 {
            0
        } else {
            base.saturating_mul(cardinality)
        };
        if c > cost::STATIC_ESTIMATED_COST_LIMIT {
            self.cost_errors.push(forbidden(
                path,
                &cost::cost_error_message(
                    "estimated rule cost",
                    c,
                    cost::STATIC_ESTIMATED_COST_LIMIT,
                ),
            ));
        }
        self.costs.observe(path, c);
    }

    /// Checks one version's schema at `base`: its errors, then its rules' cost errors, then the
    /// total (kube-apiserver's order).
    fn check_schema(&mut self, s: &Value, base: &str) {
        self.costs = cost::TotalCost::default();
        self.check(
            s,
            base,
            false,
            false,
            Cardinality {
                root: true,
                max: Some(1),
            },
        );
        self.errors.append(&mut self.cost_errors);
        if self.costs.total > cost::STATIC_ESTIMATED_CRD_COST_LIMIT {
            for (p, _) in &self.costs.most_expensive {
                self.errors.push(forbidden(
                    p,
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                ));
            }
            self.errors.push(forbidden(
                base,
                &cost::cost_error_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    self.costs.total,
                    cost::STATIC_ESTIMATED_CRD_COST_LIMIT,
                ),
            ));
        }
    }
}

/// Structural-schema sanity of a CustomResourceDefinition's versions, as kube-apiserver checks
/// it on create/update: every version has a schema, every specified field has a `type` (unless
/// int-or-string / preserve-unknown-fields), arrays have `items`, `properties` and
/// `additionalProperties` are exclusive, no `uniqueItems: true`, list-map keys exist and are
/// required or defaulted, defaults are valid, and every CEL rule compiles (kube-cel) and uses
/// `oldSelf` only where Kubernetes can correlate the old value.
pub fn validate_crd_schema(crd: &Value) -> Result<(), Vec<FieldError>> {
    let mut c = SchemaChecker {
        errors: Vec::new(),
        cost_errors: Vec::new(),
        costs: cost::TotalCost::default(),
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        c.errors.push(required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    // kube-apiserver hoists a schema every version shares to `spec.validation` (the internal API)
    // and names its errors there.
    let shared = !versions.is_empty()
        && versions.iter().all(|v| {
            v.pointer("/schema/openAPIV3Schema").is_some()
                && v.pointer("/schema/openAPIV3Schema")
                    == versions[0].pointer("/schema/openAPIV3Schema")
        });
    for (i, v) in versions.iter().enumerate() {
        if shared && i > 0 {
            break;
        }
        let base = if shared {
            "spec.validation.openAPIV3Schema".to_string()
        } else {
            format!("spec.versions[{i}].schema.openAPIV3Schema")
        };
        match v.pointer("/schema/openAPIV3Schema") {
            None => c.errors.push(required(&base, "schemas are required")),
            Some(s) => {
                if s.get("type").and_then(Value::as_str) != Some("object") {
                    c.errors.push(invalid(
                        &child(&base, "type"),
                        &go_value(s.get("type").unwrap_or(&Value::Null)),
                        "must be object at the root",
                    ));
                }
                c.check_schema(s, &base);
            }
        }
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

mod cost;

#[cfg(test)]
mod tests;
