//! `stepops errors`: the error names stepops reports, whether a state machine retries them, and
//! the exit code the CLI ends with for each (docs/errors.md).

use stepops_error::{ErrorName, Named};

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

/// The name of the first named error in `err`'s chain: every command's failure exits with its
/// code (docs/errors.md; 1 when unnamed, such as an execution that ended FAILED).
pub fn name_of(err: &anyhow::Error) -> Option<ErrorName> {
    fn name<E: Named + 'static>(e: &(dyn std::error::Error + 'static)) -> Option<ErrorName> {
        e.downcast_ref::<E>().map(Named::error_name)
    }
    err.chain().find_map(|e| {
        name::<stepops_migrate::MigrateError>(e)
            .or_else(|| name::<stepops_sample::SampleError>(e))
            .or_else(|| name::<stepops_admin::AdminError>(e))
            .or_else(|| name::<stepops_pipeline::PipelineError>(e))
            .or_else(|| name::<stepops_sfn::SfnError>(e))
            .or_else(|| name::<stepops_local::LocalError>(e))
            .or_else(|| name::<stepops_embedded::EmbeddedError>(e))
            .or_else(|| name::<stepops_reposync::SyncError>(e))
            .or_else(|| name::<stepops_store::StoreError>(e))
            .or_else(|| name::<stepops_secrets::SecretError>(e))
            .or_else(|| crate::relationalize::error_name(e))
            .or_else(|| name::<stepops_jobs::JobError>(e))
    })
}
