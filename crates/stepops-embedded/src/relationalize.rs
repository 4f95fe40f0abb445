//! The relationalize state machine on the local engine (`stepops local relationalize`, the
//! end-to-end tests): a folder stands in for the stack's bucket (`archives/`, `schemas/`,
//! `relationalized/` inside it, as template.yaml lays them out in S3), the engine's S3
//! stand-in is its parent, and `RelationalizeFunction` is the Lambda's own library call.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stepops_local::{EngineConfig, ExecutionOutcome, LambdaError, LambdaHandler, LocalEngine};
use stepops_relationalize::service::handle_event;
use stepops_relationalize::{Location, Relationalizer, Schemas};
use stepops_store::{AnyStore, LocalFolderStore};

use crate::{EmbeddedError, Notifications, with_pipeline_lambdas, write_template};

/// The template's logical id of the relationalize state machine.
pub const RELATIONALIZE_MACHINE: &str = "RelationalizeStateMachine";

/// `RelationalizeFunction`: [`handle_event`] over `relz`, reading archives through `input`.
pub fn relationalize_handler(relz: Relationalizer, input: AnyStore) -> LambdaHandler {
    stepops_local::handler(move |event: Value| {
        let (relz, input) = (relz.clone(), input.clone());
        async move {
            Box::pin(handle_event(&relz, &input, &event))
                .await
                .map_err(|e| LambdaError::from_named(&e))
        }
    })
}

/// A local relationalize run.
#[derive(Debug, Clone)]
pub struct LocalRelationalize {
    /// The folder standing in for the stack's `RelationalizeBucket` (its name is the bucket's).
    pub bucket_dir: PathBuf,
    /// The prefix of the archives to run over (default `archives/`).
    pub prefix: String,
    /// Where the engine keeps its executions and the template files.
    pub state_dir: PathBuf,
    /// The engine's time scale (0: Retry intervals are not waited).
    pub time_scale: f64,
}

/// The relationalizer the local `RelationalizeFunction` uses for `bucket_dir`: tables under
/// `relationalized/`, schemas from `schemas/` when that folder exists.
pub fn local_relationalizer(
    bucket_dir: &Path,
) -> Result<(Relationalizer, AnyStore), EmbeddedError> {
    let invalid = |e: stepops_relationalize::RelzError| EmbeddedError::Invalid(e.to_string());
    let bucket = Location::parse(&bucket_dir.to_string_lossy(), false).map_err(invalid)?;
    let store = AnyStore::Local(LocalFolderStore::new(
        bucket.local_root.clone().expect("a folder"),
    ));
    let schemas = if bucket_dir.join("schemas").is_dir() {
        Schemas::at(store.clone(), bucket.join("schemas"))
    } else {
        Schemas::none()
    };
    let relz = Relationalizer::new(bucket.join("relationalized"), store.clone(), schemas);
    Ok((relz, store))
}

impl LocalRelationalize {
    /// Runs the machine once over `prefix` and waits for it: the execution's outcome (its
    /// output is the run's summary) and the notifications sent.
    pub async fn run(&self) -> Result<(ExecutionOutcome, Notifications), EmbeddedError> {
        let (relz, store) = local_relationalizer(&self.bucket_dir)?;
        self.run_with(relationalize_handler(relz, store)).await
    }

    /// As [`LocalRelationalize::run`] with another `RelationalizeFunction` (tests wrap the
    /// real one to fail or die on purpose).
    pub async fn run_with(
        &self,
        function: LambdaHandler,
    ) -> Result<(ExecutionOutcome, Notifications), EmbeddedError> {
        let bucket_dir = self
            .bucket_dir
            .canonicalize()
            .map_err(|e| EmbeddedError::Invalid(format!("{}: {e}", self.bucket_dir.display())))?;
        let (Some(root), Some(bucket)) = (bucket_dir.parent(), bucket_dir.file_name()) else {
            return Err(EmbeddedError::Invalid(
                "the bucket folder must be a folder inside another".into(),
            ));
        };
        let bucket = bucket.to_string_lossy().into_owned();
        let template = write_template(&self.state_dir)?;
        let mut config = EngineConfig::new(&self.state_dir);
        config.template = Some(template);
        config.time_scale = self.time_scale;
        config.s3_root = Some(root.to_owned());
        config.resume = false;
        let overrides = &mut config.template_options.parameter_overrides;
        overrides.insert("Environment".into(), crate::ENVIRONMENT.into());
        overrides.insert("RelationalizeBucket".into(), bucket);
        if !bucket_dir.join("schemas").is_dir() {
            overrides.insert("RelationalizeSchemaPrefix".into(), String::new());
        }
        let (config, hooks) =
            with_pipeline_lambdas(config, crate::ENVIRONMENT, crate::SQLITE_TARGETS)?;
        let config = config.with_lambda("RelationalizeFunction", function);
        let engine = LocalEngine::start(config).await?;
        hooks.engine_started(&engine);
        let arn =
            engine.start_execution(RELATIONALIZE_MACHINE, &json!({"prefix": self.prefix}), None)?;
        let outcome = engine.wait(&arn).await?;
        engine.deliveries_settled().await;
        engine.shutdown().await;
        Ok((outcome, hooks.notifications))
    }
}
