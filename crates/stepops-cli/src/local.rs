//! `stepops local`: the local Step Functions engine (`exec` one definition, `serve` the API,
//! `bench` its throughput).

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
    /// Run an ops job of the catalog locally: `stepops local job run NAME --env dev
    /// --param K=V` (the job state machine on the local engine, an in-process runner).
    Job(crate::local_job::LocalJobArgs),
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
    ///
    /// With --pipeline it serves the migration pipeline for separately started runners: the
    /// project's template.yaml (built in, unless --template), the validate-input and notify
    /// Lambdas in-process (notifications are logged, not sent), and a Secrets Manager stand-in
    /// (--secret). Three terminals:
    ///
    ///   stepops local serve --pipeline
    ///
    ///   stepops-runner --endpoint http://127.0.0.1:8083   (with the STEPOPS_* variables it prints)
    ///
    ///   stepops start migrate --env dev --input run.json --endpoint http://127.0.0.1:8083 --wait
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
        /// Multiplies every wait (Wait states, Retry intervals, timeouts, HeartbeatSeconds):
        /// 0 = no waiting. Below 1, runners must heartbeat faster (STEPOPS_RUNNER_HEARTBEAT_SECONDS).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Serve the migration pipeline: the built-in template.yaml unless --template, the
        /// validate-input and notify Lambdas in-process (notify logs its message instead of
        /// publishing to SNS).
        #[arg(long)]
        pipeline: bool,
        /// With --pipeline: the targets validate-input allows (STEPOPS_ALLOWED_TARGETS syntax,
        /// KIND:NAME or KIND:PREFIX*, comma-separated). Default: SQLite files, PostgreSQL URLs
        /// without a password, and secrets named stepops/ENV/….
        #[arg(long, value_name = "LIST")]
        allowed_targets: Option<String>,
        /// A secret for the Secrets Manager stand-in, NAME=VALUE or NAME=@FILE (repeatable):
        /// runners started with AWS_ENDPOINT_URL_SECRETS_MANAGER=ENDPOINT read their
        /// {"secret": NAME} targets here. Values are never printed or logged.
        #[arg(long = "secret", value_parser = key_value, value_name = "NAME=VALUE")]
        secrets: Vec<(String, String)>,
        /// With --pipeline: also run the admin function (admin state machine, `stepops admin
        /// --endpoint`) against this Synapse, with the local token (STEPOPS_ADMIN_TOKEN_DEV /
        /// _PROD, else the file STEPOPS_ADMIN_TOKEN_FILE).
        #[arg(long, env = "STEPOPS_SYNAPSE_ENDPOINT", value_name = "URL")]
        synapse_endpoint: Option<String>,
        /// Hand a task to a held GetActivityTask whose client has gone (a runner killed while
        /// polling), as AWS may: that task is lost until its HeartbeatSeconds run out and its
        /// state's Retry runs it again. Default: such polls end and the task goes to a live
        /// poller. For crash tests.
        #[arg(long)]
        abandoned_polls_take_tasks: bool,
    },
    /// Run the relationalize state machine (template.yaml's: a Distributed Map over the
    /// archives, the relationalize and notify Lambdas in-process) over a folder standing in for
    /// the stack's RelationalizeBucket: archives under BUCKET/archives/, schemas under
    /// BUCKET/schemas/ (when that folder exists), tables written under BUCKET/relationalized/
    /// (docs/relationalize.md). Prints the execution's outcome; its output is the run's summary.
    ///
    /// Example: stepops local relationalize --bucket ./bucket --prefix archives/2024/
    Relationalize {
        /// The folder standing in for the bucket (its name is the bucket's).
        #[arg(long, value_name = "DIR")]
        bucket: PathBuf,
        /// The prefix of the archives to relationalize (a backfill: the whole prefix).
        #[arg(long, default_value = "archives/")]
        prefix: String,
        /// Where the engine keeps its executions (SQLite) and the template files.
        #[arg(
            long,
            default_value = ".stepops/relationalize",
            env = "STEPOPS_LOCAL_STATE_DIR"
        )]
        state_dir: PathBuf,
    },
    /// Measure the engine: state transitions per second on a long Pass chain and the time of a
    /// 10,000-item inline Map with MaxConcurrency 40, in memory and with the SQLite store, and
    /// say whether the goals (at least 20,000 transitions/s, the Map in under 5 s) are met.
    ///
    /// Run it in a release build: cargo run --release --bin stepops -- local bench
    Bench {
        /// Pass states in the chain.
        #[arg(long, default_value_t = 20_000)]
        chain: usize,
        /// Items of the Map.
        #[arg(long, default_value_t = 10_000)]
        items: usize,
        /// The Map's MaxConcurrency.
        #[arg(long, default_value_t = 40)]
        max_concurrency: u32,
        /// Runs of each measurement (the median is reported, with the range).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Keep the SQLite store's runs here (default: a temporary directory, removed after).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

impl LocalArgs {
    /// `stepops local bench` (which logs only warnings unless STEPOPS_LOG asks for more).
    pub fn is_bench(&self) -> bool {
        matches!(self.command, LocalCommand::Bench { .. })
    }

    /// `stepops local job` (its own output is the job's; logs only warnings unless asked).
    pub fn is_job(&self) -> bool {
        matches!(self.command, LocalCommand::Job(_))
    }
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
        LocalCommand::Relationalize {
            bucket,
            prefix,
            state_dir,
        } => {
            let run = stepops_embedded::relationalize::LocalRelationalize {
                bucket_dir: bucket,
                prefix,
                state_dir,
                time_scale: 1.0,
            };
            let (outcome, notifications) = run.run().await?;
            for (_, message) in notifications.lock().expect("notifications").iter() {
                eprintln!("{}\n{}\n", message.subject, message.text);
            }
            println!("{}", outcome.to_json());
            if outcome.status != "SUCCEEDED" {
                anyhow::bail!("the execution ended {}", outcome.status);
            }
            Ok(())
        }
        LocalCommand::Job(args) => crate::local_job::run(args).await,
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
                anyhow::bail!("the execution ended {}", outcome.status);
            }
            Ok(())
        }
        LocalCommand::Bench {
            chain,
            items,
            max_concurrency,
            runs,
            state_dir,
        } => {
            let report = stepops_local::bench::run(
                stepops_local::bench::BenchOptions {
                    chain,
                    items,
                    max_concurrency,
                    runs,
                    state_dir,
                },
                |step| eprintln!("running: {step}"),
            )
            .await?;
            print!("{}", report.render());
            Ok(())
        }
        LocalCommand::Serve {
            port,
            template,
            state_dir,
            params,
            time_scale,
            pipeline,
            allowed_targets,
            secrets,
            synapse_endpoint,
            abandoned_polls_take_tasks,
        } => {
            let secrets = read_secrets(secrets)?;
            let has_secrets = !secrets.is_empty();
            let mut params = params;
            let mut config = EngineConfig {
                port: Some(port),
                time_scale,
                secrets,
                abandoned_polls_take_tasks,
                ..EngineConfig::new(&state_dir)
            };
            let mut environment = None;
            let mut hooks = None;
            if pipeline {
                let template = match template {
                    Some(t) => t,
                    None => stepops_embedded::write_template(&state_dir.join("template"))
                        .context("cannot write the built-in template")?,
                };
                let env = match params.iter().find(|(k, _)| k == "Environment") {
                    Some((_, v)) => v.clone(),
                    None => {
                        params.push(("Environment".into(), stepops_embedded::ENVIRONMENT.into()));
                        stepops_embedded::ENVIRONMENT.into()
                    }
                };
                let allowed = allowed_targets.unwrap_or_else(|| {
                    format!(
                        "{},secret:stepops/{env}/*",
                        stepops_embedded::ALL_LOCAL_TARGETS
                    )
                });
                if let Some(synapse) = &synapse_endpoint
                    && !params.iter().any(|(k, _)| k == "SynapseEndpoint")
                {
                    params.push(("SynapseEndpoint".into(), synapse.clone()));
                }
                config.template = Some(template);
                config.template_options = template_options(params);
                let (with_lambdas, pipeline_hooks) =
                    stepops_embedded::with_pipeline_lambdas(config, &env, &allowed)?;
                config = with_lambdas;
                hooks = Some(pipeline_hooks);
                match &synapse_endpoint {
                    Some(synapse) => {
                        config = stepops_embedded::with_admin_lambda(config, &env, synapse)?;
                        eprintln!(
                            "pipeline: admin function in-process against {synapse} (token from STEPOPS_ADMIN_TOKEN_{} or STEPOPS_ADMIN_TOKEN_FILE)",
                            env.to_uppercase()
                        );
                    }
                    None => eprintln!(
                        "pipeline: no admin function (give --synapse-endpoint URL for `stepops admin --endpoint`)"
                    ),
                }
                eprintln!(
                    "pipeline: validate-input (environment {env}, allowed targets {allowed}) and notify (logged, not sent) in-process; failures, timeouts and aborts reach notify through the template's MigrationEnded rule"
                );
                environment = Some(env);
            } else {
                anyhow::ensure!(
                    allowed_targets.is_none(),
                    "--allowed-targets needs --pipeline"
                );
                if synapse_endpoint.is_some() {
                    eprintln!(
                        "note: no admin function without --pipeline (--synapse-endpoint / STEPOPS_SYNAPSE_ENDPOINT ignored)"
                    );
                }
                config.template = template;
                config.template_options = template_options(params);
            }
            let engine = LocalEngine::start(config).await?;
            if let Some(h) = &hooks {
                h.engine_started(&engine);
            }
            let endpoint = engine.endpoint().unwrap_or_default();
            // Machine-readable on stdout: the endpoint first, then one line per resource.
            println!("{endpoint}");
            eprintln!(
                "stepops local engine serving the Step Functions API on {endpoint} (state in {}); Ctrl-C or SIGTERM stops it",
                state_dir.display()
            );
            if let Some(t) = engine.template() {
                for m in &t.state_machines {
                    println!("state-machine {} {}", m.logical_id, m.arn);
                    eprintln!("  state machine {}", m.arn);
                }
                for a in &t.activities {
                    println!("activity {} {}", a.logical_id, a.arn);
                    eprintln!("  activity      {}", a.arn);
                }
                for r in &t.event_rules {
                    eprintln!("  {}", r.describe());
                }
                for u in &t.unemulated_rules {
                    eprintln!("  rule {} not run locally: {}", u.id, u.reason);
                }
            }
            if let Some(env) = environment {
                print_pipeline_hints(&engine, &endpoint, &env, time_scale, has_secrets);
            }
            stop_signal().await?;
            // RUNNING executions stay RUNNING in the state dir; the next `serve` resumes them.
            engine.shutdown().await;
            Ok(())
        }
    }
}

