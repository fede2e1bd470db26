//! The exposed ports of an image, read from its registry — what lets `tycho run nginx --browser`
//! and a [`ContainerSpec`](crate::ContainerSpec) without ports tunnel what the image declares, as
//! 20ft did.
//!
//! [`RegistryOptions::image_config`] reads an image's configuration through the OCI distribution
//! API (the [`oci_client`] crate: manifest, then the config blob) and returns its `ExposedPorts`:
//!
//! - **References** are normalised as Docker does: `nginx` is `docker.io/library/nginx:latest`,
//!   `me/app` is `docker.io/me/app:latest`; the first path component is a registry when it holds a
//!   `.` or a `:` or is `localhost`. Docker Hub's API is served at `registry-1.docker.io`.
//! - **Authentication** follows the registry's `WWW-Authenticate` challenge: a `Bearer` challenge
//!   sends the client to the token endpoint it names (anonymously, as public registries issue
//!   pull tokens, or with credentials when there are some); a `Basic` challenge gets the
//!   credentials directly. Credentials come from Docker's `config.json` (`$DOCKER_CONFIG/config.json`,
//!   else `~/.docker/config.json`): the `auths` entry of the registry (base64 `auth` of
//!   `user:password`, or `username` and `password`), else its `credHelpers` entry or the
//!   `credsStore`, run as `docker-credential-<name> get` as Docker does.
//! - **Multi-platform images**: an image index is resolved to the platform asked for, by default
//!   `linux/<this machine's architecture>`, then `linux/amd64` (what most clusters run).
//! - **Plain HTTP** is used for registries on loopback (`localhost`, `127.0.0.0/8`, `[::1]`), as
//!   Docker treats them as insecure registries; every other registry is spoken to over HTTPS (rustls
//!   with the *ring* provider, like the Kubernetes client) unless listed in
//!   [`RegistryOptions::insecure_registries`].
//! - **Cache**: answers are kept on disk under `$XDG_CACHE_HOME/tycho/image-config/` (else
//!   `~/.cache/tycho/image-config/`), one JSON file per reference (as given, normalised: a tag is not
//!   resolved to a digest) and platform, and reused for [`RegistryOptions::cache_ttl`] (24 hours by
//!   default; a reference by digest never changes, so it does not expire). Failures are not cached.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tycho_sdk::registry::RegistryError> {
//! let config = tycho_sdk::registry::RegistryOptions::default()
//!     .image_config("nginx")
//!     .await?;
//! assert_eq!(config.tcp_ports(), vec![80]);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

/// Docker Hub's name in image references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key of Docker Hub's entry in `config.json` (what `docker login` writes).
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// How long a cached answer is used by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long one look-up may take by default (every request to the registry and token endpoint).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the exposed ports of an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error("{image:?} is not a valid image reference: {reason}")]
    InvalidReference {
        /// The reference as given.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be reached (name resolution, connection, TLS).
    #[error("cannot reach the registry {registry}: {source}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry did not answer in time.
    #[error("the registry {registry} did not answer within {after:?}")]
    Timeout {
        /// The registry host.
        registry: String,
        /// How long we waited.
        after: Duration,
    },
    /// The registry wants credentials, or refused the ones given.
    #[error(
        "the registry {registry} refused to show {image} {}: credentials go in {config} \
         (as `docker login {registry}` writes them)",
        if *.with_credentials { "with the credentials found" } else { "without credentials" }
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The normalised reference.
        image: String,
        /// Whether credentials were sent.
        with_credentials: bool,
        /// The Docker config file read (or that would be).
        config: String,
    },
    /// The registry does not have the image (or the tag).
    #[error("{image} is not in the registry {registry}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// The normalised reference.
        image: String,
    },
    /// Any other failure of the registry conversation.
    #[error("reading {image} from the registry {registry}: {source}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The normalised reference.
        image: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The image's config blob is not an image configuration.
    #[error("the configuration of {image} does not parse: {reason}")]
    BadConfig {
        /// The normalised reference.
        image: String,
        /// Why.
        reason: String,
    },
    /// Docker's `config.json` exists but cannot be read or does not parse.
    #[error("{}: {reason}", .path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// An image reference, normalised as Docker does.
