//! Lambda `job-validate`: an ops job request (`{"job", "environment", "params"}`) →
//! `{"request", "job", "leaseUntil"}` (the validated job, its catalog version), or the named
//! refusal (`Stepops.NotFound`, `Stepops.WrongEnvironment`, `Stepops.InvalidInput`).
//!
//! The catalog is the one compiled in (`jobs/*.yaml` of the commit the function was built
//! from). Configuration: `STEPOPS_ENVIRONMENT` (`dev` or `prod`), set by template.yaml.

use lambda_runtime::{Error, tracing};
use stepops_error::Environment;
use stepops_jobs::{Catalog, JobError};

fn setup() -> Result<(Catalog, Environment), JobError> {
    let env = std::env::var("STEPOPS_ENVIRONMENT").unwrap_or_default();
    let stack = Environment::parse(&env).ok_or_else(|| JobError::Catalog {
        dir: "(STEPOPS_ENVIRONMENT)".into(),
        reason: format!("`{env}` is not dev or prod: fix the function's configuration"),
    })?;
    Ok((stepops_jobs::embedded()?, stack))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    stepops_lambda::serve("job-validate", setup(), |event, state| async move {
        let (catalog, stack) = &*state;
        stepops_jobs::validate_event(catalog, &event.payload, *stack).inspect_err(|e| {
            tracing::info!(error = %e, "job request refused");
        })
    })
    .await
}
