//! Static cost estimation of `x-kubernetes-validations` rules at CRD admission, as kube-apiserver does it
//! (k8s.io/apiextensions-apiserver `validation.go` + `schema/cel/compilation.go` + `schema/cel/model`,
//! cel-go `checker/cost.go`, k8s.io/apiserver `pkg/cel/library/cost.go`):
//!
//! * every schema node gets a CEL declaration type with size bounds ([`Decl`], `SchemaDeclType`):
//!   strings `maxLength × 4` (bytes) or their longest `enum` value (unbounded: the 3 MiB request
//!   size), lists `maxItems`, maps
//!   `maxProperties`, unbounded lists and maps as many of their smallest serialized element as fit in
//!   one request, and each type's minimum serialized size;
//! * a rule's cost is estimated over its parsed (macro-expanded) AST the way cel-go's `coster` does it:
//!   identifiers and selections cost 1, comprehensions cost `range size × (step + condition)`,
//!   string/bytes/equality operations cost 0.1 per element of the smaller operand, `contains` and
//!   `matches` the product of both sizes, `&&`/`||`/`?:` their operands, the Kubernetes library
//!   functions (`sum`, `indexOf`, `quantity`, `split`, `join`, ...) their own estimates, everything else 1;
//!   sizes come from the schema through the field path of each expression (`self.a.@items.b`);
//! * the rule's cost is multiplied by its location's cardinality, the product of the `maxItems` /
//!   `maxProperties` of the enclosing lists and maps (unbounded: the number of smallest elements that fit
//!   in one request); over 10,000,000 the rule is refused, and over 100,000,000 for all rules of a schema
//!   the schema is refused, naming the (at most 4) rules contributing 1% or more.
//!
//! The type checking is the part that is simplified: expression types are derived from the schema and
//! from a table of function result types, and a `dyn` operand takes the union of the candidate overloads,
//! as cel-go does for dynamic types. `messageExpression` costs are not estimated.

use std::collections::BTreeMap;

use kube_cel::cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use serde_json::Value;

/// `StaticEstimatedCostLimit`: the largest estimated cost of one rule (× its cardinality).
pub(super) const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// `StaticEstimatedCRDCostLimit`: the largest estimated cost of all rules of one schema.
pub(super) const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;
/// `MaxRequestSizeBytes` (k8s.io/apiserver/pkg/apis/apiserver/config).
const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;
const STRING_TRAVERSAL: f64 = 0.1;
const REGEX_STRING_LENGTH: f64 = 0.25;
const LIST_CREATE_BASE: u64 = 10;
const MAP_CREATE_BASE: u64 = 30;
const STRUCT_CREATE_BASE: u64 = 40;
const MIN_STRING_SIZE: u64 = 2;
const MIN_BOOL_SIZE: u64 = 4;
const MIN_NUMBER_SIZE: u64 = 1;
const MIN_DURATION_SIZE_JSON: u64 = 3;
const MAX_DURATION_SIZE_JSON: u64 = 32;
const JSON_DATE_SIZE: u64 = 12;
const MIN_DATETIME_SIZE_JSON: u64 = 21;
const MAX_DATETIME_SIZE_JSON: u64 = 32;

// ----------------------------------------------------------------------------------------
// Estimates

/// cel-go's `SizeEstimate` / `CostEstimate`: a [min, max] range that saturates instead of overflowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Est {
    min: u64,
    max: u64,
}

impl Est {
    const UNKNOWN: Est = Est {
        min: 0,
        max: u64::MAX,
    };

    const fn fixed(v: u64) -> Est {
        Est { min: v, max: v }
    }

    const fn new(min: u64, max: u64) -> Est {
        Est { min, max }
    }

    fn add(self, o: Est) -> Est {
        Est::new(
            self.min.saturating_add(o.min),
            self.max.saturating_add(o.max),
        )
    }

    fn mul(self, o: Est) -> Est {
        Est::new(
            self.min.saturating_mul(o.min),
            self.max.saturating_mul(o.max),
        )
    }

    /// `MultiplyByCostFactor`: rounded up, saturating.
    fn factor(self, f: f64) -> Est {
        Est::new(mul_factor(self.min, f), mul_factor(self.max, f))
    }

    fn union(self, o: Est) -> Est {
        Est::new(self.min.min(o.min), self.max.max(o.max))
    }
}

fn mul_factor(x: u64, y: f64) -> u64 {
    let xf = x as f64;
    if xf > 0.0 && y > 0.0 && xf > u64::MAX as f64 / y {
        return u64::MAX;
    }
    let c = (xf * y).ceil();
    if c >= 18_446_744_073_709_551_616.0 {
        u64::MAX
    } else {
        c as u64
    }
}

/// cel-go's `entrySizeEstimate`: the key and value sizes of a list or map built in the expression.
#[derive(Debug, Clone, Copy)]
struct Entry {
    list: bool,
    key: Est,
    val: Est,
}

fn union_entry(a: Option<Entry>, b: Option<Entry>) -> Option<Entry> {
    let (a, b) = (a?, b?);
    Some(Entry {
        list: a.list,
        key: a.key.union(b.key),
        val: a.val.union(b.val),
    })
}

// ----------------------------------------------------------------------------------------
// Declaration types (apiextensions schema/cel/model.SchemaDeclType)

