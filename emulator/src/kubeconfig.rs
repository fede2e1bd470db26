//! The kubeconfig the emulator writes: one cluster (`server: http://127.0.0.1:PORT`, no TLS),
//! an empty user, context `emulator` with namespace `default`. Built as `kube`'s own
//! [`Kubeconfig`] and serialised as YAML.

use std::path::Path;

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext, Preferences,
};

use crate::error::EmulatorError;

/// The name of the kubeconfig's cluster, user and context.
const NAME: &str = "emulator";

/// The kubeconfig for a server URL.
pub fn kubeconfig(url: &str) -> Kubeconfig {
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(Cluster {
                server: Some(url.into()),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some(NAME.into()),
                namespace: Some("default".into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.into()),
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(AuthInfo::default()),
            ..NamedAuthInfo::default()
        }],
        preferences: Some(Preferences::default()),
        ..Kubeconfig::default()
    }
}

/// The kubeconfig YAML for a server URL.
pub fn render(url: &str) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&kubeconfig(url))
}

/// Writes the kubeconfig for `url` to `path` (creating parent directories).
pub fn write(path: &Path, url: &str) -> Result<(), EmulatorError> {
    let err = |source| EmulatorError::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let text = render(url).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    std::fs::write(path, text).map_err(err)
}

#[cfg(test)]
mod tests {
    /// The kubeconfig parses as YAML with the expected server, user and context, and `kube`
    /// reads it back.
    #[test]
    fn renders_valid_yaml() {
        let y = super::render("http://127.0.0.1:1234").unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Config");
        assert_eq!(v["clusters"][0]["name"], "emulator");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
        assert_eq!(v["current-context"], "emulator");
        assert_eq!(v["contexts"][0]["context"]["cluster"], "emulator");
        assert_eq!(v["contexts"][0]["context"]["user"], "emulator");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
        assert_eq!(v["users"][0]["name"], "emulator");
        assert_eq!(v["users"][0]["user"], serde_json::json!({}));
        let k = kube::config::Kubeconfig::from_yaml(&y).unwrap();
        assert_eq!(k.current_context.as_deref(), Some("emulator"));
    }
}
