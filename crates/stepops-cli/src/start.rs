//! `stepops start migrate`: starts an execution of the migration state machine in AWS (or on a
//! local engine), after checking the input with the validate-input Lambda's own logic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use stepops_pipeline::validate_input;

const LONG_ABOUT: &str = "\
Start an execution of the migration state machine (statemachine/migrate.asl.json) in AWS, or on
a local engine (--endpoint, e.g. `stepops local serve`).

The input file (JSON, docs/execution-input.md) is checked first with the very validate_input
the validate-input Lambda runs: its environment must equal --env, no target may belong to
another environment, limits must be sane. (Whether a target is on the stack's own allow-list is
checked by the Lambda when the execution starts.)

The state machine: --state-machine-arn, else STEPOPS_STATE_MACHINE_ARN, else the
StateMachineArn output of the CloudFormation stack --stack-name (default stepops-ENV; read with
the `aws` CLI), else on --endpoint the state machine whose name contains ENV and migrate.
AWS credentials and region come from the default chain (AWS_PROFILE, AWS_REGION, SSO, ...).

Examples:
  stepops start migrate --env dev --input run.json --wait
  stepops start migrate --env prod --input run.json --stack-name stepops-prod
  stepops start migrate --env dev --input run.json --endpoint http://127.0.0.1:8083 --wait";

/// Arguments of `stepops start`.
#[derive(clap::Args, Debug)]
pub struct StartArgs {
    #[command(subcommand)]
    what: StartWhat,
}

#[derive(clap::Subcommand, Debug)]
enum StartWhat {
    /// Start a migration execution (see --help).
    #[command(long_about = LONG_ABOUT)]
    Migrate(StartMigrateArgs),
}

/// Arguments of `stepops start migrate`.
#[derive(clap::Args, Debug)]
pub struct StartMigrateArgs {
    /// The environment the execution is for; must equal the input's `environment`.
    #[arg(long, value_parser = ["dev", "prod"])]
    env: String,
    /// The execution input (JSON file).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// A Step Functions endpoint instead of AWS (the local engine).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The state machine's ARN.
    #[arg(long, env = "STEPOPS_STATE_MACHINE_ARN", value_name = "ARN")]
    state_machine_arn: Option<String>,
    /// The stack whose StateMachineArn output names the state machine (default stepops-ENV).
    #[arg(long, value_name = "NAME", conflicts_with = "state_machine_arn")]
    stack_name: Option<String>,
    /// AWS region (else the default chain).
    #[arg(long)]
    region: Option<String>,
    /// Execution name (default: a UUID chosen by Step Functions).
    #[arg(long)]
    name: Option<String>,
    /// Wait for the execution to end and print its outcome (exit 1 unless SUCCEEDED).
    #[arg(long)]
    wait: bool,
}

/// Runs `stepops start …`.
pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    match args.what {
        StartWhat::Migrate(a) => migrate(a).await,
    }
}

async fn migrate(args: StartMigrateArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read the input file {}", args.input.display()))?;
    let input: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", args.input.display()))?;
    check_input(&input, &args.env)?;

    let sdk =
        stepops_runner::load_sdk_config(args.region.as_deref(), Duration::from_secs(70)).await;
    let client = stepops_runner::sfn_client(&sdk, args.endpoint.as_deref());
    let arn = state_machine_arn(&args, &client).await?;
    let mut start = client
        .start_execution()
        .state_machine_arn(&arn)
        .input(input.to_string());
    if let Some(name) = &args.name {
        start = start.name(name);
    }
    let started = start.send().await.map_err(|e| {
        anyhow::anyhow!(
            "StartExecution on {arn} failed: {}",
            aws_sdk_sfn::error::DisplayErrorContext(&e)
        )
    })?;
    let exec_arn = started.execution_arn().to_owned();
    println!("{exec_arn}");
    if !args.wait {
        return Ok(());
    }
    eprintln!("waiting for {exec_arn} …");
    loop {
        let d = client
            .describe_execution()
            .execution_arn(&exec_arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DescribeExecution failed: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            })?;
        let status = d.status().as_str().to_owned();
        if status != "RUNNING" && status != "PENDING_REDRIVE" {
            let out = serde_json::json!({
                "status": status,
                "output": d.output().and_then(|o| serde_json::from_str::<Value>(o).ok()),
                "error": d.error(),
                "cause": d.cause(),
            });
            println!("{out}");
            if status != "SUCCEEDED" {
                bail!("execution {exec_arn} ended {status}");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The validate-input Lambda's own check, for a stack of `env` that allows any target name
/// (the stack's allow-list itself is only known to the Lambda).
fn check_input(input: &Value, env: &str) -> anyhow::Result<()> {
    let stack = stepops_pipeline::stack_environment(env, "secret:*,parameter:*,url:*")?;
    match validate_input(input, &stack) {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "the input is refused ({}), nothing was started: {e}",
            stepops_error::Named::error_name(&e)
        ),
    }
}

async fn state_machine_arn(
    args: &StartMigrateArgs,
    client: &aws_sdk_sfn::Client,
) -> anyhow::Result<String> {
    if let Some(arn) = &args.state_machine_arn {
        return Ok(arn.clone());
    }
    if args.endpoint.is_some() && args.stack_name.is_none() {
        let list = client.list_state_machines().send().await.map_err(|e| {
            anyhow::anyhow!(
                "ListStateMachines failed: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&e)
            )
        })?;
        let found: Vec<&str> = list
            .state_machines()
            .iter()
            .filter(|m| m.name().contains(&args.env) && m.name().contains("migrate"))
            .map(|m| m.state_machine_arn())
            .collect();
        return match found.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => bail!(
                "no state machine named like stepops-{}-migrate on {}: give --state-machine-arn",
                args.env,
                args.endpoint.as_deref().unwrap_or_default()
            ),
            many => bail!(
                "several migrate state machines for {}: {}; give --state-machine-arn",
                args.env,
                many.join(", ")
            ),
        };
    }
    let stack = args
        .stack_name
        .clone()
        .unwrap_or_else(|| format!("stepops-{}", args.env));
    let mut cmd = tokio::process::Command::new("aws");
    cmd.args([
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack,
        "--query",
        "Stacks[0].Outputs[?OutputKey=='StateMachineArn'].OutputValue",
        "--output",
        "text",
    ]);
    if let Some(r) = &args.region {
        cmd.args(["--region", r]);
    }
    let out = cmd.output().await.with_context(|| {
        format!(
            "cannot run the aws CLI to read the stack {stack}'s StateMachineArn output: install it, or give --state-machine-arn (or STEPOPS_STATE_MACHINE_ARN)"
        )
    })?;
    let arn = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !arn.starts_with("arn:") {
        bail!(
            "cannot read the StateMachineArn output of the stack {stack}: {}; give --state-machine-arn",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !arn.contains(&args.env) {
        bail!(
            "the stack {stack}'s state machine {arn} does not carry the environment {}: refusing",
            args.env
        );
    }
    Ok(arn)
}
