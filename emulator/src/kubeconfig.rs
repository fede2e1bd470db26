//! The kubeconfig the emulator writes: one cluster (`server: http://127.0.0.1:PORT`, no TLS),
//! an empty user, context `emulator` with namespace `default`.

use std::path::Path;

use crate::error::EmulatorError;

/// The kubeconfig YAML for a server URL.
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1\n\
kind: Config\n\
clusters:\n\
- name: emulator\n  cluster:\n    server: {url}\n\
contexts:\n\
- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\n\
current-context: emulator\n\
users:\n\
- name: emulator\n  user: {{}}\n\
preferences: {{}}\n"
    )
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
    std::fs::write(path, render(url)).map_err(err)
}

#[cfg(test)]
mod tests {
    /// The kubeconfig parses as YAML with the expected server and context.
    #[test]
    fn renders_valid_yaml() {
        let y = super::render("http://127.0.0.1:1234");
        let v: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:1234"
        );
        assert_eq!(v["current-context"], "emulator");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
    }
}
