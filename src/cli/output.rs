//! What commands print besides their results: timestamped progress lines, spinners, JSON or YAML.

use std::io::IsTerminal;
use std::time::Duration;

use super::CliError;
use super::args::OutputFormat;

/// A timestamped line on stderr, like the seed's `tf` (`MMDDhhmmss.mmm LEVEL    message`).
pub fn say(level: &str, msg: impl AsRef<str>) {
    let now = chrono::Local::now();
    eprintln!(
        "{} {level:<8} {}",
        now.format("%m%d%H%M%S%.3f"),
        msg.as_ref()
    );
}

/// A spinner on stderr while waiting, only when stderr is a terminal.
pub fn spinner(msg: String) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    Some(pb)
}

/// Print a value as YAML, or as pretty JSON for every other format.
pub fn print_value(v: &serde_json::Value, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Yaml => {
            let s = serde_saphyr::to_string(v).map_err(CliError::serialize("as YAML"))?;
            print!("{s}");
        }
        _ => {
            let s = serde_json::to_string_pretty(v).map_err(CliError::serialize("as JSON"))?;
            println!("{s}");
        }
    }
    Ok(())
}
