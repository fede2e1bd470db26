//! Whether an admission error names a field, shared by the offline schema checks (validate_cel) and the
//! checks against an API server (admission_server). Included by path:
//! `#[path = "common/fields.rs"] mod fields;`.

/// Whether an admission error (`<path>: <message>`) names `field`: its path is the field, its message
/// names it (a root-level rule's cause has path `<nil>` or none), or its path is a parent of the field
/// (CEL rules report the object they are attached to) whose message names the next segment, e.g.
/// `spec.containers[0]: ... limits: every limit ...` for `spec.containers[0].limits.memory`.
pub fn names_field(error: &str, field: &str) -> bool {
    let (path, message) = error.split_once(": ").unwrap_or(("", error));
    if path == field || message.contains(field) {
        return true;
    }
    let Some(rest) = field.strip_prefix(path) else {
        return false;
    };
    let next: String = rest
        .trim_start_matches(['.', '[', '"'])
        .split(['.', '[', '"', '/'])
        .next()
        .unwrap_or_default()
        .to_string();
    !next.is_empty() && message.contains(&next)
}
