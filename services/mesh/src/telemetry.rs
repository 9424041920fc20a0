//! The tracing subscriber every binary installs: a RUST_LOG-style filter, text or JSON
//! lines on stderr, and the chatty transport crates kept at `warn` unless asked for.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Crates that log every frame at debug; quiet unless the filter names them.
const NOISY: [&str; 5] = ["h2", "hyper", "hyper_util", "tower", "rustls"];

pub fn init(args: &LogArgs) -> Result<(), tracing_subscriber::filter::ParseError> {
    let mut directives = args.log.clone();
    for target in NOISY.iter().filter(|t| !args.log.contains(*t)) {
        directives.push_str(&format!(",{target}=warn"));
    }
    let filter = EnvFilter::try_new(directives)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    Ok(())
}
