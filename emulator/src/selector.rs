//! Label and field selectors (`labelSelector`, `fieldSelector` of list, watch and
//! deletecollection): parsing with kube-apiserver's validation messages, matching against
//! objects, and the fields each resource supports in a field selector.
//!
//! Label selectors support equality (`a=b`, `a==b`, `a!=b`), sets (`a in (x,y)`,
//! `a notin (x)`), existence (`a`, `!a`) and the numeric `a>1`, `a<1`; field selectors only
//! equality on the supported fields.

use serde_json::Value;

use crate::builtin::ResourceInfo;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`
    Eq(String, String),
    /// `k!=v`
    NotEq(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
    /// `k>n`
    Gt(String, i64),
    /// `k<n`
    Lt(String, i64),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{s}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// Parses a label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
pub fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut reqs = Vec::new();
    for part in split_top_level(s) {
        if let Some(k) = part.strip_prefix('!') {
            reqs.push(Requirement::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = part.split_once("!=") {
            reqs.push(Requirement::NotEq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once("==") {
            reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once('=') {
            reqs.push(Requirement::Eq(k.trim().into(), v.trim().into()));
        } else if let Some(idx) = part.find(" notin ") {
            reqs.push(Requirement::NotIn(
                part[..idx].trim().into(),
                parse_set(&part[idx + 7..])?,
            ));
        } else if let Some(idx) = part.find(" in ") {
            reqs.push(Requirement::In(
                part[..idx].trim().into(),
                parse_set(&part[idx + 4..])?,
            ));
        } else if let Some((k, v)) = part.split_once('>') {
            let n = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid value in '{part}'"))?;
            reqs.push(Requirement::Gt(k.trim().into(), n));
        } else if let Some((k, v)) = part.split_once('<') {
            let n = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid value in '{part}'"))?;
            reqs.push(Requirement::Lt(k.trim().into(), n));
        } else if part.contains(' ') || part.contains('(') {
            return Err(format!("unable to parse requirement: '{part}'"));
        } else {
            reqs.push(Requirement::Exists(part));
        }
    }
    for r in &reqs {
        let (k, vs): (&str, Vec<&str>) = match r {
            Requirement::Eq(k, v) | Requirement::NotEq(k, v) => (k, vec![v.as_str()]),
            Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                (k, vs.iter().map(String::as_str).collect())
            }
            Requirement::Exists(k)
            | Requirement::NotExists(k)
            | Requirement::Gt(k, _)
            | Requirement::Lt(k, _) => (k, Vec::new()),
        };
        if !valid_label_key(k) {
            return Err(format!(
                "unable to parse requirement: key: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ));
        }
        for (i, v) in vs.iter().enumerate() {
            if !valid_label_value(v) {
                return Err(format!(
                    "unable to parse requirement: values[{i}][{k}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ));
            }
        }
    }
    Ok(reqs)
}

/// A label value: empty, or at most 63 of `[-_.A-Za-z0-9]` starting and ending alphanumeric.
fn valid_label_value(v: &str) -> bool {
    v.is_empty() || valid_name_part(v)
}

fn valid_name_part(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name part.
fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    valid_name_part(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        })
}

/// Whether an object's labels satisfy every requirement.
pub fn labels_match(reqs: &[Requirement], obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|h| vs.iter().any(|v| v == h)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|h| vs.iter().any(|v| v == h)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
        Requirement::Gt(k, n) => get(k)
            .and_then(|h| h.parse::<i64>().ok())
            .is_some_and(|h| h > *n),
        Requirement::Lt(k, n) => get(k)
            .and_then(|h| h.parse::<i64>().ok())
            .is_some_and(|h| h < *n),
    })
}

/// The `key=value` pairs a label selector requires (its `=`/`==` requirements and one-value
/// `in` sets): what the store's label index can look up. Every match carries all of them.
pub fn equality_labels(reqs: &[Requirement]) -> Vec<(String, String)> {
    reqs.iter()
        .filter_map(|r| match r {
            Requirement::Eq(k, v) => Some((k.clone(), v.clone())),
            Requirement::In(k, vs) if vs.len() == 1 => Some((k.clone(), vs[0].clone())),
            _ => None,
        })
        .collect()
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path (`metadata.name`, `spec.nodeName`).
    pub field: String,
    /// true for `=`/`==`, false for `!=`.
    pub equal: bool,
    /// Value compared with.
    pub value: String,
}

/// Parses a field selector, checking every field against `supported`.
pub fn parse_field_selector(s: &str, supported: &[String]) -> Result<Vec<FieldTerm>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, equal, value) = if let Some((k, v)) = part.split_once("!=") {
            (k, false, v)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            ));
        };
        let field = field.trim().to_string();
        if !supported.contains(&field) {
            return Err(format!("field label not supported: {field}"));
        }
        out.push(FieldTerm {
            field,
            equal,
            value: value.trim().to_string(),
        });
    }
    Ok(out)
}

/// The string value of a dotted field path (`spec.nodeName`) as field selectors compare it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.trim_start_matches('.').split('.') {
        cur = &cur[seg];
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Whether an object satisfies every field term.
pub fn fields_match(terms: &[FieldTerm], obj: &Value) -> bool {
    terms
        .iter()
        .all(|t| (field_value(obj, &t.field) == t.value) == t.equal)
}

/// The fields a field selector may name for a resource: `metadata.name`,
/// `metadata.namespace`, the kind-specific fields kube-apiserver registers, and a custom
/// resource's `selectableFields`.
pub fn supported_fields(info: &ResourceInfo) -> Vec<String> {
    let mut f = vec![
        "metadata.name".to_string(),
        "metadata.namespace".to_string(),
    ];
    let extra: &[&str] = match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        _ => &[],
    };
    f.extend(extra.iter().map(|s| s.to_string()));
    if let Some(c) = &info.custom {
        f.extend(
            c.selectable_fields
                .iter()
                .map(|p| p.trim_start_matches('.').to_string()),
        );
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(sel: &str) -> Vec<Requirement> {
        parse_label_selector(sel).unwrap_or_else(|e| panic!("{sel}: {e}"))
    }

    fn web() -> Value {
        json!({"metadata": {"labels": {"app": "web", "tier": "fe", "n": "5"}}})
    }

    /// Equality requirements: `=`, `==` and `!=` (which a missing label satisfies).
    #[test]
    fn equality() {
        assert_eq!(
            labels("app=web"),
            vec![Requirement::Eq("app".into(), "web".into())]
        );
        assert_eq!(labels("app==web"), labels("app=web"));
        assert_eq!(labels(" app = web "), labels("app=web"));
        let o = web();
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("missing=x", false),
            ("app=web,tier=fe", true),
            ("app=web,tier=be", false),
            ("", true),
        ] {
            assert_eq!(labels_match(&labels(sel), &o), want, "{sel}");
        }
    }

    /// Set-based requirements: `in`, `notin` (satisfied by a missing label), exists, `!`.
    #[test]
    fn set_based() {
        assert_eq!(
            labels("app in (web, db)"),
            vec![Requirement::In(
                "app".into(),
                vec!["web".into(), "db".into()]
            )]
        );
        assert_eq!(
            labels("app notin (db),!gone,tier"),
            vec![
                Requirement::NotIn("app".into(), vec!["db".into()]),
                Requirement::NotExists("gone".into()),
                Requirement::Exists("tier".into()),
            ]
        );
        let o = web();
        for (sel, want) in [
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (web)", false),
            ("app notin (db)", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("tier", true),
            ("missing", false),
            ("!tier", false),
            ("!missing", true),
            ("!missing,app=web", true),
            ("app in (db),tier", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
        ] {
            assert_eq!(labels_match(&labels(sel), &o), want, "{sel}");
        }
        // An object without labels satisfies only negative requirements.
        let bare = json!({"metadata": {}});
        assert!(labels_match(&labels("!app,app notin (x),app!=y"), &bare));
        assert!(!labels_match(&labels("app"), &bare));
    }

    /// The equality requirements a label index can serve.
    #[test]
    fn equality_labels_of_selectors() {
        let pairs = |sel: &str| equality_labels(&labels(sel));
        assert_eq!(
            pairs("app=web,tier==fe,x!=y,z in (one),w in (a,b),v,!u"),
            vec![
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "fe".to_string()),
                ("z".to_string(), "one".to_string()),
            ]
        );
        assert!(pairs("app!=web,tier").is_empty());
    }

    /// Malformed label selectors are errors (400), with kube-apiserver's messages.
    #[test]
    fn malformed_label_selectors() {
        for (sel, want) in [
            ("app in (web", "expected: '('"),
            ("app in web", "expected: '('"),
            ("a b", "unable to parse requirement"),
            ("app(x)", "unable to parse requirement"),
            ("-app=web", "key: Invalid value: \"-app\""),
            ("example.com/=x", "key: Invalid value"),
            ("Example.com/app=x", "key: Invalid value"),
            ("app=-web", "values[0][app]: Invalid value: \"-web\""),
            ("app in (ok, b@d)", "values[1][app]: Invalid value: \"b@d\""),
            ("n>x", "invalid value in 'n>x'"),
        ] {
            let e = parse_label_selector(sel).expect_err(sel);
            assert!(e.contains(want), "{sel}: {e}");
        }
        // A prefixed key and an empty value are valid.
        assert!(parse_label_selector("app.kubernetes.io/name=,x").is_ok());
    }

    /// Field selectors: equality on supported fields; unsupported fields and terms without
    /// an operator are errors.
    #[test]
    fn field_selectors() {
        let supported: Vec<String> = ["metadata.name", "spec.nodeName", "spec.hostNetwork"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let terms =
            parse_field_selector("metadata.name=p1, spec.nodeName!=n2", &supported).expect("valid");
        assert_eq!(
            terms,
            vec![
                FieldTerm {
                    field: "metadata.name".into(),
                    equal: true,
                    value: "p1".into()
                },
                FieldTerm {
                    field: "spec.nodeName".into(),
                    equal: false,
                    value: "n2".into()
                },
            ]
        );
        let pod =
            json!({"metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "hostNetwork": true}});
        let m = |sel: &str| fields_match(&parse_field_selector(sel, &supported).unwrap(), &pod);
        assert!(m("metadata.name=p1,spec.nodeName!=n2"));
        assert!(m("metadata.name==p1"));
        assert!(!m("spec.nodeName=n2"));
        // Missing fields compare as "", booleans and numbers as their text.
        let other = json!({"metadata": {"name": "p2"}});
        let sel = parse_field_selector("spec.nodeName=", &supported).unwrap();
        assert!(fields_match(&sel, &other));
        assert!(m("spec.hostNetwork=true"));
        assert_eq!(field_value(&json!({"a": {"b": 3}}), ".a.b"), "3");
        let e = parse_field_selector("spec.foo=x", &supported).unwrap_err();
        assert_eq!(e, "field label not supported: spec.foo");
        let e = parse_field_selector("metadata.name", &supported).unwrap_err();
        assert!(e.starts_with("invalid selector: 'metadata.name'"), "{e}");
        assert!(parse_field_selector("", &supported).unwrap().is_empty());
    }
}