///
/// ```
/// use tycho_sdk::registry::ImageRef;
///
/// let r = ImageRef::parse("nginx").unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
/// let r = ImageRef::parse("localhost:5000/web:1").unwrap();
/// assert_eq!((r.domain(), r.repository(), r.tag()), ("localhost:5000", "web", Some("1")));
/// assert!(r.is_loopback());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parse and normalise `image` (`nginx`, `me/app:1`, `ghcr.io/o/r@sha256:…`, `localhost:5000/x`).
    pub fn parse(image: &str) -> Result<ImageRef, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidReference {
            image: image.to_string(),
            reason,
        };
        let trimmed = image.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let r = Reference::from_str(trimmed).map_err(|e| invalid(e.to_string()))?;
        let domain = match r.registry() {
            "index.docker.io" | "registry-1.docker.io" | "" => DOCKER_HUB.to_string(),
            other => other.to_ascii_lowercase(),
        };
        let mut repository = r.repository().to_string();
        if domain == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let digest = r.digest().map(str::to_string);
        let tag = match (r.tag(), &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as named in references (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag (`latest` when neither tag nor digest is given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The host that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }

    /// Whether the registry is on this machine's loopback (spoken to over plain HTTP).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.domain)
    }

    fn to_oci(&self) -> Reference {
        let registry = self.api_host().to_string();
        let repository = self.repository.clone();
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry, repository, t.clone(), d.clone())
            }
            (None, Some(d)) => Reference::with_digest(registry, repository, d.clone()),
            (Some(t), None) => Reference::with_tag(registry, repository, t.clone()),
            (None, None) => Reference::with_tag(registry, repository, "latest".into()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        domain.split(':').next().unwrap_or(domain)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One `ExposedPorts` entry of an image configuration (`"80/tcp"`, `"53/udp"`; no protocol means TCP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExposedPort {
    /// The container port.
    pub port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl fmt::Display for ExposedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// What Tycho reads of an image's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The normalised reference (`docker.io/library/nginx:latest`).
    pub reference: String,
    /// The platform whose configuration this is (`linux/amd64`): as the configuration says, else
    /// the one asked for.
    pub platform: String,
    /// Digest of the platform's image manifest.
    pub digest: String,
    /// The `ExposedPorts` entries, sorted by port, then protocol.
    pub exposed_ports: Vec<ExposedPort>,
    /// Whether this came from the on-disk cache rather than the registry.
    pub from_cache: bool,
}

impl ImageConfig {
    /// The exposed TCP ports, ascending: those a tunnel (Kubernetes port-forward) can reach.
    pub fn tcp_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .exposed_ports
            .iter()
            .filter(|p| p.protocol == "tcp")
            .map(|p| p.port)
            .collect();
        ports.dedup();
        ports
    }
}

/// How to read image configurations: credentials, cache, platform, time limits.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Docker's config file (default: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// The cache folder (default: `$XDG_CACHE_HOME/tycho/image-config`, else
    /// `~/.cache/tycho/image-config`).
    pub cache_dir: Option<PathBuf>,
    /// How long a cached answer is used; zero turns the cache off (nothing is read or written).
    pub cache_ttl: Duration,
    /// The platform of a multi-platform image, `os/arch[/variant]` (default:
    /// `linux/<this machine's architecture>`, then `linux/amd64`).
    pub platform: Option<String>,
    /// Limit of one look-up.
    pub timeout: Duration,
    /// Registries (as named in references, e.g. `registry.lan:5000`) to speak plain HTTP to, besides
    /// the loopback ones.
    pub insecure_registries: Vec<String>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            docker_config: None,
            cache_dir: None,
            cache_ttl: DEFAULT_CACHE_TTL,
            platform: None,
            timeout: DEFAULT_TIMEOUT,
            insecure_registries: Vec::new(),
        }
    }
}

/// The exposed TCP ports of `image`, read with the default [`RegistryOptions`].
pub async fn exposed_tcp_ports(image: &str) -> Result<Vec<u16>, RegistryError> {
    Ok(RegistryOptions::default()
        .image_config(image)
        .await?
        .tcp_ports())
}

