//! `tycho controller`: run the operator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::CliError;
use crate::controller::{self, ControllerConfig};
use crate::render::RenderSettings;

/// Arguments of `tycho controller`.
#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    /// Namespace to watch (repeatable); cluster-wide when none is given.
    #[arg(
        short = 'n',
        long = "namespace",
        env = "TYCHO_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Most reconciles running at once.
    #[arg(long, default_value_t = 8, env = "TYCHO_CONCURRENCY")]
    pub concurrency: u16,
    /// Extended resource name that `gpus` maps to.
    #[arg(long, default_value = "nvidia.com/gpu", env = "TYCHO_GPU_RESOURCE")]
    pub gpu_resource: String,
    /// Directory whose `*.yaml.tera` templates override the embedded ones.
    #[arg(long = "templates", env = "TYCHO_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, default_value = "0.0.0.0:8080", env = "TYCHO_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Duration in seconds of a session Lease that sets no `leaseDurationSeconds`.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub default_session_duration: u64,
}

impl ControllerArgs {
    /// The controller settings these arguments describe.
    pub fn config(&self) -> ControllerConfig {
        ControllerConfig {
            namespaces: self
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            concurrency: self.concurrency,
            render: RenderSettings {
                gpu_resource: self.gpu_resource.clone(),
                template_dir: self.templates.clone(),
            },
            metrics_addr: Some(self.metrics_addr),
            default_session_duration: Duration::from_secs(self.default_session_duration),
            instance: std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()),
            ..ControllerConfig::default()
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Run the operator until it is told to stop (SIGINT or SIGTERM: running reconciles finish first).
pub async fn run(args: ControllerArgs) -> Result<ExitCode, CliError> {
    let client = kube::Client::try_default().await.map_err(|e| {
        CliError::Failed(format!(
            "cannot configure a Kubernetes client (kubeconfig or in-cluster config): {e}"
        ))
    })?;
    controller::run(client, args.config(), shutdown_signal())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: ControllerArgs,
    }

    #[test]
    fn defaults_and_repeatable_namespaces() {
        let t = T::try_parse_from(["t"]).unwrap();
        let c = t.args.config();
        assert!(c.namespaces.is_empty());
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(c.render.gpu_resource, "nvidia.com/gpu");
        assert_eq!(c.default_session_duration, Duration::from_secs(30));
        let t =
            T::try_parse_from(["t", "-n", "a", "--namespace", "b", "--concurrency", "2"]).unwrap();
        assert_eq!(t.args.config().namespaces, ["a", "b"]);
        assert_eq!(t.args.config().concurrency, 2);
        assert!(T::try_parse_from(["t", "--default-session-duration", "0"]).is_err());
    }
}
