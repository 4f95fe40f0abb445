//! `stepops local exec`: run one definition to its end on a throwaway engine.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::engine::{EngineConfig, ExecutionOutcome, LocalEngine};
use crate::error::LocalError;
use crate::lambda::LambdaRegistry;
use crate::template::{TemplateOptions, load_template};

/// What to run.
#[derive(Clone)]
pub struct ExecOptions {
    /// The definition file (`*.asl.json`).
    pub definition: PathBuf,
    /// The execution input.
    pub input: Value,
    /// 1.0 real time; 0.0 no waiting.
    pub time_scale: f64,
    /// A template whose state machine has this file as `DefinitionUri`: its
    /// `DefinitionSubstitutions` are applied (and its activities and functions declared).
    pub template: Option<PathBuf>,
    /// Parameter overrides etc. for `template`.
    pub template_options: TemplateOptions,
    /// Lambda handlers available to the definition.
    pub lambdas: LambdaRegistry,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Runs the definition once (state in a temporary directory, removed afterwards) and
/// returns how it ended.
pub async fn exec(options: ExecOptions) -> Result<ExecutionOutcome, LocalError> {
    let path = &options.definition;
    let mut definition = std::fs::read_to_string(path).map_err(|source| LocalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("exec")
        .trim_end_matches(".json")
        .trim_end_matches(".asl")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>();
    if let Some(t) = &options.template {
        let loaded = load_template(t, &options.template_options)?;
        match loaded.state_machines.iter().find(|m| {
            m.definition_path
                .as_deref()
                .is_some_and(|p| same_file(p, path))
        }) {
            Some(m) => {
                definition = m.definition.clone();
                name = m.name.clone();
            }
            None => {
                return Err(LocalError::Template {
                    path: t.display().to_string(),
                    message: format!(
                        "no state machine has DefinitionUri {}; run it without --template or fix the path",
                        path.display()
                    ),
                });
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("stepops-exec-{}", uuid::Uuid::new_v4()));
    let outcome = async {
        let engine = LocalEngine::start(EngineConfig {
            port: None,
            template: options.template.clone(),
            template_options: options.template_options.clone(),
            time_scale: options.time_scale,
            lambdas: options.lambdas.clone(),
            resume: false,
            ..EngineConfig::new(&dir)
        })
        .await?;
        let arn = if options.template.is_some() {
            engine.state_machine_arn(&name)?
        } else {
            engine.create_state_machine(&name, &definition)?
        };
        let execution = engine.start_execution(&arn, &options.input, None)?;
        let outcome = engine.wait(&execution).await?;
        engine.shutdown().await;
        Ok(outcome)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}