impl RegistryOptions {
    /// The configuration of `image` for the platform: from the cache when fresh, else from its
    /// registry (and then cached).
    pub async fn image_config(&self, image: &str) -> Result<ImageConfig, RegistryError> {
        let r = ImageRef::parse(image)?;
        let platform = self.platform();
        let cache = self.cache_file(&r, &platform);
        if let Some(path) = &cache
            && let Some(hit) = read_cache(path, self.ttl_for(&r))
        {
            tracing::debug!(image = %r, path = %path.display(), "image config from the cache");
            return Ok(hit);
        }
        let config = self.fetch(&r, &platform).await?;
        if let Some(path) = &cache
            && let Err(e) = write_cache(path, &config)
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot cache the image config");
        }
        Ok(config)
    }

    /// The platform asked for, `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        self.platform
            .clone()
            .unwrap_or_else(|| format!("linux/{}", oci_client::config::Architecture::default()))
    }

    /// The Docker config file to read credentials from.
    pub fn docker_config_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.docker_config {
            return Some(p.clone());
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        home().map(|h| h.join(".docker").join("config.json"))
    }

    /// The cache folder, when there is one.
    pub fn cache_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.cache_dir {
            return Some(p.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".cache")))?;
        Some(base.join("tycho").join("image-config"))
    }

    fn ttl_for(&self, r: &ImageRef) -> Duration {
        if r.digest.is_some() && !self.cache_ttl.is_zero() {
            Duration::MAX
        } else {
            self.cache_ttl
        }
    }

    fn cache_file(&self, r: &ImageRef, platform: &str) -> Option<PathBuf> {
        if self.cache_ttl.is_zero() {
            return None;
        }
        Some(self.cache_path()?.join(format!(
            "{}.json",
            file_name_escape(&format!("{r} {platform}"))
        )))
    }

    fn speaks_http(&self, r: &ImageRef) -> bool {
        r.is_loopback()
            || self
                .insecure_registries
                .iter()
                .any(|i| i.eq_ignore_ascii_case(r.domain()))
    }

    async fn fetch(&self, r: &ImageRef, platform: &str) -> Result<ImageConfig, RegistryError> {
        ensure_crypto_provider();
        let registry = r.api_host().to_string();
        let image = r.to_string();
        let config = ClientConfig {
            protocol: if self.speaks_http(r) {
                ClientProtocol::HttpsExcept(vec![registry.clone()])
            } else {
                ClientProtocol::Https
            },
            platform_resolver: Some(Box::new(platform_resolver(platform))),
            connect_timeout: Some(self.timeout),
            read_timeout: Some(self.timeout),
            user_agent: concat!("tycho/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| RegistryError::Registry {
            registry: registry.clone(),
            image: image.clone(),
            source: Box::new(e),
        })?;
        let config_path = self.docker_config_path();
        let auth = match &config_path {
            Some(path) => credentials(path, r.domain()).await?,
            None => RegistryAuth::Anonymous,
        };
        let with_credentials = !matches!(auth, RegistryAuth::Anonymous);
        tracing::debug!(%image, %registry, with_credentials, %platform, "reading the image config");
        let pulled = tokio::time::timeout(
            self.timeout,
            client.pull_manifest_and_config(&r.to_oci(), &auth),
        )
        .await
        .map_err(|_| RegistryError::Timeout {
            registry: registry.clone(),
            after: self.timeout,
        })?;
        let (_manifest, digest, config_json) = pulled.map_err(|e| {
            classify(
                e,
                &registry,
                &image,
                with_credentials,
                config_path.as_deref(),
            )
        })?;
        let parsed = parse_config(&config_json).map_err(|reason| RegistryError::BadConfig {
            image: image.clone(),
            reason,
        })?;
        Ok(ImageConfig {
            reference: image,
            platform: parsed.platform.unwrap_or_else(|| platform.to_string()),
            digest,
            exposed_ports: parsed.exposed_ports,
            from_cache: false,
        })
    }
}

