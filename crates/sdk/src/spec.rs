//! The builder of what to spawn.

use std::collections::BTreeMap;

use base64::Engine;

use super::SdkError;
use super::registry::RegistryOptions;
use tycho_model::{self as model, FileSpec, PortSpec, Resources, SystemSpec, Workload};

/// What to run: image, command, environment, exposed ports, pre-boot files, sleep and limits.
///
/// ```
/// use tycho_sdk::ContainerSpec;
///
/// let spec = ContainerSpec::new("nginx:1.27")
///     .port(80)
///     .env("MODE", "demo")
///     .file("/usr/share/nginx/html/index.html", "Hello World!")
///     .cpus("500m")
///     .memory("256Mi");
/// assert_eq!(spec.image(), "nginx:1.27");
/// ```
///
/// **Ports.** A spec that names no port gets the image's: [`Location::spawn`](crate::Location::spawn)
/// reads the `ExposedPorts` of the image's configuration from its registry (see [`crate::registry`])
/// and exposes every TCP port listed, as 20ft did, so `ContainerSpec::new("nginx")` can be tunnelled
/// to port 80. When the registry cannot be read, the container is spawned without ports (a warning
/// is logged through `tracing`). [`ContainerSpec::image_ports`] turns this off, and
/// [`ContainerSpec::registry`] says how to read the registry.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    image: String,
    name: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ports: Vec<u16>,
    files: Vec<(String, Vec<u8>, Option<i32>)>,
    sleep: bool,
    limits: Resources,
    working_dir: Option<String>,
    workload: Option<Workload>,
    labels: BTreeMap<String, String>,
    node_selector: BTreeMap<String, String>,
    /// Set by `image_ports(false)`: spawn does not read the image's exposed ports.
    no_image_ports: bool,
    registry: Option<RegistryOptions>,
}

