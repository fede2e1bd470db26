//! `tycho dev` and `tycho sim`: an emulated cluster on this machine.
//!
//! `tycho dev` is the embedded default: the Kubernetes API emulator with simulated nodes, the System
//! CRD installed and the controller running in the same process. `tycho sim` starts only the emulator,
//! for tests, benchmarks and other tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use tycho_emulator::{Emulator, EmulatorConfig, StaticToken};

use super::CliError;
use super::args::ClusterArgs;
use super::systems::ApplyArgs;
use tycho_model::{System, SystemTemplate};
use tycho_operator::controller::{ControllerConfig, run as run_controller};

/// Options shared by `tycho dev` and `tycho sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Port of the emulated API server on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where to write the kubeconfig for the emulated cluster.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// CPU capacity of each simulated node.
    #[arg(long, default_value = "8")]
    pub node_cpu: String,
    /// Memory capacity of each simulated node.
    #[arg(long, default_value = "32Gi")]
    pub node_memory: String,
    /// GPUs (`nvidia.com/gpu`) of each simulated GPU node (0: no GPUs).
    #[arg(long, default_value_t = 0)]
    pub gpus_per_node: u32,
    /// How many of the simulated nodes have GPUs (default: all of them, when --gpus-per-node > 0).
    #[arg(long, value_name = "N")]
    pub gpu_nodes: Option<usize>,
    /// Milliseconds before a scheduled pod turns Running and Ready.
    #[arg(long, default_value_t = 500)]
    pub pod_ready_delay_ms: u64,
    /// Change events kept for watch resume (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 10_000)]
    pub watch_history: usize,
    /// Bearer tokens the emulator's TokenReview accepts, in kube-apiserver's `--token-auth-file`
    /// format (`token,user,uid,"group1,group2"` per line).
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,
}

impl EmulatorArgs {
    fn config(&self) -> Result<EmulatorConfig, CliError> {
        let tokens = match &self.token_auth_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(CliError::input(format!(
                    "--token-auth-file {}",
                    path.display()
                )))?;
                StaticToken::parse_file(&text).map_err(CliError::input(format!(
                    "--token-auth-file {}",
                    path.display()
                )))?
            }
            None => Vec::new(),
        };
        Ok(EmulatorConfig {
            port: self.port,
            nodes: self.nodes,
            node_cpu: self.node_cpu.clone(),
            node_memory: self.node_memory.clone(),
            gpus_per_node: self.gpus_per_node,
            gpu_nodes: self.gpu_nodes,
            pod_ready_delay: Duration::from_millis(self.pod_ready_delay_ms),
            kubeconfig_path: self.kubeconfig.clone(),
            watch_history: self.watch_history,
            simulate: true,
            tokens,
        })
    }
}

/// Arguments of `tycho dev`.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub emulator: EmulatorArgs,
    /// Systems to apply once the controller runs.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where the controller serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// Also serve the HTTP API and launcher page (as `tycho api`) on this address (default
    /// 127.0.0.1:8443 when the flag has no value).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8443")]
    pub api: Option<SocketAddr>,
    /// Bearer token of the emulated cluster's user `developer` for the API (default: a random one,
    /// printed). More users: --token-auth-file.
    #[arg(long, value_name = "TOKEN", requires = "api")]
    pub api_token: Option<String>,
}

/// Arguments of `tycho sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub emulator: EmulatorArgs,
}

async fn start(args: &EmulatorArgs) -> Result<Emulator, CliError> {
    Emulator::start(args.config()?)
        .await
        .map_err(|e| CliError::Emulator {
            context: "cannot start the emulator".into(),
            source: e.into(),
        })
}

fn config_for(emu: &Emulator) -> Result<kube::Config, CliError> {
    let url = emu
        .url()
        .parse()
        .map_err(|e: http::uri::InvalidUri| CliError::Emulator {
            context: format!("emulator URL {}", emu.url()),
            source: e.into(),
        })?;
    Ok(kube::Config::new(url))
}