#[derive(Debug)]
pub(super) enum DeclKind {
    Object(BTreeMap<String, Decl>),
    List(Box<Decl>),
    /// A map with string keys (`additionalProperties`).
    Map(Box<Decl>),
    String,
    Bytes,
    Int,
    Double,
    Bool,
    Duration,
    Timestamp,
    Dyn,
}

/// A schema node as CEL sees it: its type, `MaxElements` (length of strings, items of lists, entries
/// of maps) and `MinSerializedSize`.
#[derive(Debug)]
pub(super) struct Decl {
    kind: DeclKind,
    max_elements: u64,
    min_size: u64,
}

impl Decl {
    /// `MinSerializedSize`.
    pub(super) fn min_size(&self) -> u64 {
        self.min_size
    }
}

/// The declaration of the string keys of a map (`apiservercel.StringType`: no `MaxElements`).
static MAP_KEY: Decl = Decl {
    kind: DeclKind::String,
    max_elements: 0,
    min_size: MIN_STRING_SIZE,
};

fn simple(kind: DeclKind, min_size: u64) -> Decl {
    Decl {
        kind,
        max_elements: 0,
        min_size,
    }
}

/// `cel.Escape`: the CEL field name of a property, None when it has none.
fn escape(name: &str) -> Option<String> {
    const RESERVED: [&str; 21] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

fn u64_at(s: &serde_json::Map<String, Value>, k: &str) -> Option<u64> {
    s.get(k)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .map(|v| v.max(0) as u64)
}

fn string_max_length_per_request(format: Option<&str>) -> u64 {
    match format {
        Some("duration") => MAX_DURATION_SIZE_JSON,
        Some("date") => JSON_DATE_SIZE,
        Some("date-time") => MAX_DATETIME_SIZE_JSON,
        _ => MAX_REQUEST_SIZE_BYTES - 2,
    }
}

/// `SchemaDeclType`: the CEL declaration of a schema node, None when CEL cannot see it.
pub(super) fn decl_type(schema: &Value, resource_root: bool) -> Option<Decl> {
    let s = schema.as_object()?;
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Some(Decl {
            kind: DeclKind::Dyn,
            max_elements: u64_at(s, "maxLength")
                .map_or(MAX_REQUEST_SIZE_BYTES - 2, |m| m.saturating_mul(4)),
            min_size: 1,
        });
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "array" => {
            let items = s.get("items")?;
            let embedded = items
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let item = decl_type(items, embedded)?;
            let max = u64_at(s, "maxItems")
                .unwrap_or((MAX_REQUEST_SIZE_BYTES - 2) / (item.min_size.saturating_add(1)));
            Some(Decl {
                kind: DeclKind::List(Box::new(item)),
                max_elements: max,
                min_size: 2,
            })
        }
        "object" => {
            if let Some(add) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let embedded = add
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
                let val = decl_type(add, embedded)?;
                let max = u64_at(s, "maxProperties")
                    .unwrap_or((MAX_REQUEST_SIZE_BYTES - 2) / (val.min_size.saturating_add(6)));
                return Some(Decl {
                    kind: DeclKind::Map(Box::new(val)),
                    max_elements: max,
                    min_size: 2,
                });
            }
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut fields = BTreeMap::new();
            let mut min_size = 2u64;
            let props = s.get("properties").and_then(Value::as_object);
            for (name, prop) in props.into_iter().flatten() {
                if resource_root && matches!(name.as_str(), "kind" | "apiVersion" | "metadata") {
                    continue;
                }
                let embedded = prop
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
                let Some(field) = decl_type(prop, embedded) else {
                    continue;
                };
                if required.contains(&name.as_str()) && prop.get("default").is_none() {
                    min_size = min_size
                        .saturating_add(name.len() as u64)
                        .saturating_add(field.min_size)
                        .saturating_add(4);
                }
                if let Some(escaped) = escape(name) {
                    fields.insert(escaped, field);
                }
            }
            if resource_root {
                // WithTypeAndObjectMeta: apiVersion, kind, metadata.name and metadata.generateName are
                // always visible at the root of a resource; apiVersion and kind are unbounded.
                let string = || Decl {
                    kind: DeclKind::String,
                    max_elements: MAX_REQUEST_SIZE_BYTES - 2,
                    min_size: MIN_STRING_SIZE,
                };
                fields.insert("kind".into(), string());
                fields.insert("apiVersion".into(), string());
                // metadata.name and generateName are bounded as DNS subdomains (253 characters):
                // measured on kube-apiserver v1.37.2, where a rule `self.metadata.name.matches(re)`
                // costs what a 253-character string does.
                let name = || Decl {
                    kind: DeclKind::String,
                    max_elements: 253 * 4,
                    min_size: MIN_STRING_SIZE,
                };
                let meta = BTreeMap::from([
                    ("name".to_string(), name()),
                    ("generateName".to_string(), name()),
                ]);
                fields.insert(
                    "metadata".into(),
                    Decl {
                        kind: DeclKind::Object(meta),
                        max_elements: 0,
                        min_size: 2,
                    },
                );
            }
            Some(Decl {
                kind: DeclKind::Object(fields),
                max_elements: 0,
                min_size,
            })
        }
        "string" => {
            let format = s.get("format").and_then(Value::as_str);
            let max_length = u64_at(s, "maxLength");
            let (kind, min_size, max) = match format {
                Some("byte") => (
                    DeclKind::Bytes,
                    MIN_STRING_SIZE,
                    max_length.unwrap_or(MAX_REQUEST_SIZE_BYTES - 2),
                ),
                Some("duration") => (
                    DeclKind::Duration,
                    MIN_DURATION_SIZE_JSON,
                    MAX_DURATION_SIZE_JSON,
                ),
                Some("date") => (DeclKind::Timestamp, JSON_DATE_SIZE, JSON_DATE_SIZE),
                Some("date-time") => (
                    DeclKind::Timestamp,
                    MIN_DATETIME_SIZE_JSON,
                    MAX_DATETIME_SIZE_JSON,
                ),
                _ => (
                    DeclKind::String,
                    MIN_STRING_SIZE,
                    // maxLength counts code points; CEL sizes count bytes (up to 4 per code point).
                    match (max_length, s.get("enum").and_then(Value::as_array)) {
                        (Some(m), _) => m.saturating_mul(4),
                        // The longest enum value.
                        (None, Some(e)) if !e.is_empty() => e
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|v| v.len() as u64)
                            .max()
                            .unwrap_or(0),
                        (None, _) => string_max_length_per_request(format),
                    },
                ),
            };
            Some(Decl {
                kind,
                max_elements: max,
                min_size,
            })
        }
        "boolean" => Some(simple(DeclKind::Bool, MIN_BOOL_SIZE)),
        "number" => Some(simple(DeclKind::Double, MIN_NUMBER_SIZE)),
        "integer" => Some(simple(DeclKind::Int, MIN_NUMBER_SIZE)),
        _ => None,
    }
}