impl ContainerSpec {
    /// A spec running `image` with its own entrypoint.
    pub fn new(image: impl Into<String>) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            ..ContainerSpec::default()
        }
    }

    /// The image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Name prefix of the System (default: derived from the image name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Entrypoint override.
    pub fn command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// Arguments to the entrypoint.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// An environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Expose a container port (tunnels can then be attached to it).
    pub fn port(mut self, port: u16) -> Self {
        if !self.ports.contains(&port) {
            self.ports.push(port);
        }
        self
    }

    /// The exposed ports given so far (without the image's, which are read at spawn).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether spawning reads the image's exposed ports from its registry when no port is given
    /// (default `true`; see the type's documentation). With `false`, a spec without ports exposes none.
    pub fn image_ports(mut self, resolve: bool) -> Self {
        self.no_image_ports = !resolve;
        self
    }

    /// How the image's exposed ports are read: credentials file, cache, platform, time limit
    /// (default: [`RegistryOptions::default`]).
    pub fn registry(mut self, options: RegistryOptions) -> Self {
        self.registry = Some(options);
        self
    }

    /// This spec with the image's exposed TCP ports when it names none (and that is not turned
    /// off); unchanged, with a warning, when they cannot be read.
    pub(crate) async fn with_image_ports(mut self) -> Self {
        if !self.ports.is_empty() || self.no_image_ports {
            return self;
        }
        let options = self.registry.clone().unwrap_or_default();
        match options.image_config(&self.image).await {
            Ok(config) => {
                self.ports = config.tcp_ports();
                tracing::debug!(
                    image = %config.reference,
                    platform = %config.platform,
                    cached = config.from_cache,
                    ports = ?self.ports,
                    "ports from the image's ExposedPorts"
                );
            }
            Err(e) => tracing::warn!(
                image = %self.image,
                error = %e,
                "cannot read the image's exposed ports; spawning without ports"
            ),
        }
        self
    }

    /// A pre-boot file: present at `path` before the container's process starts.
    pub fn file(mut self, path: impl Into<String>, content: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), content.into(), None));
        self
    }

    /// A pre-boot file with mode bits (e.g. `0o755`).
    pub fn file_with_mode(
        mut self,
        path: impl Into<String>,
        content: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Self {
        self.files
            .push((path.into(), content.into(), Some((mode & 0o777) as i32)));
        self
    }

    /// Start with an idle process instead of the image's, so processes can be started later.
    pub fn sleep(mut self, sleep: bool) -> Self {
        self.sleep = sleep;
        self
    }

    /// CPU limit, e.g. `"500m"` or `"2"`.
    pub fn cpus(mut self, cpus: impl Into<String>) -> Self {
        self.limits.cpus = Some(cpus.into());
        self
    }

    /// Memory limit, e.g. `"512Mi"`.
    pub fn memory(mut self, memory: impl Into<String>) -> Self {
        self.limits.memory = Some(memory.into());
        self
    }

    /// Whole GPUs.
    pub fn gpus(mut self, gpus: i32) -> Self {
        self.limits.gpus = Some(gpus);
        self
    }

    /// Working directory.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Run as a `Deployment` (restarted by Kubernetes) instead of the default bare `Pod`.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workload = Some(workload);
        self
    }

    /// A label carried to the System's children.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub(crate) fn pin_to_node(mut self, node: &str) -> Self {
        self.node_selector
            .insert("kubernetes.io/hostname".into(), node.to_string());
        self
    }

    /// Name prefix of the System: the given name or the image's last path segment, as a DNS label.
    pub(crate) fn name_prefix(&self) -> String {
        let base = self
            .name
            .clone()
            .unwrap_or_else(|| container_name(&self.image));
        model::system_name_prefix(&base)
    }

    /// The System spec for this container, owned by `session`.
    pub(crate) fn to_system_spec(&self, session: &str) -> Result<SystemSpec, SdkError> {
        if self.image.trim().is_empty() {
            return Err(SdkError::InvalidSpec("the image is empty".into()));
        }
        let mut files = Vec::new();
        let mut total = 0usize;
        for (path, content, mode) in &self.files {
            if !path.starts_with('/') {
                return Err(SdkError::InvalidSpec(format!(
                    "pre-boot file path {path:?} must be absolute"
                )));
            }
            total += content.len();
            let (content, binary) = match std::str::from_utf8(content) {
                Ok(s) => (Some(s.to_string()), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(content)),
                ),
            };
            files.push(FileSpec {
                path: path.clone(),
                content,
                binary_content: binary,
                mode: *mode,
            });
        }
        if total > model::MAX_FILE_BYTES {
            return Err(SdkError::InvalidSpec(format!(
                "pre-boot files total {total} bytes, more than the {} a System can carry",
                model::MAX_FILE_BYTES
            )));
        }
        let limits = (self.limits != Resources::default()).then(|| self.limits.clone());
        let container = model::ContainerSpec {
            name: container_name(&self.image),
            image: self.image.clone(),
            command: self.command.clone(),
            args: self.args.clone(),
            env: self
                .env
                .iter()
                .map(|(k, v)| model::EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    value_from: None,
                })
                .collect(),
            working_dir: self.working_dir.clone(),
            ports: self
                .ports
                .iter()
                .map(|p| PortSpec {
                    port: i32::from(*p),
                    expose: true,
                    ..PortSpec::default()
                })
                .collect(),
            requests: limits.clone(),
            limits,
            files,
            sleep: self.sleep,
            ..model::ContainerSpec::default()
        };
        Ok(SystemSpec {
            containers: vec![container],
            workload: self.workload.unwrap_or(Workload::Pod),
            replicas: 1,
            expose: if self.ports.is_empty() {
                model::Expose::None
            } else {
                model::Expose::ClusterIP
            },
            session: Some(session.to_string()),
            node_selector: self.node_selector.clone(),
            labels: self.labels.clone(),
            ..SystemSpec::default()
        })
    }
}

/// Container name for an image: its last path segment without tag, as a DNS label.
pub(crate) fn container_name(image: &str) -> String {
    model::container_name_for_image(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_session_owned_system_spec() {
        let spec = ContainerSpec::new("docker.io/library/nginx:1.27")
            .port(80)
            .port(80)
            .file("/usr/share/nginx/html/index.html", "Hello")
            .file("/bin/blob", vec![0xff, 0x00])
            .sleep(true)
            .cpus("1");
        let s = spec.to_system_spec("lease-1").unwrap();
        assert_eq!(s.session.as_deref(), Some("lease-1"));
        let c = &s.containers[0];
        assert_eq!(c.name, "nginx");
        assert_eq!(c.ports.len(), 1);
        assert_eq!(c.files[0].content.as_deref(), Some("Hello"));
        assert_eq!(c.files[1].binary_content.as_deref(), Some("/wA="));
        assert!(c.sleep);
        assert_eq!(spec.name_prefix(), "nginx");
        assert_eq!(
            ContainerSpec::new("337c501c333c").name_prefix(),
            "c-337c501c333c"
        );
        assert!(
            ContainerSpec::new("x")
                .file("rel", "a")
                .to_system_spec("l")
                .is_err()
        );
    }
}
