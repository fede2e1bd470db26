//! `tycho completions` and `tycho man`: the command line describing itself.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use super::CliError;

/// `tycho completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tycho man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write `tycho.1` and one page per subcommand into this directory instead of printing `tycho.1`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `tycho completions SHELL`.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "tycho", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// `tycho man`.
pub fn man(args: ManArgs) -> Result<ExitCode, CliError> {
    let cmd = super::Cli::command();
    match args.out_dir {
        Some(dir) => {
            let io = || CliError::io(dir.display().to_string());
            std::fs::create_dir_all(&dir).map_err(io())?;
            clap_mangen::generate_to(cmd, &dir).map_err(io())?;
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(CliError::io("stdout"))?;
            std::io::stdout()
                .write_all(&buf)
                .map_err(CliError::io("stdout"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
