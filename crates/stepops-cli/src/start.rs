//! `stepops start migrate`: starts an execution of the migration state machine in AWS (or on a
//! local engine), after checking the input with the validate-input Lambda's own logic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use stepops_pipeline::validate_input;
use stepops_sfn::WaitOptions;

/// How often `--wait` says that the execution still runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

const LONG_ABOUT: &str = "\
Start an execution of the migration state machine (statemachine/migrate.asl.json) in AWS, or on
a local engine (--endpoint, e.g. `stepops local serve`).

The input file (JSON, docs/execution-input.md) is checked first with the very validate_input
the validate-input Lambda runs: its environment must equal --env, no target may belong to
another environment, limits must be sane. (Whether a target is on the stack's own allow-list is
checked by the Lambda when the execution starts.)

The state machine: --state-machine-arn, else STEPOPS_STATE_MACHINE_ARN, else the
StateMachineArn output of the CloudFormation stack --stack-name (default stepops-ENV; a stack
that does not exist is reported with the stacks that have such an output), else on --endpoint
the state machine whose name contains ENV and migrate.
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
    #[arg(long, value_name = "NAME", conflicts_with_all = ["state_machine_arn", "endpoint"])]
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

    let (sfn, aws) = stepops_sfn::connect(args.endpoint.as_deref(), args.region.as_deref()).await;
    let arn = state_machine_arn(&args, &sfn, aws.as_ref()).await?;
    let exec_arn = stepops_sfn::start_execution(&sfn, &arn, args.name.as_deref(), &input).await?;
    println!("{exec_arn}");
    if !args.wait {
        return Ok(());
    }
    eprintln!("waiting for {exec_arn} …");
    let mut reported = Duration::ZERO;
    let finished = stepops_sfn::wait_for_execution(&sfn, &exec_arn, &WaitOptions::default(), |p| {
        if p.elapsed >= reported + PROGRESS_EVERY {
            reported = p.elapsed;
            eprintln!("still running after {} s", p.elapsed.as_secs());
        }
    })
    .await?;
    let out = serde_json::json!({
        "status": finished.status.as_str(),
        "output": finished.output,
        "error": finished.error,
        "cause": finished.cause,
    });
    println!("{out}");
    if !finished.succeeded() {
        bail!("execution {exec_arn} ended {}", finished.status.as_str());
    }
    Ok(())
}

/// The validate-input Lambda's own check, for a stack of `env` that allows any target name
/// (the stack's allow-list itself is only known to the Lambda).
fn check_input(input: &Value, env: &str) -> anyhow::Result<()> {
    let stack = stepops_pipeline::stack_environment(env, "secret:*,parameter:*,url:*")?;
    validate_input(input, &stack).context("the input is refused, nothing was started")?;
    Ok(())
}

/// The state machine: `--state-machine-arn`; on `--endpoint` without `--stack-name`, the one
/// named like `stepops-ENV-…migrate`; else the `StateMachineArn` output of the stack.
async fn state_machine_arn(
    args: &StartMigrateArgs,
    sfn: &aws_sdk_sfn::Client,
    aws: Option<&aws_config::SdkConfig>,
) -> anyhow::Result<String> {
    if let Some(arn) = &args.state_machine_arn {
        return Ok(arn.clone());
    }
    let stack = args
        .stack_name
        .clone()
        .unwrap_or_else(|| format!("stepops-{}", args.env));
    let Some(aws) = aws else {
        let found = stepops_sfn::find_state_machines(sfn, |name| {
            name.contains(&args.env) && name.contains("migrate")
        })
        .await?;
        return match found.as_slice() {
            [(_, one)] => Ok(one.clone()),
            [] => bail!(
                "no state machine named like stepops-{}-migrate on {}: give --state-machine-arn",
                args.env,
                args.endpoint.as_deref().unwrap_or_default()
            ),
            many => bail!(
                "several migrate state machines for {}: {}; give --state-machine-arn",
                args.env,
                many.iter()
                    .map(|(_, arn)| arn.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    };
    let cfn = stepops_sfn::cloudformation_client(aws, None);
    Ok(stepops_sfn::state_machine_of_stack(&cfn, &stack, "StateMachineArn", &args.env).await?)
}