/// reqwest (under oci-client) is built without a crypto provider of its own, so that the tree keeps
/// one (*ring*, as kube's client uses); it takes the process default, which we install if none is.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one in between: that one is used, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The digest of the index entry for `wanted` (`os/arch[/variant]`), else the `linux/amd64` one.
fn platform_resolver(
    wanted: &str,
) -> impl Fn(&[ImageIndexEntry]) -> Option<String> + Send + Sync + use<> {
    let mut parts = wanted.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts.next().unwrap_or("amd64").to_string();
    let variant = parts.next().map(str::to_string);
    move |entries: &[ImageIndexEntry]| {
        let pick = |os: &str, arch: &str, variant: Option<&str>| {
            entries
                .iter()
                .find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == os
                            && p.architecture.to_string() == arch
                            && variant.is_none_or(|v| p.variant.as_deref() == Some(v))
                    })
                })
                .map(|e| e.digest.clone())
        };
        pick(&os, &arch, variant.as_deref())
            .or_else(|| pick(&os, &arch, None))
            .or_else(|| pick("linux", "amd64", None))
    }
}

/// Turn oci-client's error into ours, naming what the user can do about it.
fn classify(
    e: OciDistributionError,
    registry: &str,
    image: &str,
    with_credentials: bool,
    config: Option<&Path>,
) -> RegistryError {
    let unauthorized = || RegistryError::Unauthorized {
        registry: registry.to_string(),
        image: image.to_string(),
        with_credentials,
        config: config.map_or_else(
            || "~/.docker/config.json".to_string(),
            |p| p.display().to_string(),
        ),
    };
    let not_found = || RegistryError::NotFound {
        registry: registry.to_string(),
        image: image.to_string(),
    };
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => unauthorized(),
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            unauthorized()
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            not_found()
        }
        OciDistributionError::RequestError(re) if re.is_connect() || re.is_timeout() => {
            RegistryError::Unreachable {
                registry: registry.to_string(),
                source: Box::new(re),
            }
        }
        other => RegistryError::Registry {
            registry: registry.to_string(),
            image: image.to_string(),
            source: Box::new(other),
        },
    }
}

/// What is read of an image configuration.
struct ParsedConfig {
    /// `os/architecture[/variant]`, when the configuration names both.
    platform: Option<String>,
    /// The `config.ExposedPorts` keys, sorted; keys that are not `PORT[/PROTOCOL]` are skipped. A
    /// configuration without the field has no exposed ports.
    exposed_ports: Vec<ExposedPort>,
}

