//! `tycho controller`: run the operator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::CliError;
use super::error::BoxError;
use tycho_operator::controller::{self, ControllerConfig};
use tycho_operator::leader::LeaderElectConfig;
use tycho_operator::render::RenderSettings;

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
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else the in-cluster config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub leader: LeaderElectArgs,
}

/// Command-line flags of leader election, flattened into `tycho controller`'s arguments.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectArgs {
    /// Elect a leader among the operator's replicas on a coordination.k8s.io Lease; only the leader reconciles.
    #[arg(long = "leader-elect", env = "TYCHO_LEADER_ELECT")]
    pub enabled: bool,
    /// Namespace of the leader-election Lease (default: the client's namespace, in a pod its own).
    #[arg(long = "leader-elect-namespace", env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long = "leader-elect-lease-name", default_value = "tycho")]
    pub lease_name: String,
    /// Identity of this replica in the Lease (default: the pod name, else the host name plus a random suffix).
    #[arg(long = "leader-elect-identity", env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a standby waits after the Lease last changed before it takes over.
    #[arg(long = "leader-elect-lease-duration", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds the leader keeps trying to renew before it gives up leading (less than the lease duration).
    #[arg(long = "leader-elect-renew-deadline", default_value_t = 10)]
    pub renew_deadline_seconds: u64,
    /// Seconds between attempts to acquire or renew.
    #[arg(long = "leader-elect-retry-period", default_value_t = 2)]
    pub retry_period_seconds: u64,
}

impl From<&LeaderElectArgs> for LeaderElectConfig {
    fn from(a: &LeaderElectArgs) -> Self {
        LeaderElectConfig {
            enabled: a.enabled,
            namespace: a.namespace.clone(),
            lease_name: a.lease_name.clone(),
            identity: a.identity.clone(),
            lease_duration_seconds: a.lease_duration_seconds,
            renew_deadline_seconds: a.renew_deadline_seconds,
            retry_period_seconds: a.retry_period_seconds,
        }
    }
}

/// The User-Agent of the operator's API calls, so audit logs (and the emulator's request log) tell them apart.
pub const USER_AGENT: &str = concat!("tycho-controller/", env!("CARGO_PKG_VERSION"));

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

async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, CliError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(client_config)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(client_config)?
        }
        None => kube::Config::infer().await.map_err(client_config)?,
    };
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    kube::Client::try_from(config).map_err(client_config)
}

fn client_config(e: impl Into<BoxError>) -> CliError {
    CliError::ClientConfig(e.into())
}

/// While a replica stands by for leadership it serves `/healthz` and `/readyz` (both 200: a
/// standby is alive and ready to take over), so probes do not restart it; the server stops when
/// leadership is acquired and the controller's own server takes the address.
async fn standby_health(
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async { "standby: waiting for leadership" }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await
}

/// Run the operator until it is told to stop (SIGINT or SIGTERM: running reconciles finish first).
/// With `--leader-elect`, only the replica holding the leader Lease reconciles.
pub async fn run(args: ControllerArgs) -> Result<ExitCode, CliError> {
    let client = client(args.kubeconfig.as_ref()).await?;
    let config = args.config();
    let elector = LeaderElectConfig::from(&args.leader).elector(client.clone())?;
    let Some(elector) = elector else {
        controller::run(client, config, shutdown_signal()).await?;
        return Ok(ExitCode::SUCCESS);
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let standby = tokio::spawn(standby_health(args.metrics_addr, stop_rx));
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal_tx.send(true);
    });
    let mut signal = signal_rx.clone();
    let leading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let leading_in_work = leading.clone();
    let work = async move {
        // Leadership acquired: hand the health address over to the controller, which now owns
        // the reaction to SIGTERM (running reconciles finish, then the Lease is released).
        leading_in_work.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = stop_tx.send(());
        let _ = standby.await;
        let mut signal = signal_rx;
        controller::run(client, config, async move {
            let _ = signal.wait_for(|s| *s).await;
        })
        .await
    };
    tokio::select! {
        res = elector.run_until_lost(work) => match res {
            Ok(Ok(())) => Ok(ExitCode::SUCCESS),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(CliError::LeadershipLost(e)),
        },
        _ = async {
            let _ = signal.wait_for(|s| *s).await;
            if leading.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_parse_as_the_chart_passes_them() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            le: LeaderElectArgs,
        }
        let t = T::try_parse_from([
            "t",
            "--leader-elect",
            "--leader-elect-namespace=tycho-system",
            "--leader-elect-lease-name=tycho",
            "--leader-elect-identity=tycho-6d4f-abcde",
            "--leader-elect-lease-duration=15",
            "--leader-elect-renew-deadline=10",
            "--leader-elect-retry-period=2",
        ])
        .unwrap();
        assert!(t.le.enabled);
        assert_eq!(t.le.namespace.as_deref(), Some("tycho-system"));
        assert_eq!(t.le.identity.as_deref(), Some("tycho-6d4f-abcde"));
        assert_eq!(
            (
                t.le.lease_duration_seconds,
                t.le.renew_deadline_seconds,
                t.le.retry_period_seconds
            ),
            (15, 10, 2)
        );
        let off = T::try_parse_from(["t"]).unwrap();
        assert_eq!(off.le.lease_name, "tycho");
        assert_eq!(
            (
                off.le.lease_duration_seconds,
                off.le.renew_deadline_seconds,
                off.le.retry_period_seconds
            ),
            (15, 10, 2)
        );
    }

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