/// `MaxCardinality`: how often data of this minimum serialized size fits in one request.
pub(super) fn max_cardinality(min_size: u64) -> u64 {
    MAX_REQUEST_SIZE_BYTES / (min_size.saturating_add(1))
}

/// `extractMaxElements`: the factor by which a schema node multiplies the cardinality of its children;
/// None when unbounded.
pub(super) fn max_elements(schema: &Value) -> Option<u64> {
    let s = schema.as_object()?;
    match s.get("type").and_then(Value::as_str) {
        Some("object") if s.contains_key("additionalProperties") => u64_at(s, "maxProperties"),
        Some("array") => u64_at(s, "maxItems"),
        _ => Some(1),
    }
}

// ----------------------------------------------------------------------------------------
// Types (a simplified type checker over the schema's declarations)

#[derive(Debug, Clone)]
enum Ty<'a> {
    Decl(&'a Decl),
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Duration,
    Timestamp,
    List(Box<Ty<'a>>),
    Map(Box<Ty<'a>>, Box<Ty<'a>>),
    /// A Kubernetes library type (Quantity, URL, IP, CIDR, ...).
    Opaque,
    Dyn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Duration,
    Timestamp,
    List,
    Map,
    Struct,
    Opaque,
    Dyn,
}

impl<'a> Ty<'a> {
    /// The schema declaration as a CEL type.
    fn norm(&self) -> Ty<'a> {
        match self {
            Ty::Decl(d) => match &d.kind {
                DeclKind::Object(_) => self.clone(),
                DeclKind::List(e) => Ty::List(Box::new(Ty::Decl(e))),
                DeclKind::Map(v) => Ty::Map(Box::new(Ty::Decl(&MAP_KEY)), Box::new(Ty::Decl(v))),
                DeclKind::String => Ty::String,
                DeclKind::Bytes => Ty::Bytes,
                DeclKind::Int => Ty::Int,
                DeclKind::Double => Ty::Double,
                DeclKind::Bool => Ty::Bool,
                DeclKind::Duration => Ty::Duration,
                DeclKind::Timestamp => Ty::Timestamp,
                DeclKind::Dyn => Ty::Dyn,
            },
            other => other.clone(),
        }
    }

    fn kind(&self) -> Kind {
        match self.norm() {
            Ty::Decl(_) => Kind::Struct,
            Ty::Bool => Kind::Bool,
            Ty::Int => Kind::Int,
            Ty::Uint => Kind::Uint,
            Ty::Double => Kind::Double,
            Ty::String => Kind::String,
            Ty::Bytes => Kind::Bytes,
            Ty::Null => Kind::Null,
            Ty::Duration => Kind::Duration,
            Ty::Timestamp => Kind::Timestamp,
            Ty::List(_) => Kind::List,
            Ty::Map(..) => Kind::Map,
            Ty::Opaque => Kind::Opaque,
            Ty::Dyn => Kind::Dyn,
        }
    }

    /// The first type parameter: a list's element, a map's key.
    fn param(&self) -> Option<Ty<'a>> {
        match self.norm() {
            Ty::List(e) => Some(*e),
            Ty::Map(k, _) => Some(*k),
            _ => None,
        }
    }

    fn list_elem_or_map_value(&self) -> Ty<'a> {
        match self.norm() {
            Ty::List(e) => *e,
            Ty::Map(_, v) => *v,
            _ => Ty::Dyn,
        }
    }

    fn field(&self, name: &str) -> Ty<'a> {
        match self {
            Ty::Decl(Decl {
                kind: DeclKind::Object(fields),
                ..
            }) => fields.get(name).map_or(Ty::Dyn, Ty::Decl),
            _ => match self.norm() {
                Ty::Map(_, v) => *v,
                _ => Ty::Dyn,
            },
        }
    }
}

