//! Validation of a System beyond what the CRD schema and CEL rules express. Pure.
//!
//! These checks also repeat the schema's and CEL's essentials (name format, bounds, uniqueness,
//! limits ≥ requests, file sizes), because they must hold when the CRD's rules are not enforced:
//! offline rendering (`tycho render`), older API servers without CEL, or a CRD installed by hand.
//! Every error names its field (`spec.containers[1].files[0].path`); all errors are returned.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

use crate::quantity::{Quantity, QuantityError};
use crate::{
    ContainerSpec, Expose, FileSpec, KeyRef, NetworkPeer, NetworkSpec, Resources, System,
    SystemSpec, Workload,
};

/// One problem with a System, naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.containers[0].limits.memory`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Check a System; every problem found is returned, each naming its field.
pub fn validate(system: &System) -> Result<(), Vec<FieldError>> {
    let mut v = Validator::default();
    v.metadata(system);
    v.spec(&system.spec);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

/// Largest total size of annotations on one object, as the API server enforces.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;
/// Most containers in one System (as in the schema).
const MAX_CONTAINERS: usize = 16;
/// Most peers in `spec.network.allowFrom` and `spec.network.egress.to` (as in the schema).
const MAX_PEERS: usize = 32;

impl Validator {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn metadata(&mut self, system: &System) {
        match system.metadata.name.as_deref() {
            None | Some("") => self.err("metadata.name", "must be set"),
            Some(name) => {
                if name.len() > crate::MAX_NAME_LEN {
                    self.err(
                        "metadata.name",
                        format!(
                            "must be at most {} characters (is {}), so that `<name>-files` is a valid name",
                            crate::MAX_NAME_LEN,
                            name.len()
                        ),
                    );
                }
                if !is_dns1035_label(name) {
                    self.err(
                        "metadata.name",
                        "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
                    );
                }
            }
        }
        if let Some(ns) = system.metadata.namespace.as_deref()
            && !is_dns1123_label(ns)
        {
            self.err("metadata.namespace", "must be a DNS-1123 label");
        }
    }

    fn spec(&mut self, spec: &SystemSpec) {
        if spec.containers.is_empty() {
            self.err(
                "spec.containers",
                "at least one container is required (or a spec.template that gives them)",
            );
        }
        if !spec.parameters.is_empty() && spec.template.is_none() {
            self.err(
                "spec.parameters",
                "parameters are given to a spec.template; name one",
            );
        }
        if spec.containers.len() > MAX_CONTAINERS {
            self.err(
                "spec.containers",
                format!("at most {MAX_CONTAINERS} containers"),
            );
        }
        if !(0..=100).contains(&spec.replicas) {
            self.err("spec.replicas", "must be between 0 and 100");
        }
        if spec.workload == Workload::Pod {
            if spec.replicas > 1 {
                self.err(
                    "spec.replicas",
                    "a bare Pod workload runs exactly one replica",
                );
            }
            if spec.paused {
                self.err(
                    "spec.paused",
                    "a bare Pod workload cannot be paused (it would have to be deleted); use workload Deployment",
                );
            }
        }
        if let Some(session) = &spec.session
            && (!is_dns1123_subdomain(session) || session.len() > 63)
        {
            self.err(
                "spec.session",
                "must be the name of a Lease (a DNS-1123 subdomain) of at most 63 characters, so that it fits the tycho.dev/session label",
            );
        }
        if let Some(l) = spec.lifetime
            && !(1..=31_536_000).contains(&l)
        {
            self.err("spec.lifetime", "must be between 1 and 31536000 seconds");
        }
        if let Some(sa) = &spec.service_account_name
            && !is_dns1123_subdomain(sa)
        {
            self.err("spec.serviceAccountName", "must be a DNS-1123 subdomain");
        }
        self.labels("spec.labels", &spec.labels, true);
        self.labels("spec.nodeSelector", &spec.node_selector, false);
        self.annotations(&spec.annotations);
        self.tolerations(spec);

        let mut names = BTreeSet::new();
        for (i, c) in spec.containers.iter().enumerate() {
            if !names.insert(c.name.as_str()) {
                self.err(
                    format!("spec.containers[{i}].name"),
                    format!("duplicate container name {:?}", c.name),
                );
            }
            self.container(&format!("spec.containers[{i}]"), c);
        }
        self.ports(spec);
        self.files_total(spec);
        self.volumes(spec);
        if let Some(network) = &spec.network {
            self.network(network);
        }
    }

    fn network(&mut self, network: &NetworkSpec) {
        if network.allow_from.len() > MAX_PEERS {
            self.err(
                "spec.network.allowFrom",
                format!("at most {MAX_PEERS} peers"),
            );
        }
        for (i, p) in network.allow_from.iter().enumerate() {
            self.peer(&format!("spec.network.allowFrom[{i}]"), p);
        }
        if let Some(egress) = &network.egress {
            if egress.to.len() > MAX_PEERS {
                self.err(
                    "spec.network.egress.to",
                    format!("at most {MAX_PEERS} peers"),
                );
            }
            for (i, p) in egress.to.iter().enumerate() {
                let field = format!("spec.network.egress.to[{i}]");
                self.peer(&field, &p.peer());
                for (j, port) in p.ports.iter().enumerate() {
                    if !(1..=65535).contains(&port.port) {
                        self.err(
                            format!("{field}.ports[{j}].port"),
                            "must be between 1 and 65535",
                        );
                    }
                }
            }
        }
    }

    fn peer(&mut self, field: &str, p: &NetworkPeer) {
        let set = [
            p.namespace.is_some(),
            p.namespace_selector.is_some(),
            p.cidr.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            self.err(
                field,
                "exactly one of namespace, namespaceSelector and cidr must be set",
            );
        }
        if let Some(ns) = &p.namespace
            && !is_dns1123_label(ns)
        {
            self.err(
                format!("{field}.namespace"),
                "must be a namespace name (a DNS-1123 label)",
            );
        }
        if let Some(sel) = &p.namespace_selector {
            self.labels(&format!("{field}.namespaceSelector"), sel, false);
        }
        let block = match &p.cidr {
            Some(c) => match parse_cidr(c) {
                Ok(b) => Some(b),
                Err(m) => {
                    self.err(format!("{field}.cidr"), m);
                    None
                }
            },
            None => None,
        };
        if !p.except.is_empty() && p.cidr.is_none() {
            self.err(format!("{field}.except"), "only with cidr");
        }
        for (i, e) in p.except.iter().enumerate() {
            match parse_cidr(e) {
                Err(m) => self.err(format!("{field}.except[{i}]"), m),
                Ok(inner) => {
                    if let Some(outer) = &block
                        && !outer.contains(&inner)
                    {
                        self.err(
                            format!("{field}.except[{i}]"),
                            format!("{e} is not inside cidr {}", p.cidr.as_deref().unwrap_or("")),
                        );
                    }
                }
            }
        }
    }

    fn labels(&mut self, field: &str, labels: &BTreeMap<String, String>, reserved: bool) {
        for (k, v) in labels {
            let f = format!("{field}[{k:?}]");
            if let Err(m) = check_qualified_name(k) {
                self.err(&f, format!("invalid key: {m}"));
            }
            if reserved
                && (k.starts_with("tycho.dev/")
                    || k == crate::LABEL_MANAGED_BY
                    || k == crate::LABEL_NAME)
            {
                self.err(
                    &f,
                    "reserved key: keys under tycho.dev/ and app.kubernetes.io/managed-by, app.kubernetes.io/name are set by Tycho",
                );
            }
            if !is_label_value(v) {
                self.err(
                    &f,
                    "invalid value: at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
                );
            }
        }
    }

    fn annotations(&mut self, annotations: &BTreeMap<String, String>) {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.len();
            if let Err(m) = check_qualified_name(k) {
                self.err(
                    format!("spec.annotations[{k:?}]"),
                    format!("invalid key: {m}"),
                );
            }
            if k.starts_with("tycho.dev/") {
                self.err(
                    format!("spec.annotations[{k:?}]"),
                    "reserved key: keys under tycho.dev/ are set by Tycho",
                );
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            self.err(
                "spec.annotations",
                format!("total size must be at most {MAX_ANNOTATIONS_BYTES} bytes"),
            );
        }
    }

    fn tolerations(&mut self, spec: &SystemSpec) {
        for (i, t) in spec.tolerations.iter().enumerate() {
            let f = format!("spec.tolerations[{i}]");
            match t.operator.as_deref() {
                None | Some("Equal") => {
                    if t.key.as_deref().unwrap_or("").is_empty() {
                        self.err(format!("{f}.key"), "must be set unless operator is Exists");
                    }
                }
                Some("Exists") => {
                    if !t.value.as_deref().unwrap_or("").is_empty() {
                        self.err(
                            format!("{f}.value"),
                            "must be empty when operator is Exists",
                        );
                    }
                }
                Some(other) => self.err(
                    format!("{f}.operator"),
                    format!("must be Exists or Equal, not {other:?}"),
                ),
            }
            if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty())
                && let Err(m) = check_qualified_name(k)
            {
                self.err(format!("{f}.key"), m);
            }
            if let Some(e) = t.effect.as_deref()
                && !matches!(e, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            {
                self.err(
                    format!("{f}.effect"),
                    "must be NoSchedule, PreferNoSchedule or NoExecute",
                );
            }
            if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
                self.err(
                    format!("{f}.tolerationSeconds"),
                    "only allowed with effect NoExecute",
                );
            }
        }
    }

    fn container(&mut self, f: &str, c: &ContainerSpec) {
        if !is_dns1123_label(&c.name) {
            self.err(
                format!("{f}.name"),
                "must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
            );
        }
        if c.image.is_empty() {
            self.err(format!("{f}.image"), "must be set");
        } else if c.image.len() > 512
            || c.image.trim() != c.image
            || c.image.chars().any(char::is_whitespace)
        {
            self.err(
                format!("{f}.image"),
                "must be an image reference without whitespace, at most 512 characters",
            );
        }
        if let Some(wd) = &c.working_dir
            && !wd.starts_with('/')
        {
            self.err(format!("{f}.workingDir"), "must be an absolute path");
        }
        let mut env_names = BTreeSet::new();
        for (i, e) in c.env.iter().enumerate() {
            let ef = format!("{f}.env[{i}]");
            if !is_env_name(&e.name) {
                self.err(
                    format!("{ef}.name"),
                    "must consist of letters, digits, '-', '_' or '.', and not start with a digit",
                );
            }
            if !env_names.insert(e.name.as_str()) {
                self.err(
                    format!("{ef}.name"),
                    format!("duplicate variable {:?}", e.name),
                );
            }
            match (&e.value, &e.value_from) {
                (Some(_), Some(_)) | (None, None) => {
                    self.err(&ef, "exactly one of value and valueFrom must be set")
                }
                (None, Some(src)) => match (&src.secret_key_ref, &src.config_map_key_ref) {
                    (Some(r), None) => self.key_ref(&format!("{ef}.valueFrom.secretKeyRef"), r),
                    (None, Some(r)) => self.key_ref(&format!("{ef}.valueFrom.configMapKeyRef"), r),
                    _ => self.err(
                        format!("{ef}.valueFrom"),
                        "exactly one of secretKeyRef and configMapKeyRef must be set",
                    ),
                },
                (Some(_), None) => {}
            }
        }
        for (i, p) in c.ports.iter().enumerate() {
            let pf = format!("{f}.ports[{i}]");
            if !(1..=65535).contains(&p.port) {
                self.err(format!("{pf}.port"), "must be between 1 and 65535");
            }
            if let Some(n) = &p.name
                && !is_iana_svc_name(n)
            {
                self.err(
                    format!("{pf}.name"),
                    "must be at most 15 lowercase letters, digits and '-', with at least one letter, no leading, trailing or double '-'",
                );
            }
            if let Some(np) = p.node_port
                && !(30000..=32767).contains(&np)
            {
                self.err(format!("{pf}.nodePort"), "must be between 30000 and 32767");
            }
        }
        self.resources(f, c);
        self.files(f, c);
        if let Some(r) = &c.readiness {
            let rf = format!("{f}.readiness");
            let port = match (&r.http, &r.tcp) {
                (Some(h), None) => {
                    if !h.path.starts_with('/') {
                        self.err(format!("{rf}.http.path"), "must start with '/'");
                    }
                    if h.path.chars().any(char::is_control) {
                        self.err(
                            format!("{rf}.http.path"),
                            "must not contain control characters",
                        );
                    }
                    if let Some(host) = &h.host
                        && (host.is_empty()
                            || host.chars().any(|c| c.is_control() || c.is_whitespace()))
                    {
                        self.err(
                            format!("{rf}.http.host"),
                            "must be a host name without whitespace or control characters",
                        );
                    }
                    Some(("http", h.port))
                }
                (None, Some(t)) => Some(("tcp", t.port)),
                _ => {
                    self.err(&rf, "exactly one of http and tcp must be set");
                    None
                }
            };
            if let Some((kind, port)) = port
                && !c.ports.iter().any(|p| p.port == port)
            {
                self.err(
                    format!("{rf}.{kind}.port"),
                    format!("port {port} is not one of the container's ports"),
                );
            }
        }
    }

    fn key_ref(&mut self, f: &str, r: &KeyRef) {
        if !is_dns1123_subdomain(&r.name) {
            self.err(format!("{f}.name"), "must be a DNS-1123 subdomain");
        }
        if r.key.is_empty()
            || r.key.len() > 253
            || !r
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.err(
                format!("{f}.key"),
                "must be a key of letters, digits, '-', '_' or '.' (at most 253)",
            );
        }
    }

    fn resources(&mut self, f: &str, c: &ContainerSpec) {
        let mut parsed: BTreeMap<(&str, &str), Quantity> = BTreeMap::new();
        for (which, r) in [("limits", &c.limits), ("requests", &c.requests)] {
            let Some(r) = r else { continue };
            for (field, value) in quantity_fields(r) {
                let Some(value) = value else { continue };
                match resource_quantity(value) {
                    Ok(q) => {
                        parsed.insert((which, field), q);
                    }
                    Err(m) => self.err(
                        format!("{f}.{which}.{field}"),
                        format!("{value:?} is not a quantity: {m}"),
                    ),
                }
            }
            if let Some(g) = r.gpus
                && !(0..=64).contains(&g)
            {
                self.err(format!("{f}.{which}.gpus"), "must be between 0 and 64");
            }
        }
        for field in ["cpus", "memory", "ephemeralStorage"] {
            if let (Some(l), Some(r)) = (
                parsed.get(&("limits", field)),
                parsed.get(&("requests", field)),
            ) && l < r
            {
                self.err(
                    format!("{f}.limits.{field}"),
                    format!("must be at least the request ({r})"),
                );
            }
        }
        if let (Some(l), Some(r)) = (
            c.limits.as_ref().and_then(|r| r.gpus),
            c.requests.as_ref().and_then(|r| r.gpus),
        ) && l != r
        {
            self.err(
                format!("{f}.limits.gpus"),
                format!("GPUs cannot be overcommitted: limit ({l}) must equal request ({r})"),
            );
        }
    }

    fn files(&mut self, f: &str, c: &ContainerSpec) {
        let mut paths: BTreeSet<&str> = BTreeSet::new();
        for (i, file) in c.files.iter().enumerate() {
            let ff = format!("{f}.files[{i}]");
            if let Err(m) = check_clean_path(&file.path) {
                self.err(format!("{ff}.path"), m);
            } else if !paths.insert(file.path.as_str()) {
                self.err(
                    format!("{ff}.path"),
                    format!("duplicate file path {:?}", file.path),
                );
            }
            match (&file.content, &file.binary_content) {
                (Some(_), Some(_)) | (None, None) => {
                    self.err(&ff, "exactly one of content and binaryContent must be set")
                }
                (None, Some(b)) => {
                    if let Err(e) = base64::engine::general_purpose::STANDARD.decode(b) {
                        self.err(
                            format!("{ff}.binaryContent"),
                            format!("is not valid base64: {e}"),
                        );
                    }
                }
                (Some(_), None) => {}
            }
            if let Some(m) = file.mode
                && !(0..=0o777).contains(&m)
            {
                self.err(format!("{ff}.mode"), "must be between 0 and 511 (0777)");
            }
        }
        // A file cannot also be a directory holding another file.
        for (i, file) in c.files.iter().enumerate() {
            if let Some(other) = paths.iter().find(|p| is_under(p, &file.path)) {
                self.err(
                    format!("{f}.files[{i}].path"),
                    format!(
                        "{:?} is also a directory holding the file {other:?}",
                        file.path
                    ),
                );
            }
        }
    }

    fn files_total(&mut self, spec: &SystemSpec) {
        let total: usize = spec
            .containers
            .iter()
            .flat_map(|c| &c.files)
            .map(file_size)
            .sum();
        if total > crate::MAX_FILE_BYTES {
            self.err(
                "spec.containers[].files",
                format!(
                    "the pre-boot files total {total} bytes; at most {} fit in one ConfigMap",
                    crate::MAX_FILE_BYTES
                ),
            );
        }
    }

    fn ports(&mut self, spec: &SystemSpec) {
        let mut by_port: BTreeMap<(i32, &str), String> = BTreeMap::new();
        let mut by_name: BTreeMap<&str, String> = BTreeMap::new();
        let mut by_node_port: BTreeMap<(i32, &str), String> = BTreeMap::new();
        for (ci, c) in spec.containers.iter().enumerate() {
            for (pi, p) in c.ports.iter().enumerate() {
                let pf = format!("spec.containers[{ci}].ports[{pi}]");
                let proto = p.protocol.as_str();
                if let Some(prev) = by_port.insert((p.port, proto), pf.clone()) {
                    self.err(
                        format!("{pf}.port"),
                        format!("port {}/{proto} is already declared at {prev}", p.port),
                    );
                }
                if let Some(n) = &p.name
                    && let Some(prev) = by_name.insert(n, pf.clone())
                {
                    self.err(
                        format!("{pf}.name"),
                        format!("port name {n:?} is already used at {prev}"),
                    );
                }
                if let Some(np) = p.node_port {
                    if !p.expose {
                        self.err(format!("{pf}.nodePort"), "a node port needs expose: true");
                    } else if spec.expose != Expose::NodePort {
                        self.err(
                            format!("{pf}.nodePort"),
                            "a node port needs spec.expose NodePort",
                        );
                    }
                    if let Some(prev) = by_node_port.insert((np, proto), pf.clone()) {
                        self.err(
                            format!("{pf}.nodePort"),
                            format!("node port {np} is already used at {prev}"),
                        );
                    }
                }
            }
        }
    }

    fn volumes(&mut self, spec: &SystemSpec) {
        // Mount points per container: files first, then claims.
        let mut mounts: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
        for (ci, c) in spec.containers.iter().enumerate() {
            let list = mounts.entry(c.name.as_str()).or_default();
            for (fi, f) in c.files.iter().enumerate() {
                list.push((
                    f.path.clone(),
                    format!("spec.containers[{ci}].files[{fi}].path"),
                ));
            }
        }
        for (i, v) in spec.volumes.iter().enumerate() {
            let f = format!("spec.volumes[{i}]");
            if !is_dns1123_subdomain(&v.claim) {
                self.err(
                    format!("{f}.claim"),
                    "must be the name of a PersistentVolumeClaim (a DNS-1123 subdomain)",
                );
            }
            let path_ok = match check_clean_path(&v.mount_path) {
                Ok(()) => true,
                Err(m) => {
                    self.err(format!("{f}.mountPath"), m);
                    false
                }
            };
            if let Some(sp) = &v.sub_path
                && (sp.is_empty()
                    || sp.starts_with('/')
                    || sp.split('/').any(|s| s == ".." || s.is_empty())
                    || sp.contains('\0'))
            {
                self.err(
                    format!("{f}.subPath"),
                    "must be a relative path without '..' or empty segments",
                );
            }
            let targets: Vec<&str> = match &v.container {
                Some(name) => {
                    if !spec.containers.iter().any(|c| &c.name == name) {
                        self.err(
                            format!("{f}.container"),
                            format!("{name:?} is not a container of this System"),
                        );
                    }
                    vec![name.as_str()]
                }
                None => spec.containers.iter().map(|c| c.name.as_str()).collect(),
            };
            if !path_ok {
                continue;
            }
            for t in targets {
                let Some(list) = mounts.get_mut(t) else {
                    continue;
                };
                for (path, at) in list.iter() {
                    if *path == v.mount_path {
                        self.err(
                            format!("{f}.mountPath"),
                            format!(
                                "{:?} is already mounted in container {t:?} by {at}",
                                v.mount_path
                            ),
                        );
                    } else if is_under(&v.mount_path, path) {
                        self.err(
                            format!("{f}.mountPath"),
                            format!(
                                "{:?} is inside the pre-boot file {path:?} ({at})",
                                v.mount_path
                            ),
                        );
                    }
                }
                list.push((v.mount_path.clone(), f.clone()));
            }
        }
    }
}

