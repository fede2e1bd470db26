//! `tycho api`: the HTTP API and launcher page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tycho_api::{ApiServer, Limits, ServeConfig};
use tycho_sdk::ConnectOptions;

use super::CliError;

/// Arguments of `tycho api`.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Address to listen on. Plain HTTP is refused on a non-loopback address unless --tls-cert and
    /// --tls-key are given, or --allow-plain-http.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only behind a proxy that terminates TLS).
    #[arg(long)]
    pub allow_plain_http: bool,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub body_limit: usize,
    /// Longest time, in seconds, a request that is not a stream may take.
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Path of the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

impl ApiArgs {
    /// The server configuration.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig {
            listen: self.listen,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            allow_plain_http: self.allow_plain_http,
            limits: Limits {
                body_limit: self.body_limit,
                request_timeout: Duration::from_secs(self.request_timeout),
            },
        }
    }
}

/// Serve until Ctrl-C (or SIGTERM).
pub async fn serve(server: ApiServer) -> Result<(), CliError> {
    server.run(shutdown_signal()).await.map_err(CliError::from)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run `tycho api`.
pub async fn run(args: ApiArgs) -> Result<ExitCode, CliError> {
    let options = ConnectOptions {
        kubeconfig: args
            .kubeconfig
            .clone()
            .filter(|p| !p.to_string_lossy().contains(':')),
        context: args.context.clone(),
        ..ConnectOptions::default()
    };
    let (config, _) = options.config().await?;
    let server = ApiServer::bind(&args.serve_config(), config).await?;
    let url = server.url()?;
    println!(
        "Tycho API on {url} (launcher page {url}/, docs {url}/docs, OpenAPI {url}/openapi.json)"
    );
    serve(server).await?;
    Ok(ExitCode::SUCCESS)
}