/// cel-go's `isScalar`.
fn is_scalar(k: Kind) -> bool {
    matches!(
        k,
        Kind::Bool | Kind::Double | Kind::Duration | Kind::Int | Kind::Timestamp | Kind::Uint
    )
}

// ----------------------------------------------------------------------------------------
// The coster

/// What the coster knows about one evaluated sub-expression.
#[derive(Debug, Clone)]
struct Node<'a> {
    cost: Est,
    ty: Ty<'a>,
    /// The field path (`self`, `spec`, `@items`, ...); empty when there is none.
    path: Vec<String>,
    /// A size computed from the expression itself (literals, call results, comprehensions).
    computed: Option<Est>,
    entry: Option<Entry>,
    /// The size of the local variable this identifier names.
    local_size: Option<Est>,
}

impl<'a> Node<'a> {
    fn new(cost: Est, ty: Ty<'a>) -> Node<'a> {
        Node {
            cost,
            ty,
            path: Vec::new(),
            computed: None,
            entry: None,
            local_size: None,
        }
    }
}

struct Local<'a> {
    name: String,
    ty: Ty<'a>,
    path: Vec<String>,
    size: Option<Est>,
    entry: Option<Entry>,
}

struct Coster<'a> {
    root: &'a Decl,
    locals: Vec<Local<'a>>,
}

/// The estimated cost of a rule on a node declared as `root` (cel-go `Cost` with Kubernetes' estimator,
/// `PresenceTestHasCost(false)`): the rule's `MaxCost`.
pub(super) fn rule_cost(root: &Decl, expr: &IdedExpr) -> u64 {
    let mut c = Coster {
        root,
        locals: Vec::new(),
    };
    c.cost(expr).cost.max
}