fn client_for(emu: &Emulator) -> Result<Client, CliError> {
    Client::try_from(config_for(emu)?).map_err(CliError::kube("cannot build a client"))
}

/// A random bearer token (32 lowercase hex digits).
fn random_token() -> String {
    (0..32)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

/// Start the HTTP API beside the emulator, with a token for the user `developer`.
async fn start_api(
    emu: &Emulator,
    addr: SocketAddr,
    token: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<(), tycho_api::ApiError>>, CliError> {
    let token = token.unwrap_or_else(random_token);
    let mut user = StaticToken::new(token.clone(), "developer");
    user.uid = "developer".into();
    user.groups = vec!["tycho:developers".into()];
    emu.add_token(user);
    let cfg = tycho_api::ServeConfig {
        listen: addr,
        ..tycho_api::ServeConfig::default()
    };
    let server = tycho_api::ApiServer::bind(&cfg, config_for(emu)?).await?;
    let url = server.url()?;
    println!("HTTP API on {url}: launcher page {url}/, docs {url}/docs");
    println!("  export TYCHO_TOKEN={token}");
    println!(
        "  curl -H \"Authorization: Bearer $TYCHO_TOKEN\" {url}/v1/namespaces/default/systems"
    );
    let mut stop = stop;
    Ok(tokio::spawn(server.run(async move {
        let _ = stop.wait_for(|s| *s).await;
    })))
}

/// Install (server-side apply) the System and SystemTemplate CRDs.
pub async fn install_crd(client: &Client) -> Result<(), CliError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [System::crd(), SystemTemplate::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("tycho").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(CliError::kube(format!("cannot install the CRD {name}")))?;
    }
    Ok(())
}

fn say_kubeconfig(emu: &Emulator) {
    let path = emu.kubeconfig_path().display();
    println!("Kubernetes API emulator listening on {}", emu.url());
    println!("kubeconfig: {path}");
    println!("  export KUBECONFIG={path}");
    println!("  kubectl get nodes,systems,pods,services");
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler could be installed: run until killed.
        std::future::pending::<()>().await;
    }
}

/// Run `tycho dev`.
pub async fn run_dev(args: DevArgs) -> Result<ExitCode, CliError> {
    let emu = start(&args.emulator).await?;
    let client = client_for(&emu)?;
    install_crd(&client).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = ControllerConfig {
        metrics_addr: Some(args.metrics_addr),
        ..ControllerConfig::default()
    };
    let controller = tokio::spawn(run_controller(client, config, async move {
        let _ = stop_rx.await;
    }));
    say_kubeconfig(&emu);
    println!(
        "controller running; metrics on http://{}/metrics",
        args.metrics_addr
    );
    let (api_stop, api_stop_rx) = tokio::sync::watch::channel(false);
    let api = match args.api {
        Some(addr) => Some(start_api(&emu, addr, args.api_token.clone(), api_stop_rx).await?),
        None => None,
    };
    for file in &args.files {
        let apply = ApplyArgs {
            file: file.clone(),
            session: None,
            force_conflicts: true,
            cluster: ClusterArgs {
                kubeconfig: Some(emu.kubeconfig_path().to_path_buf()),
                ..ClusterArgs::default()
            },
        };
        super::systems::apply(apply).await?;
    }
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = ctrl_c() => {}
        res = controller => {
            emu.shutdown().await;
            return match res {
                Ok(Ok(())) => Ok(ExitCode::SUCCESS),
                Ok(Err(e)) => Err(CliError::ControllerStopped(e)),
                Err(e) => Err(CliError::ControllerTask(e)),
            };
        }
    }
    let _ = stop_tx.send(());
    let _ = api_stop.send(true);
    if let Some(api) = api {
        let _ = api.await;
    }
    emu.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Run `tycho sim`.
pub async fn run_sim(args: SimArgs) -> Result<ExitCode, CliError> {
    let emu = start(&args.emulator).await?;
    say_kubeconfig(&emu);
    println!("Press Ctrl-C to stop.");
    ctrl_c().await;
    emu.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