fn parse_config(config_json: &str) -> Result<ParsedConfig, String> {
    let v: Value = serde_json::from_str(config_json).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("it is not a JSON object".into());
    }
    let field = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let platform = match (field("os"), field("architecture"), field("variant")) {
        (Some(os), Some(arch), Some(variant)) => Some(format!("{os}/{arch}/{variant}")),
        (Some(os), Some(arch), None) => Some(format!("{os}/{arch}")),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(ports) = v
        .get("config")
        .and_then(|c| c.get("ExposedPorts"))
        .and_then(Value::as_object)
    {
        for key in ports.keys() {
            let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
            match port.trim().parse::<u16>() {
                Ok(port) if port > 0 => out.push(ExposedPort {
                    port,
                    protocol: protocol.trim().to_ascii_lowercase(),
                }),
                _ => {
                    tracing::debug!(entry = %key, "skipping an ExposedPorts entry that is not PORT/PROTOCOL")
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(ParsedConfig {
        platform,
        exposed_ports: out,
    })
}

/// The credentials Docker would use for `domain`, from the config file at `path`: the `auths`
/// entry, else the registry's `credHelpers` entry or the `credsStore`. A missing file means none.
async fn credentials(path: &Path, domain: &str) -> Result<RegistryAuth, RegistryError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => {
            return Err(RegistryError::DockerConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let bad = |reason: String| RegistryError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let hosts = config_hosts(domain);
    if let Some(auths) = v.get("auths").and_then(Value::as_object) {
        for (key, entry) in auths {
            if !hosts.contains(&config_key_host(key)) {
                continue;
            }
            if let Some(auth) = auth_entry(entry).map_err(|r| bad(format!("auths.{key:?}: {r}")))? {
                return Ok(auth);
            }
        }
    }
    let helper = v
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| hosts.contains(&config_key_host(k)))
                .and_then(|(_, v)| v.as_str())
        })
        .or_else(|| v.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty());
    match helper {
        Some(h) => Ok(credential_helper(h, domain).await),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// The hosts a `config.json` key may name for `domain` (Docker Hub has several names).
fn config_hosts(domain: &str) -> Vec<String> {
    if domain == DOCKER_HUB {
        vec![
            "index.docker.io".into(),
            DOCKER_HUB.into(),
            DOCKER_HUB_API.into(),
        ]
    } else {
        vec![domain.to_ascii_lowercase()]
    }
}

/// The host of a `config.json` key, as Docker reads it: without scheme and path.
fn config_key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k).to_ascii_lowercase()
}

/// Credentials of one `auths` entry: `auth` (base64 of `user:password`) or `username`/`password`.
/// `None` when it has neither (an `identitytoken` alone is not supported).
fn auth_entry(entry: &Value) -> Result<Option<RegistryAuth>, String> {
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auth is not base64: {e}"))?;
        let text = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_string())?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| "auth is not base64 of user:password".to_string())?;
        return Ok(Some(RegistryAuth::Basic(user.into(), password.into())));
    }
    let user = entry.get("username").and_then(Value::as_str);
    let password = entry.get("password").and_then(Value::as_str);
    Ok(match (user, password) {
        (Some(u), Some(p)) if !u.is_empty() => Some(RegistryAuth::Basic(u.into(), p.into())),
        _ => None,
    })
}

/// Ask `docker-credential-<helper> get` for the credentials of `domain`, as Docker does. Anonymous
/// when the helper is missing, fails, or has none (it is only asked because the config names it).
async fn credential_helper(helper: &str, domain: &str) -> RegistryAuth {
    use tokio::io::AsyncWriteExt;
    let server = if domain == DOCKER_HUB {
        DOCKER_HUB_CONFIG_KEY.to_string()
    } else {
        domain.to_string()
    };
    let program = format!("docker-credential-{helper}");
    let child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%program, error = %e, "cannot run the credential helper");
            return RegistryAuth::Anonymous;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let out = match child.wait_with_output().await {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            tracing::debug!(%program, stderr = %String::from_utf8_lossy(&o.stderr).trim(), "the credential helper has no credentials");
            return RegistryAuth::Anonymous;
        }
        Err(e) => {
            tracing::debug!(%program, error = %e, "the credential helper failed");
            return RegistryAuth::Anonymous;
        }
    };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    match (
        v.get("Username").and_then(Value::as_str),
        v.get("Secret").and_then(Value::as_str),
    ) {
        // `<token>` marks an identity token (an OAuth refresh token), which is not supported.
        (Some(u), Some(s)) if !u.is_empty() && u != "<token>" => {
            RegistryAuth::Basic(u.into(), s.into())
        }
        _ => RegistryAuth::Anonymous,
    }
}

/// A file name for any string: ASCII letters, digits, `.` and `-` as they are, every other byte as
/// `_XX` (hex), so that distinct keys never share a file.
fn file_name_escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A cached answer younger than `ttl`; `None` when absent, stale or unreadable.
fn read_cache(path: &Path, ttl: Duration) -> Option<ImageConfig> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let fetched = v.get("fetched")?.as_u64()?;
    if now_secs().saturating_sub(fetched) >= ttl.as_secs() {
        return None;
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut exposed_ports = Vec::new();
    for p in v.get("exposedPorts")?.as_array()? {
        let (port, protocol) = p.as_str()?.split_once('/')?;
        exposed_ports.push(ExposedPort {
            port: port.parse().ok()?,
            protocol: protocol.to_string(),
        });
    }
    Some(ImageConfig {
        reference: text("reference")?,
        platform: text("platform")?,
        digest: text("digest")?,
        exposed_ports,
        from_cache: true,
    })
}