impl<'a> Coster<'a> {
    fn local(&self, name: &str) -> Option<&Local<'a>> {
        self.locals.iter().rev().find(|l| l.name == name)
    }

    /// The Kubernetes size estimator: the `MaxElements` of the declaration the path leads to.
    fn estimate_size(&self, path: &[String]) -> Option<Est> {
        let (_, rest) = path.split_first()?;
        let mut d = self.root;
        for p in rest {
            d = match (p.as_str(), &d.kind) {
                ("@items" | "@values", DeclKind::List(e) | DeclKind::Map(e)) => e,
                ("@keys", DeclKind::Map(_)) => &MAP_KEY,
                (name, DeclKind::Object(fields)) if !name.starts_with('@') => fields.get(name)?,
                _ => return None,
            };
        }
        Some(Est::new(0, d.max_elements))
    }

    /// `computeSize`.
    fn size(&self, n: &Node<'a>) -> Option<Est> {
        n.computed
            .or_else(|| self.estimate_size(&n.path))
            .or_else(|| is_scalar(n.ty.kind()).then_some(Est::fixed(1)))
            .or(n.local_size)
    }

    fn size_or_unknown(&self, n: &Node<'a>) -> Est {
        self.size(n).unwrap_or(Est::UNKNOWN)
    }

    fn cost(&mut self, e: &IdedExpr) -> Node<'a> {
        match &e.expr {
            Expr::Unspecified => Node::new(Est::fixed(0), Ty::Dyn),
            Expr::Literal(l) => {
                let (ty, size) = match l {
                    LiteralValue::Boolean(_) => (Ty::Bool, 1),
                    LiteralValue::Int(_) => (Ty::Int, 1),
                    LiteralValue::UInt(_) => (Ty::Uint, 1),
                    LiteralValue::Double(_) => (Ty::Double, 1),
                    LiteralValue::Null => (Ty::Null, 1),
                    LiteralValue::String(s) => (Ty::String, s.inner().chars().count() as u64),
                    LiteralValue::Bytes(b) => (Ty::Bytes, b.as_ref().len() as u64),
                };
                let mut n = Node::new(Est::fixed(0), ty);
                n.computed = Some(Est::fixed(size));
                n
            }
            Expr::Ident(name) => {
                let mut n = Node::new(Est::fixed(1), Ty::Dyn);
                if let Some(l) = self.local(name) {
                    n.ty = l.ty.clone();
                    n.path = l.path.clone();
                    n.local_size = l.size;
                    n.entry = l.entry;
                } else {
                    if name == "self" || name == "oldSelf" {
                        n.ty = Ty::Decl(self.root);
                    }
                    n.path = vec![name.clone()];
                }
                n
            }
            Expr::Select(sel) => {
                let op = self.cost(&sel.operand);
                if sel.test {
                    // PresenceTestHasCost(false): has() adds nothing to its operand.
                    return Node::new(op.cost, Ty::Bool);
                }
                let mut cost = op.cost;
                if matches!(op.ty.kind(), Kind::Map | Kind::Struct) {
                    cost = cost.add(Est::fixed(1));
                }
                let mut n = Node::new(cost, op.ty.field(&sel.field));
                n.path = op.path.clone();
                n.path.push(sel.field.clone());
                n
            }
            Expr::List(list) => {
                let mut cost = Est::fixed(0);
                let mut item = Est::new(u64::MAX, 0);
                if list.elements.is_empty() {
                    item.min = 0;
                }
                let mut elem_ty = Ty::Dyn;
                for (i, el) in list.elements.iter().enumerate() {
                    let n = self.cost(el);
                    cost = cost.add(n.cost);
                    item = item.union(self.size_or_unknown(&n));
                    if i == 0 {
                        elem_ty = n.ty;
                    }
                }
                let mut n = Node::new(
                    cost.add(Est::fixed(LIST_CREATE_BASE)),
                    Ty::List(Box::new(elem_ty)),
                );
                n.computed = Some(Est::fixed(list.elements.len() as u64));
                n.entry = Some(Entry {
                    list: true,
                    key: Est::fixed(1),
                    val: item,
                });
                n
            }
            Expr::Map(map) => {
                let mut cost = Est::fixed(0);
                let (mut key, mut val) = (Est::new(u64::MAX, 0), Est::new(u64::MAX, 0));
                if map.entries.is_empty() {
                    key.min = 0;
                    val.min = 0;
                }
                let (mut kt, mut vt) = (Ty::Dyn, Ty::Dyn);
                for (i, ent) in map.entries.iter().enumerate() {
                    if let EntryExpr::MapEntry(me) = &ent.expr {
                        let k = self.cost(&me.key);
                        let v = self.cost(&me.value);
                        cost = cost.add(k.cost).add(v.cost);
                        key = key.union(self.size_or_unknown(&k));
                        val = val.union(self.size_or_unknown(&v));
                        if i == 0 {
                            (kt, vt) = (k.ty, v.ty);
                        }
                    }
                }
                let mut n = Node::new(
                    cost.add(Est::fixed(MAP_CREATE_BASE)),
                    Ty::Map(Box::new(kt), Box::new(vt)),
                );
                n.computed = Some(Est::fixed(map.entries.len() as u64));
                n.entry = Some(Entry {
                    list: false,
                    key,
                    val,
                });
                n
            }
            Expr::Struct(st) => {
                let mut cost = Est::fixed(STRUCT_CREATE_BASE);
                for ent in &st.entries {
                    if let EntryExpr::StructField(f) = &ent.expr {
                        cost = cost.add(self.cost(&f.value).cost);
                    }
                }
                Node::new(cost, Ty::Opaque)
            }
            Expr::Comprehension(comp) => self.comprehension(comp),
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
        }
    }

    fn comprehension(&mut self, comp: &kube_cel::cel::common::ast::ComprehensionExpr) -> Node<'a> {
        let range = self.cost(&comp.iter_range);
        let init = self.cost(&comp.accu_init);
        let mut sum = range.cost.add(init.cost);
        self.locals.push(Local {
            name: comp.accu_var.clone(),
            ty: init.ty.clone(),
            path: init.path.clone(),
            size: self.size(&init),
            entry: init.entry,
        });
        // pushIterSingle: the iteration variable is a list's item or a map's key.
        let list = range
            .entry
            .map_or(range.ty.kind() == Kind::List, |e| e.list);
        let (size, sub, ty) = if list {
            (
                range.entry.map(|e| e.val),
                "@items",
                range.ty.list_elem_or_map_value(),
            )
        } else {
            (
                range.entry.map(|e| e.key),
                "@keys",
                range.ty.param().unwrap_or(Ty::Dyn),
            )
        };
        let mut path = range.path.clone();
        path.push(sub.to_string());
        let pushed = 1 + usize::from(comp.iter_var2.is_some());
        self.locals.push(Local {
            name: comp.iter_var.clone(),
            ty,
            path,
            size,
            entry: None,
        });
        if let Some(v2) = &comp.iter_var2 {
            self.locals.push(Local {
                name: v2.clone(),
                ty: Ty::Dyn,
                path: Vec::new(),
                size: None,
                entry: None,
            });
        }
        let loop_cost = self.cost(&comp.loop_cond).cost;
        let step = self.cost(&comp.loop_step);
        for _ in 0..pushed {
            self.locals.pop();
        }
        // The accumulator takes the type the step gives it (a list built by map()/filter()).
        if let Some(acc) = self.locals.last_mut()
            && matches!(step.ty.kind(), Kind::List | Kind::Map)
        {
            acc.ty = step.ty.clone();
        }
        let result = self.cost(&comp.result);
        self.locals.pop();
        sum = sum.add(result.cost);
        let range_cnt = self.size_or_unknown(&range);
        sum = sum.add(range_cnt.mul(step.cost.add(loop_cost)));
        let mut n = Node::new(sum, result.ty);
        match &comp.accu_init.expr {
            Expr::Literal(_) => n.computed = self.size(&init),
            Expr::List(_) | Expr::Map(_) => {
                n.computed = Some(range_cnt);
                n.entry = step.entry;
            }
            _ => {}
        }
        n
    }

    fn call(&mut self, func: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> Node<'a> {
        if func == "dyn" && target.is_none() && args.len() == 1 {
            let a = self.cost(&args[0]);
            let mut n = Node::new(Est::fixed(1).add(a.cost), Ty::Dyn);
            n.computed = self.size(&a);
            n.entry = a.entry;
            return n;
        }
        let args: Vec<Node<'a>> = args.iter().map(|a| self.cost(a)).collect();
        let target = target.map(|t| self.cost(t));
        let mut sum = target.as_ref().map_or(Est::fixed(0), |t| t.cost);
        let ty = result_type(func, target.as_ref(), &args);
        let mut n = Node::new(Est::fixed(0), ty);
        let (cost, size, entry) = self.function_cost(func, target.as_ref(), &args);
        n.entry = entry;
        if func == operators::INDEX && args.len() == 2 {
            let sub = if args[0].ty.kind() == Kind::List {
                "@items"
            } else {
                "@values"
            };
            n.path = args[0].path.clone();
            n.path.push(sub.to_string());
            n.computed = args[0].entry.map(|e| e.val);
        } else {
            n.computed = size;
        }
        sum = sum.add(cost);
        n.cost = sum;
        n
    }

    /// `sizeEstimate` of the Kubernetes library: the computed size or the schema's bound.
    fn lib_size(&self, n: &Node<'a>) -> Est {
        self.size_or_unknown(n)
    }

    /// `listElementNode`: the size of the items of a list (or keys of a map) found through its path.
    fn element_size(&self, list: &Node<'a>) -> Option<(Kind, Est)> {
        let elem = list.ty.param()?;
        let size = if list.path.is_empty() {
            None
        } else {
            let mut p = list.path.clone();
            p.push("@items".into());
            self.estimate_size(&p)
        };
        Some((elem.kind(), size.unwrap_or(Est::UNKNOWN)))
    }

    /// The Kubernetes library's `EstimateCallCost` (by function name).
    fn library_cost(
        &self,
        func: &str,
        target: Option<&Node<'a>>,
        args: &[Node<'a>],
    ) -> Option<(Est, Option<Est>)> {
        let trav = |e: Est| e.factor(STRING_TRAVERSAL);
        match func {
            "check" => Some((Est::fixed(350_000), None)),
            "serviceAccount"
            | "path"
            | "group"
            | "resource"
            | "subresource"
            | "namespace"
            | "name"
            | "allowed"
            | "reason"
            | "error"
            | "errored"
            | "masked"
            | "prefixLength"
            | "family"
            | "isUnspecified"
            | "isLoopback"
            | "isLinkLocalMulticast"
            | "isLinkLocalUnicast"
            | "sign"
            | "asInteger"
            | "isInteger"
            | "asApproximateFloat"
            | "isGreaterThan"
            | "isLessThan"
            | "compareTo"
            | "add"
            | "sub" => Some((Est::fixed(1), None)),
            "isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf" => {
                let t = target?;
                match self.element_size(t) {
                    Some((k, sz)) => {
                        let mut el = Est::fixed(1);
                        if matches!(k, Kind::String | Kind::Bytes) {
                            el = el.add(trav(sz));
                        }
                        Some((self.lib_size(t).mul(el), None))
                    }
                    None => Some((trav(self.lib_size(t)), None)),
                }
            }
            "url" if args.len() == 1 => Some((trav(self.lib_size(&args[0])), None)),
            "lowerAscii" | "upperAscii" | "substring" | "trim" => {
                let sz = self.lib_size(target?);
                Some((trav(sz), Some(sz)))
            }
            "replace" if args.len() >= 2 => {
                let sz = self.lib_size(target?);
                let (from, with) = (self.lib_size(&args[0]), self.lib_size(&args[1]));
                let (mut count, mut retained) = (Est::fixed(0), Est::fixed(0));
                if from.min == 0 {
                    count.max = sz.max.saturating_add(1);
                    retained.max = sz.max;
                } else if with.max <= from.min {
                    retained.max = sz.max;
                } else {
                    count.max = (sz.max as f64 / from.min as f64).ceil() as u64;
                }
                if from.max == 0 {
                    count.min = sz.min.saturating_add(1);
                    retained.min = sz.min;
                } else if from.max <= with.min {
                    retained.min = sz.min;
                } else {
                    count.min = (sz.min as f64 / from.max as f64).ceil() as u64;
                }
                let size = count.mul(with).add(retained);
                Some((sz.factor(2.0 * STRING_TRAVERSAL), Some(size)))
            }
            "split" => {
                let sz = self.lib_size(target?);
                Some((sz.factor(2.0 * STRING_TRAVERSAL), Some(Est::new(0, sz.max))))
            }
            "join" => {
                let t = target?;
                let list = self.lib_size(t);
                let mut sz = match self.element_size(t) {
                    Some((_, el)) => list.mul(el),
                    None => Est::fixed(0),
                };
                if let Some(sep) = args.first() {
                    let seps = Est::new(list.min.saturating_sub(1), list.max.saturating_sub(1));
                    sz = sz.add(self.lib_size(sep).mul(seps));
                }
                Some((trav(sz), Some(sz)))
            }
            "find" | "findAll" if !args.is_empty() => {
                let sz = self.lib_size(target?);
                let str_cost = trav(sz.add(Est::fixed(1)));
                let re = self.lib_size(&args[0]).factor(REGEX_STRING_LENGTH);
                Some((str_cost.mul(re), Some(Est::new(0, sz.max))))
            }
            "cidr" | "isIP" | "isCIDR" | "quantity" | "isQuantity" if !args.is_empty() => {
                target?;
                Some((trav(self.lib_size(&args[0])), None))
            }
            "ip" => {
                target?;
                match args.first() {
                    Some(a) => Some((trav(self.lib_size(a)), None)),
                    None => Some((Est::fixed(1), None)),
                }
            }
            "containsIP" | "containsCIDR" if !args.is_empty() => {
                target?;
                let sz = Est::new(4, 16);
                let mut c = trav(sz.add(sz));
                if func == "containsCIDR" {
                    c = c.add(trav(sz)).add(Est::fixed(1));
                }
                if args[0].ty.kind() == Kind::String {
                    c = c.add(trav(self.lib_size(&args[0])));
                }
                Some((c, None))
            }
            _ => None,
        }
    }

    /// cel-go's `functionCost`: the call's cost (with its arguments') and result size.
    fn function_cost(
        &self,
        func: &str,
        target: Option<&Node<'a>>,
        args: &[Node<'a>],
    ) -> (Est, Option<Est>, Option<Entry>) {
        let arg_sum = args.iter().fold(Est::fixed(0), |s, a| s.add(a.cost));
        if let Some((c, size)) = self.library_cost(func, target, args) {
            return (c.add(arg_sum), size, None);
        }
        let trav = |e: Est| e.factor(STRING_TRAVERSAL);
        let o1 = Est::fixed(1).add(arg_sum);
        let kinds: Vec<Kind> = args.iter().map(|a| a.ty.kind()).collect();
        let is = |i: usize, k: &[Kind]| kinds.get(i).is_some_and(|x| k.contains(x));
        match func {
            "string" if args.len() == 1 && is(0, &[Kind::Bytes]) => {
                let sz = self.size_or_unknown(&args[0]);
                (
                    trav(sz).add(arg_sum),
                    Some(Est::new(sz.min / 4, sz.max)),
                    None,
                )
            }
            "bytes" if args.len() == 1 && is(0, &[Kind::String]) => {
                let sz = self.size_or_unknown(&args[0]);
                (
                    trav(sz).add(arg_sum),
                    Some(Est::new(sz.min, sz.max.saturating_mul(4))),
                    None,
                )
            }
            "format" if target.is_some() && args.len() == 1 => {
                let t = self.size_or_unknown(target.map_or(&args[0], |t| t));
                let size = t.add(self.size_or_unknown(&args[0]));
                (trav(t).add(arg_sum), Some(size), None)
            }
            "strings.quote" if args.len() == 1 => {
                let sz = self.size_or_unknown(&args[0]);
                (
                    trav(sz).add(arg_sum),
                    Some(Est::new(
                        sz.min.saturating_add(2),
                        sz.max.saturating_mul(2).saturating_add(2),
                    )),
                    None,
                )
            }
            "startsWith" | "endsWith" if target.is_some() && args.len() == 1 => (
                trav(self.size_or_unknown(&args[0])).add(arg_sum),
                None,
                None,
            ),
            operators::IN if args.len() == 2 => {
                let list = self.size_or_unknown(&args[1]).factor(1.0).add(arg_sum);
                match kinds[1] {
                    Kind::List => (list, None, None),
                    Kind::Dyn => (list.union(o1), None, None),
                    _ => (o1, None, None),
                }
            }
            "matches" if args.len() == 1 => match target {
                Some(t) => {
                    let s = trav(self.size_or_unknown(t).add(Est::fixed(1)));
                    let re = self.size_or_unknown(&args[0]).factor(REGEX_STRING_LENGTH);
                    (s.mul(re).add(arg_sum), None, None)
                }
                None => (o1, None, None),
            },
            "contains" if args.len() == 1 => match target {
                Some(t) => {
                    let s = trav(self.size_or_unknown(t));
                    let sub = trav(self.size_or_unknown(&args[0]));
                    (s.mul(sub).add(arg_sum), None, None)
                }
                None => (o1, None, None),
            },
            operators::LOGICAL_AND | operators::LOGICAL_OR if args.len() == 2 => (
                Est::new(args[0].cost.min, args[0].cost.add(args[1].cost).max),
                None,
                None,
            ),
            operators::CONDITIONAL if args.len() == 3 => {
                let size = self
                    .size_or_unknown(&args[1])
                    .union(self.size_or_unknown(&args[2]));
                let entry = union_entry(args[1].entry, args[2].entry);
                (
                    args[0].cost.add(args[1].cost.union(args[2].cost)),
                    Some(size),
                    entry,
                )
            }
            operators::ADD if args.len() == 2 => {
                let size = self
                    .size_or_unknown(&args[0])
                    .add(self.size_or_unknown(&args[1]));
                let entry = union_entry(args[0].entry, args[1].entry);
                let string = trav(size).add(arg_sum);
                let list = Est::fixed(1).add(arg_sum);
                let sized = |k: Kind| matches!(k, Kind::String | Kind::Bytes | Kind::List);
                match (kinds[0], kinds[1]) {
                    (Kind::String | Kind::Bytes, _) | (_, Kind::String | Kind::Bytes) => {
                        (string, Some(size), entry)
                    }
                    (Kind::List, _) | (_, Kind::List) => (list, Some(size), entry),
                    (Kind::Dyn, k) | (k, Kind::Dyn) if !sized(k) => {
                        // A dyn operand: any add overload may apply.
                        (string.union(o1), Some(size), entry)
                    }
                    _ => (o1, None, None),
                }
            }
            operators::EQUALS | operators::NOT_EQUALS if args.len() == 2 => {
                (self.compare_cost(args).add(arg_sum), None, None)
            }
            operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
                if args.len() == 2 =>
            {
                let sized = |k: Kind| matches!(k, Kind::String | Kind::Bytes);
                if sized(kinds[0]) || sized(kinds[1]) {
                    (self.compare_cost(args).add(arg_sum), None, None)
                } else if kinds[0] == Kind::Dyn || kinds[1] == Kind::Dyn {
                    (self.compare_cost(args).add(arg_sum).union(o1), None, None)
                } else {
                    (o1, None, None)
                }
            }
            _ => (o1, None, None),
        }
    }

    /// Equality and string/bytes ordering: 0.1 per element of the operand with the smaller bound.
    fn compare_cost(&self, args: &[Node<'a>]) -> Est {
        let l = self.size_or_unknown(&args[0]);
        let r = self.size_or_unknown(&args[1]);
        let smallest = l.max.min(r.max);
        Est::new(u64::from(smallest > 0), smallest).factor(STRING_TRAVERSAL)
    }
}

/// The result type of a call, as far as the cost estimate needs it.
fn result_type<'a>(func: &str, target: Option<&Node<'a>>, args: &[Node<'a>]) -> Ty<'a> {
    let first = || args.first().map_or(Ty::Dyn, |a| a.ty.clone());
    match func {
        operators::LOGICAL_AND
        | operators::LOGICAL_OR
        | operators::LOGICAL_NOT
        | operators::NOT_STRICTLY_FALSE
        | operators::EQUALS
        | operators::NOT_EQUALS
        | operators::LESS
        | operators::LESS_EQUALS
        | operators::GREATER
        | operators::GREATER_EQUALS
        | operators::IN
        | "startsWith"
        | "endsWith"
        | "contains"
        | "matches"
        | "isSorted"
        | "isQuantity"
        | "isURL"
        | "isIP"
        | "isCIDR"
        | "isGreaterThan"
        | "isLessThan"
        | "isInteger"
        | "containsIP"
        | "containsCIDR"
        | "exists"
        | "all" => Ty::Bool,
        "size" | "compareTo" | "sign" | "asInteger" | "indexOf" | "lastIndexOf" | "int"
        | "getHours" | "getMinutes" | "getSeconds" | "getFullYear" | "getMonth"
        | "getDayOfMonth" | "getDayOfWeek" | "getDayOfYear" | "getMilliseconds" => Ty::Int,
        "uint" => Ty::Uint,
        "double" | "asApproximateFloat" => Ty::Double,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "substring" | "replace" | "charAt"
        | "join" | "format" | "strings.quote" | "find" | "getScheme" | "getHost"
        | "getHostname" | "getPort" | "getEscapedPath" => Ty::String,
        "split" | "findAll" => Ty::List(Box::new(Ty::String)),
        "bytes" => Ty::Bytes,
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "quantity" | "url" | "ip" | "cidr" | "add" | "sub" => Ty::Opaque,
        "sum" | "max" | "min" => target.map_or(Ty::Dyn, |t| t.ty.param().unwrap_or(Ty::Dyn)),
        operators::INDEX => args
            .first()
            .map_or(Ty::Dyn, |a| a.ty.list_elem_or_map_value()),
        operators::CONDITIONAL => match args.get(1).map(|a| a.ty.kind()) {
            Some(Kind::Dyn) | None => args.get(2).map_or(Ty::Dyn, |a| a.ty.clone()),
            _ => args[1].ty.clone(),
        },
        operators::ADD => match (first().norm(), args.get(1).map(|a| a.ty.norm())) {
            (Ty::List(l), Some(Ty::List(r))) => {
                if l.kind() == Kind::Dyn {
                    Ty::List(r)
                } else {
                    Ty::List(l)
                }
            }
            (Ty::Dyn, Some(r)) => r,
            (l, _) => l,
        },
        operators::SUBSTRACT
        | operators::MULTIPLY
        | operators::DIVIDE
        | operators::MODULO
        | operators::NEGATE => first(),
        _ => Ty::Dyn,
    }
}

// ----------------------------------------------------------------------------------------
// Totals

/// `TotalCost`: the sum of all rules' costs of one schema and the (at most 4) most expensive rules
/// that contribute at least 1% of the limit.
#[derive(Debug, Default)]
pub(super) struct TotalCost {
    pub(super) total: u64,
    pub(super) most_expensive: Vec<(String, u64)>,
}

impl TotalCost {
    pub(super) fn observe(&mut self, path: &str, cost: u64) {
        self.total = self.total.saturating_add(cost);
        if cost < STATIC_ESTIMATED_CRD_COST_LIMIT / 100 {
            return;
        }
        self.most_expensive.push((path.to_string(), cost));
        self.most_expensive.sort_by_key(|e| std::cmp::Reverse(e.1));
        self.most_expensive.truncate(4);
    }
}

/// `getCostErrorMessage`.
pub(super) fn cost_error_message(name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}
