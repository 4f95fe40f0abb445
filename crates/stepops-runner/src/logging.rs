//! Logging: JSON lines when stderr is not a terminal (systemd, CloudWatch), human-readable on a
//! terminal; level from `STEPOPS_LOG` (or `RUST_LOG`), `info` by default. Logs go to stderr so
//! stdout stays machine-readable. The `stepops` command line uses the same setup.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (does nothing if one is already installed, as when the runner
/// is embedded in another program).
pub fn init() {
    init_with_default("info");
}

/// [`init`] with another level (or filter directive) when neither `STEPOPS_LOG` nor `RUST_LOG`
/// is set: `stepops demo` shows its own progress and logs only warnings unless asked.
pub fn init_with_default(default: &str) {
    let filter = std::env::var("STEPOPS_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::io::stderr().is_terminal() {
        builder.with_target(false).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
}