/// Size in bytes of a file's content (decoded for binary content).
pub fn file_size(f: &FileSpec) -> usize {
    match (&f.content, &f.binary_content) {
        (Some(t), _) => t.len(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(|d| d.len())
            .unwrap_or(b.len() * 3 / 4),
        (None, None) => 0,
    }
}

/// Parse a `limits`/`requests` quantity: the Kubernetes grammar, minus what the CRD pattern
/// refuses (a sign, and the `n`/`u` suffixes) that the shared parser accepts.
fn resource_quantity(value: &str) -> Result<Quantity, String> {
    if value.starts_with(['+', '-']) {
        return Err(QuantityError::NotANumber.to_string());
    }
    let q = Quantity::parse(value).map_err(|e| e.to_string())?;
    match q.suffix() {
        s @ ("n" | "u") => Err(QuantityError::UnknownSuffix(s.to_string()).to_string()),
        _ => Ok(q),
    }
}

fn quantity_fields(r: &Resources) -> [(&'static str, Option<&str>); 3] {
    [
        ("cpus", r.cpus.as_deref()),
        ("memory", r.memory.as_deref()),
        ("ephemeralStorage", r.ephemeral_storage.as_deref()),
    ]
}

/// `child` lies strictly below the directory `parent`.
fn is_under(child: &str, parent: &str) -> bool {
    child.len() > parent.len() + 1
        && child.starts_with(parent)
        && child.as_bytes()[parent.len()] == b'/'
}

/// An absolute, clean file path: `/`-rooted, no empty, `.` or `..` segments, no trailing `/`, no NUL.
pub fn check_clean_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must be an absolute path".into());
    }
    if path == "/" {
        return Err("must name a file, not /".into());
    }
    if path.len() > 4096 {
        return Err("must be at most 4096 characters".into());
    }
    if path.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if path[1..]
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("must be a clean path (no '//', '.', '..' or trailing '/')".into());
    }
    Ok(())
}

