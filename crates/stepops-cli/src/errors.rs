//! `stepops errors`: the error names stepops reports, whether a state machine retries them, and
//! the exit code the CLI ends with for each (docs/errors.md).

use stepops_error::ErrorName;

/// Prints one line per name: `NAME  retry|catch  exit CODE`.
pub fn run() -> anyhow::Result<()> {
    println!("{:<26} {:<6} exit", "name", "state");
    for name in ErrorName::ALL {
        let retry = if name.is_retryable() {
            "retry"
        } else {
            "catch"
        };
        println!("{:<26} {retry:<6} {}", name.as_str(), name.exit_code());
    }
    Ok(())
}
