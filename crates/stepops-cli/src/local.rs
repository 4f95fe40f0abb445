//! `stepops local`: the local Step Functions engine (`exec` one definition, `serve` the API).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use stepops_local::exec::{ExecOptions, exec};
use stepops_local::{EngineConfig, LocalEngine, TemplateOptions};

/// Arguments of `stepops local`.
#[derive(Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Run the migration pipeline (migrate.asl.json, Lambdas and runner workers in-process) on
    /// your own databases: --source URL --dest URL [--jobs N] (see `stepops local migrate --help`).
    Migrate(crate::local_migrate::LocalMigrateArgs),
    /// Run one state machine definition to its end and print ONE JSON object:
    /// {"status":"SUCCEEDED","output":…} or {"status":"FAILED","error":…,"cause":…}.
    /// Exit code 0 on success, 1 otherwise.
    ///
    /// Example: stepops local exec statemachine/migrate.asl.json --template template.yaml
    /// --input @input.json --time-scale 0
    Exec {
        /// The definition file (*.asl.json).
        definition: PathBuf,
        /// The execution input: JSON text, or @FILE to read it from a file.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Multiplies every wait (Wait states, Retry intervals, timeouts): 0 = no waiting.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// A SAM template whose state machine uses this file as DefinitionUri: its
        /// DefinitionSubstitutions (${Placeholders}) are resolved to local ARNs.
        #[arg(long)]
        template: Option<PathBuf>,
        /// Template parameter override, KEY=VALUE (repeatable), e.g. --param Environment=dev.
        #[arg(long = "param", value_parser = key_value)]
        params: Vec<(String, String)>,
    },
    /// Serve the Step Functions API on 127.0.0.1 for runners and SDK clients
    /// (endpoint_url = the printed endpoint; any credentials; region us-east-1).
    ///
    /// State machines, activities and functions come from --template; executions persist in
    /// --state-dir and RUNNING ones resume when the server restarts. Stop with Ctrl-C or SIGTERM.
    Serve {
        /// TCP port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8083, env = "STEPOPS_LOCAL_PORT")]
        port: u16,
        /// The SAM template (state machines, activities, functions).
        #[arg(long)]
        template: Option<PathBuf>,
        /// Where executions, their history and snapshots are kept (SQLite).
        #[arg(long, default_value = ".stepops", env = "STEPOPS_LOCAL_STATE_DIR")]
        state_dir: PathBuf,
        /// Template parameter override, KEY=VALUE (repeatable), e.g. --param Environment=dev.
        #[arg(long = "param", value_parser = key_value)]
        params: Vec<(String, String)>,
        /// Multiplies every wait (Wait states, Retry intervals, timeouts): 0 = no waiting.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn template_options(params: Vec<(String, String)>) -> TemplateOptions {
    TemplateOptions {
        parameter_overrides: params.into_iter().collect::<BTreeMap<_, _>>(),
        ..TemplateOptions::default()
    }
}

fn read_input(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the input file {path}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--input is not valid JSON")
}

/// Runs `stepops local …`.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    match args.command {
        LocalCommand::Migrate(args) => crate::local_migrate::run(args).await,
        LocalCommand::Exec {
            definition,
            input,
            time_scale,
            template,
            params,
        } => {
            let outcome = exec(ExecOptions {
                definition,
                input: read_input(&input)?,
                time_scale,
                template,
                template_options: template_options(params),
                lambdas: Default::default(),
            })
            .await?;
            println!("{}", outcome.to_json());
            if outcome.status != "SUCCEEDED" {
                std::process::exit(1);
            }
            Ok(())
        }
        LocalCommand::Serve {
            port,
            template,
            state_dir,
            params,
            time_scale,
        } => {
            let engine = LocalEngine::start(EngineConfig {
                port: Some(port),
                template,
                template_options: template_options(params),
                time_scale,
                ..EngineConfig::new(&state_dir)
            })
            .await?;
            let endpoint = engine.endpoint().unwrap_or_default();
            println!("{endpoint}");
            eprintln!(
                "stepops local engine serving the Step Functions API on {endpoint} (state in {}); Ctrl-C or SIGTERM stops it",
                state_dir.display()
            );
            if let Some(t) = engine.template() {
                for m in &t.state_machines {
                    eprintln!("  state machine {}", m.arn);
                }
                for a in &t.activities {
                    eprintln!("  activity      {}", a.arn);
                }
            }
            stop_signal().await?;
            // RUNNING executions stay RUNNING in the state dir; the next `serve` resumes them.
            engine.shutdown().await;
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