/// RFC 1035 label: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// IANA service name, as Kubernetes requires for port names.
pub fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain.
pub fn check_qualified_name(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Err(format!("prefix {p:?} must be a DNS-1123 subdomain"));
    }
    if !is_name_part(name) {
        return Err(format!(
            "name {name:?} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// An IP block: its network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `other` lies inside this block (same family, at least as long a prefix, same network bits).
    pub fn contains(&self, other: &Cidr) -> bool {
        use std::net::IpAddr;
        if other.prefix < self.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Parse an IPv4 or IPv6 CIDR (`10.0.0.0/8`, `2001:db8::/32`), as Kubernetes' `isCIDR` does: an address
/// without a zone, `/`, and a prefix length within the family's width.
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let bad =
        || format!("{text:?} is not a CIDR (an IPv4 or IPv6 address, '/', and a prefix length)");
    let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return Err(bad());
    }
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > width {
        return Err(format!(
            "{text:?}: the prefix length must be at most {width}"
        ));
    }
    if let std::net::IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!(
            "{text:?}: IPv4-mapped IPv6 addresses are not allowed"
        ));
    }
    Ok(Cidr { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_quantities_follow_the_crd_pattern() {
        assert!(resource_quantity("1") == resource_quantity("1000m"));
        assert!(resource_quantity("0.5Gi") == resource_quantity("512Mi"));
        for bad in [
            "", "abc", "1.2.3", "1Q", "1ee", ".", "--1", "-1", "+1", "5n", "5u",
        ] {
            assert!(resource_quantity(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resource_quantity("2GB").err().as_deref(),
            Some("unknown suffix \"GB\"")
        );
    }

    #[test]
    fn clean_paths() {
        assert!(check_clean_path("/a/b.txt").is_ok());
        for bad in [
            "a", "/", "/a//b", "/a/../b", "/a/./b", "/a/", "/a/..", "/a\0",
        ] {
            assert!(check_clean_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert!(is_iana_svc_name("http"));
        assert!(!is_iana_svc_name("8080"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(is_dns1035_label("web-1"));
        assert!(!is_dns1035_label("1web"));
        assert!(check_qualified_name("example.com/team").is_ok());
        assert!(check_qualified_name("Example.com/team").is_err());
        assert!(check_qualified_name("-x").is_err());
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = |t: &str| parse_cidr(t).unwrap();
        assert!(c("10.0.0.0/8").contains(&c("10.1.0.0/16")));
        assert!(!c("10.0.0.0/8").contains(&c("11.0.0.0/16")));
        assert!(!c("10.0.0.0/16").contains(&c("10.0.0.0/8")));
        assert!(c("0.0.0.0/0").contains(&c("192.168.1.1/32")));
        assert!(c("2001:db8::/32").contains(&c("2001:db8:1::/48")));
        assert!(!c("2001:db8::/32").contains(&c("10.0.0.0/8")));
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::ffff:1.2.3.4/128",
            "",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn network_peers_name_exactly_one_kind_and_valid_blocks() {
        let sys: System = serde_json::from_value(serde_json::json!({
            "apiVersion": "tycho.dev/v1alpha1", "kind": "System",
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}],
                     "network": {"isolated": true, "allowFrom": [
                        {"namespace": "ok"},
                        {"namespace": "a", "cidr": "10.0.0.0/8"},
                        {"cidr": "10.0.0.0/33"},
                        {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]},
                        {}
                     ], "egress": {"to": [{"namespaceSelector": {"Bad Key": "x"}, "ports": [{"port": 0}]}]}}},
        }))
        .unwrap();
        let fields: Vec<String> = validate(&sys)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.network.allowFrom[1]",
                "spec.network.allowFrom[2].cidr",
                "spec.network.allowFrom[3].except[0]",
                "spec.network.allowFrom[4]",
                "spec.network.egress.to[0].namespaceSelector[\"Bad Key\"]",
                "spec.network.egress.to[0].ports[0].port",
            ]
        );
    }
}
