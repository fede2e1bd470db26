//! Arguments several commands share: which cluster to talk to, output formats, durations.

use std::path::PathBuf;
use std::time::Duration;

use tycho_sdk::ConnectOptions;

use super::CliError;

/// Which cluster and namespace to talk to.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Path of the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

impl ClusterArgs {
    /// Connection options for the SDK.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            // $KUBECONFIG may hold a list of files; the SDK's own inference handles that case.
            kubeconfig: self
                .kubeconfig
                .clone()
                .filter(|p| !p.to_string_lossy().contains(':')),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            ..ConnectOptions::default()
        }
    }

    /// A client and the namespace.
    pub async fn client(&self) -> Result<(kube::Client, String), CliError> {
        Ok(self.options().client().await?)
    }
}

/// Output formats of listing commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Parse `90`, `90s`, `2m`, `1h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 90s, 2m, 1h)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("x").is_err());
    }
}
