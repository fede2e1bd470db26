//! The `tycho` command line: a thin clap front-end over the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod api;
pub mod args;
pub mod containers;
pub mod controller;
pub mod crd;
#[cfg(feature = "dev")]
pub mod dev;
pub mod docs;
pub mod error;
pub mod import;
pub mod output;
pub mod render;
pub mod run;
pub mod systems;

pub use error::CliError;

/// Launch whole stacks on Kubernetes from a `System` resource, and collect them when their session ends.
#[derive(Parser, Debug)]
#[command(name = "tycho", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        global = true,
        env = "TYCHO_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster config).
    Controller(controller::ControllerArgs),
    /// Print the CustomResourceDefinitions (System, SystemTemplate) as YAML.
    Crd(crd::CrdArgs),
    /// Serve the Tycho HTTP API and launcher page: Systems and sessions over REST, as each caller's identity.
    Api(api::ApiArgs),
    /// Render Systems from a file into the Kubernetes objects Tycho would create, offline.
    Render(render::RenderArgs),
    /// Turn a Compose file's services into one System (or a SystemTemplate), saying what could not be mapped.
    Import(import::ImportArgs),
    #[cfg(feature = "dev")]
    /// Start an emulated cluster with the CRD installed and the controller running, for trying Tycho without a cluster.
    Dev(dev::DevArgs),
    #[cfg(feature = "dev")]
    /// Start only the Kubernetes API emulator with a simulated cluster.
    Sim(dev::SimArgs),
    /// Print the version.
    Version,
    /// Run a container in a new session: tunnel its ports, optionally open a browser; Ctrl-C cleans up.
    Run(run::RunArgs),
    /// Server-side apply Systems from a file.
    Apply(systems::ApplyArgs),
    /// List Systems, or show one.
    Get(systems::GetArgs),
    /// Show a System's status, optionally waiting until it is Ready.
    Status(systems::StatusArgs),
    /// Delete Systems (their children go with them).
    Delete(systems::DeleteArgs),
    /// Restart Systems' pods, as `kubectl rollout restart` does (a bare Pod is replaced).
    Restart(systems::RestartArgs),
    /// Print a System's container log.
    Logs(containers::LogsArgs),
    /// Run a command in a System's container.
    Exec(containers::ExecArgs),
    /// Copy one file into or out of a System's container.
    Cp(containers::CpArgs),
    /// Forward a local port to a System's container port until Ctrl-C.
    Tunnel(containers::TunnelArgs),
    /// Print shell completions.
    Completions(docs::CompletionsArgs),
    /// Print the man page (or write all pages to a directory).
    Man(docs::ManArgs),
}

/// Parse the command line, run the command and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "error: cannot start the async runtime: {}",
                error::report(&e)
            );
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Controller(args) => controller::run(args).await,
        Command::Crd(args) => crd::run(args),
        Command::Api(args) => api::run(args).await,
        Command::Render(args) => render::run(args),
        Command::Import(args) => import::run(args),
        #[cfg(feature = "dev")]
        Command::Dev(args) => dev::run_dev(args).await,
        #[cfg(feature = "dev")]
        Command::Sim(args) => dev::run_sim(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Apply(args) => systems::apply(args).await,
        Command::Get(args) => systems::get(args).await,
        Command::Status(args) => systems::status(args).await,
        Command::Delete(args) => systems::delete(args).await,
        Command::Restart(args) => systems::restart(args).await,
        Command::Logs(args) => containers::logs(args).await,
        Command::Exec(args) => containers::exec(args).await,
        Command::Cp(args) => containers::cp(args).await,
        Command::Tunnel(args) => containers::tunnel(args).await,
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        Command::Version => {
            println!("tycho {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_tracing(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,tycho=info",
        1 => "info",
        2 => "debug,hyper=info,tower=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("TYCHO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