/// Write the answer atomically (a temporary file renamed into place).
fn write_cache(path: &Path, config: &ImageConfig) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let v = serde_json::json!({
        "reference": config.reference,
        "platform": config.platform,
        "digest": config.digest,
        "fetched": now_secs(),
        "exposedPorts": config.exposed_ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, v.to_string())?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn references_are_normalised_as_docker_does() {
        assert_eq!(r("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(r("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(
            r("jupyter/base-notebook"),
            "docker.io/jupyter/base-notebook:latest"
        );
        assert_eq!(r("docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            r("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
        assert_eq!(r("ghcr.io/o/r/x:v1"), "ghcr.io/o/r/x:v1");
        assert_eq!(r("localhost/web"), "localhost/web:latest");
        assert_eq!(
            r("127.0.0.1:5000/library/nginx"),
            "127.0.0.1:5000/library/nginx:latest"
        );
        let d = "sha256:".to_string() + &"a".repeat(64);
        assert_eq!(
            r(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        assert_eq!(
            r(&format!("nginx:1@{d}")),
            format!("docker.io/library/nginx:1@{d}")
        );
        let hub = ImageRef::parse("nginx").unwrap();
        assert_eq!(hub.api_host(), DOCKER_HUB_API);
        assert_eq!(hub.to_oci().resolve_registry(), DOCKER_HUB_API);
        assert_eq!(hub.to_oci().repository(), "library/nginx");
        assert!(!hub.is_loopback());
        for bad in ["", "  ", "Nginx", "nginx:bad tag", "a//b"] {
            assert!(
                matches!(
                    ImageRef::parse(bad),
                    Err(RegistryError::InvalidReference { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn loopback_registries_speak_http() {
        for (host, lo) in [
            ("localhost:5000", true),
            ("LOCALHOST", true),
            ("127.0.0.1:5000", true),
            ("127.8.9.1", true),
            ("[::1]:5000", true),
            ("[::2]:5000", false),
            ("10.0.0.1:5000", false),
            ("docker.io", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback_host(host), lo, "{host}");
        }
        let o = RegistryOptions {
            insecure_registries: vec!["registry.lan:5000".into()],
            ..RegistryOptions::default()
        };
        assert!(o.speaks_http(&ImageRef::parse("registry.lan:5000/a").unwrap()));
        assert!(o.speaks_http(&ImageRef::parse("localhost:1/a").unwrap()));
        assert!(!o.speaks_http(&ImageRef::parse("registry.lan/a").unwrap()));
    }

    #[test]
    fn exposed_ports_are_parsed_and_sorted() {
        let parsed = parse_config(
            r#"{"os":"linux","architecture":"arm","variant":"v7","config":{"ExposedPorts":{"443/tcp":{},"80/tcp":{},"53/udp":{},"8080":{},"x/tcp":{},"0/tcp":{}}}}"#,
        )
        .unwrap();
        assert_eq!(parsed.platform.as_deref(), Some("linux/arm/v7"));
        let ports = parsed.exposed_ports;
        let shown: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["53/udp", "80/tcp", "443/tcp", "8080/tcp"]);
        let config = ImageConfig {
            reference: String::new(),
            platform: String::new(),
            digest: String::new(),
            exposed_ports: ports,
            from_cache: false,
        };
        assert_eq!(config.tcp_ports(), [80, 443, 8080]);
        let empty = parse_config(r#"{"os":"linux","architecture":"amd64","config":{}}"#).unwrap();
        assert_eq!(empty.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(empty.exposed_ports, []);
        let bare = parse_config(r#"{"os":"","architecture":"amd64"}"#).unwrap();
        assert_eq!((bare.platform, bare.exposed_ports), (None, vec![]));
        assert!(parse_config("[]").is_err());
        assert!(parse_config("not json").is_err());
    }

    fn entry(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> ImageIndexEntry {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": {"os": os, "architecture": arch, "variant": variant},
        }))
        .unwrap()
    }

    #[test]
    fn indexes_resolve_to_the_platform_then_linux_amd64() {
        let index = [
            entry("unknown", "unknown", None, "att"),
            entry("linux", "arm", Some("v7"), "armv7"),
            entry("linux", "arm64", Some("v8"), "arm64"),
            entry("linux", "amd64", None, "amd64"),
            entry("windows", "amd64", None, "win"),
        ];
        let pick = |p: &str| platform_resolver(p)(&index);
        assert_eq!(pick("linux/arm64").as_deref(), Some("arm64"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("arm64"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("armv7"));
        assert_eq!(pick("linux/amd64").as_deref(), Some("amd64"));
        assert_eq!(pick("windows/amd64").as_deref(), Some("win"));
        assert_eq!(
            pick("linux/s390x").as_deref(),
            Some("amd64"),
            "falls back to linux/amd64"
        );
        assert_eq!(platform_resolver("linux/s390x")(&index[..2]), None);
        let host = RegistryOptions::default().platform();
        assert!(host.starts_with("linux/") && host.len() > 6, "{host}");
    }

    #[tokio::test]
    async fn credentials_come_from_docker_config() {
        let dir = std::env::temp_dir().join(format!("tycho-registry-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pw:with:colons")},
                "http://localhost:5000": {"auth": b64("local:secret")},
                "ghcr.io": {"username": "g", "password": "p"},
                "quay.io": {"identitytoken": "x"},
            }})
            .to_string(),
        )
        .unwrap();
        let basic = |u: &str, p: &str| format!("{:?}", RegistryAuth::Basic(u.into(), p.into()));
        let got = |domain: &'static str| {
            let path = path.clone();
            async move { format!("{:?}", credentials(&path, domain).await.unwrap()) }
        };
        assert_eq!(got("docker.io").await, basic("hub", "pw:with:colons"));
        assert_eq!(got("localhost:5000").await, basic("local", "secret"));
        assert_eq!(got("ghcr.io").await, basic("g", "p"));
        assert_eq!(got("quay.io").await, "Anonymous");
        assert_eq!(got("example.com").await, "Anonymous");
        assert_eq!(
            format!(
                "{:?}",
                credentials(&dir.join("none.json"), "docker.io")
                    .await
                    .unwrap()
            ),
            "Anonymous"
        );
        std::fs::write(&path, r#"{"auths": {"ghcr.io": {"auth": "%%%"}}}"#).unwrap();
        let e = credentials(&path, "ghcr.io").await.unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            credentials(&path, "ghcr.io").await,
            Err(RegistryError::DockerConfig { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cache_round_trips_and_expires() {
        let dir = std::env::temp_dir().join(format!("tycho-registry-cache-{}", std::process::id()));
        let o = RegistryOptions {
            cache_dir: Some(dir.clone()),
            ..RegistryOptions::default()
        };
        let r = ImageRef::parse("nginx").unwrap();
        let path = o.cache_file(&r, "linux/amd64").unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            "docker.io_2flibrary_2fnginx_3alatest_20linux_2famd64.json"
        );
        let config = ImageConfig {
            reference: r.to_string(),
            platform: "linux/amd64".into(),
            digest: "sha256:1".into(),
            exposed_ports: vec![ExposedPort {
                port: 80,
                protocol: "tcp".into(),
            }],
            from_cache: false,
        };
        write_cache(&path, &config).unwrap();
        let hit = read_cache(&path, DEFAULT_CACHE_TTL).unwrap();
        assert!(hit.from_cache);
        assert_eq!(
            ImageConfig {
                from_cache: false,
                ..hit
            },
            config
        );
        assert!(read_cache(&path, Duration::ZERO).is_none(), "stale");
        assert!(read_cache(&dir.join("absent.json"), DEFAULT_CACHE_TTL).is_none());
        let off = RegistryOptions {
            cache_ttl: Duration::ZERO,
            ..o.clone()
        };
        assert!(off.cache_file(&r, "linux/amd64").is_none());
        let pinned = ImageRef::parse(&format!("nginx@sha256:{}", "b".repeat(64))).unwrap();
        assert_eq!(o.ttl_for(&pinned), Duration::MAX);
        assert_eq!(o.ttl_for(&r), DEFAULT_CACHE_TTL);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