/// `--secret NAME=VALUE` / `NAME=@FILE` as the engine's Secrets Manager stand-in values.
fn read_secrets(pairs: Vec<(String, String)>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        let value = match value.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--secret {name}: cannot read {path}"))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => value,
        };
        anyhow::ensure!(!name.is_empty(), "--secret needs a name: NAME=VALUE");
        out.insert(name, value);
    }
    Ok(out)
}

/// How to start a runner and an execution against `serve --pipeline`.
fn print_pipeline_hints(
    engine: &LocalEngine,
    endpoint: &str,
    env: &str,
    time_scale: f64,
    secrets: bool,
) {
    let activity = engine.activity_arn(stepops_embedded::ACTIVITY);
    let s3 =
        std::path::absolute(engine.s3_root()).unwrap_or_else(|_| engine.s3_root().to_path_buf());
    // The runner's heartbeat must fit the scaled HeartbeatSeconds (60 s in migrate.asl.json).
    let heartbeat = ((60.0 * time_scale) / 3.0).floor().clamp(1.0, 20.0) as u64;
    // The runner's Secrets Manager client signs with the default credential chain: any
    // credentials do for the stand-in.
    let secrets_env = if secrets {
        format!(
            "  AWS_ENDPOINT_URL_SECRETS_MANAGER={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\\n"
        )
    } else {
        String::new()
    };
    eprintln!(
        "\nrun a runner in another terminal:\n  STEPOPS_RUNNER_ACTIVITIES='[{activity}]' STEPOPS_RUNNER_ENVIRONMENT={env} \\\n  STEPOPS_RUNNER_OBJECT_STORE_ROOT={} STEPOPS_RUNNER_HEARTBEAT_SECONDS={heartbeat} \\\n{secrets_env}  stepops-runner --endpoint {endpoint}",
        s3.display()
    );
    eprintln!(
        "start a migration in a third one:\n  stepops start migrate --env {env} --input run.json --endpoint {endpoint} --wait"
    );
    if time_scale > 0.0 && time_scale < 1.0 && 60.0 * time_scale < 3.0 {
        eprintln!(
            "warning: at --time-scale {time_scale} HeartbeatSeconds (60) is {:.1} s: runners heartbeating every 1 s may time out",
            60.0 * time_scale
        );
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
