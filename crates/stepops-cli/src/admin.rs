//! `stepops admin`: validate an admin task's arguments exactly as the admin state machine does,
//! ask for the target again in `prod` (sent as the input's `confirm`, which the service
//! requires in prod), start the execution (AWS, a local engine at `--endpoint`,
//! or an in-process engine with `--local`), wait for it and print the audit record.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use stepops_admin::{
    AdminError, AdminRequest, AdminSettings, Environment, LocalTokenSource, SynapseClient,
};
use stepops_local::{EngineConfig, LambdaError, LocalEngine, TemplateOptions, handler};
use stepops_sfn::WaitOptions;

/// Arguments of `stepops admin`.
#[derive(Args)]
#[command(after_help = "Examples:
  stepops admin remove-user 3350396 --env prod --dry-run
  stepops admin verify-oauth-client 100001 --status false --env dev
  stepops admin set-feature MULTIPART_AUTO_CLEANUP --enabled true --env prod --yes
  STEPOPS_ADMIN_TOKEN_DEV=... stepops admin reenable-user 42 --env dev --local \\
      --synapse-endpoint https://repo-dev.example.org

Arguments are validated exactly as the state machine validates its input: a refused argument
exits 2 before any request of any kind. In prod the target must be typed again (or --yes).
The audit record is printed on stdout; exit 0 only if the task succeeded. See docs/admin.md.")]
pub struct AdminArgs {
    /// The task: remove-user, verify-oauth-client, make-public, decertify-user, reenable-user,
    /// unquarantine-email, set-feature.
    task: String,
    /// The task's target: USER_ID, CLIENT_ID, SYN_ID, EMAIL or FEATURE.
    target: Vec<String>,
    /// verify-oauth-client: the verified status to set (true or false; default true).
    #[arg(long, value_name = "true|false")]
    status: Option<String>,
    /// set-feature: enable or disable the feature (true or false; required).
    #[arg(long, value_name = "true|false")]
    enabled: Option<String>,
    /// The environment (the stack) the task is for.
    #[arg(long = "env", value_name = "dev|prod")]
    environment: String,
    /// Perform only the reads and report what would change.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for the target to be typed again in prod (for scripts).
    #[arg(long)]
    yes: bool,
    /// Step Functions endpoint: a local engine that has the admin function registered (e.g.
    /// http://127.0.0.1:8083). Default: AWS, through the default credential chain.
    #[arg(long, value_name = "URL", conflicts_with = "local")]
    endpoint: Option<String>,
    /// The admin state machine. Default: the one named `stepops-ENV-admin` (ListStateMachines).
    #[arg(long, value_name = "ARN")]
    state_machine_arn: Option<String>,
    /// AWS region (default: the AWS configuration's; us-east-1 with --endpoint).
    #[arg(long)]
    region: Option<String>,
    /// Who asks, recorded as `startedBy` in the audit record. Default: the caller's IAM ARN
    /// (sts:GetCallerIdentity) in AWS, the local user name with --endpoint or --local.
    #[arg(long, value_name = "WHO")]
    started_by: Option<String>,
    /// Give up waiting after this many seconds (the execution keeps running).
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    wait_seconds: u64,
    /// Run on a local engine started in-process from --template, with the admin function
    /// in-process; the token comes from STEPOPS_ADMIN_TOKEN_DEV / _PROD or the file named by
    /// STEPOPS_ADMIN_TOKEN_FILE. Notifications are logged, not sent.
    #[arg(long)]
    local: bool,
    /// With --local: the Synapse base URL the admin function calls.
    #[arg(
        long,
        value_name = "URL",
        env = "STEPOPS_SYNAPSE_ENDPOINT",
        requires = "local"
    )]
    synapse_endpoint: Option<String>,
    /// With --local: the SAM template holding the admin state machine.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
}

/// Runs `stepops admin`.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let request = validate(&args).context("refused, nothing was sent")?;
    // prod: the service refuses an input without `confirm` naming the target; it is filled
    // with what the operator typed again (with --yes, the script vouches for the target).
    let request = if request.environment != Environment::Prod {
        request
    } else if args.yes {
        let target = request.task.target_id();
        request.with_confirmation(&target)?
    } else {
        let typed = confirm(&request)?;
        request
            .with_confirmation(&typed)
            .map_err(|_| anyhow!("the typed target does not match; nothing was started"))?
    };

    // --local: an engine in this process; it stays alive until the execution ends.
    let mut _engine = None;
    let endpoint = if args.local {
        let (engine, state_dir) = start_local_engine(&args, request.environment).await?;
        let endpoint = engine
            .endpoint()
            .ok_or_else(|| anyhow!("the local engine did not start its API"))?;
        _engine = Some((engine, state_dir));
        Some(endpoint)
    } else {
        args.endpoint.clone()
    };
    let (sfn, aws) = stepops_sfn::connect(endpoint.as_deref(), args.region.as_deref()).await;
    let request = if args.started_by.is_some() {
        request
    } else {
        let who = match &aws {
            Some(config) => caller_identity(config).await,
            None => None,
        }
        .or_else(|| {
            std::env::var("USER")
                .ok()
                .map(|u| format!("{u} (stepops admin)"))
        });
        // A default that does not pass the check is left out rather than refused.
        match who {
            Some(who) => request.clone().with_started_by(&who).unwrap_or(request),
            None => request,
        }
    };
    let machine = match &args.state_machine_arn {
        Some(arn) => arn.clone(),
        None => find_state_machine(&sfn, request.environment).await?,
    };
    let name = request.execution_name(chrono::Utc::now());
    let input = request.to_input();
    tracing::info!(state_machine = %machine, execution = %name, "starting the admin task");
    let arn = stepops_sfn::start_execution(&sfn, &machine, Some(&name), &input).await?;
    eprintln!("started {arn}");
    wait_and_print(&sfn, &arn, Duration::from_secs(args.wait_seconds)).await
}

/// The library's validation, exactly as the state machine applies it.
fn validate(args: &AdminArgs) -> Result<AdminRequest, AdminError> {
    let stack = stepops_admin::parse_environment(&args.environment)?;
    let mut raw: Vec<String> = args.target.clone();
    if let Some(s) = &args.status {
        raw.extend(["--status".to_owned(), s.clone()]);
    }
    if let Some(e) = &args.enabled {
        raw.extend(["--enabled".to_owned(), e.clone()]);
    }
    let request = AdminRequest::from_cli(&args.environment, stack, &args.task, &raw, args.dry_run)?;
    match &args.started_by {
        Some(who) => request.with_started_by(who),
        None => Ok(request),
    }
}

/// Asks for the target to be typed again and returns what was typed; refuses without a
/// terminal.
fn confirm(request: &AdminRequest) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(AdminError::NotConfirmed(format!(
            "{} in prod needs the target typed again, but stdin is not a terminal; pass --yes to run it from a script. Nothing was sent.",
            request.task.name()
        ))
        .into());
    }
    let dry = if request.dry_run {
        " (dry run: reads only)"
    } else {
        ""
    };
    eprint!(
        "PROD: {} on {}{dry}.\nType the target ({}) again to confirm: ",
        request.task.name(),
        request.task.target(),
        request.task.target_id()
    );
    std::io::stderr().flush().ok();
    let mut typed = String::new();
    stdin.lock().read_line(&mut typed)?;
    Ok(typed)
}

/// The caller's IAM identity, recorded as `startedBy`; `None` (with a warning) if STS cannot be
/// asked.
async fn caller_identity(config: &aws_config::SdkConfig) -> Option<String> {
    stepops_sfn::caller_arn(config)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(
                %error,
                "cannot ask STS who is calling; startedBy falls back to the local user name"
            );
            None
        })
}

/// The state machine named `stepops-ENV-admin`.
async fn find_state_machine(sfn: &aws_sdk_sfn::Client, env: Environment) -> anyhow::Result<String> {
    let wanted = format!("stepops-{env}-admin");
    match stepops_sfn::find_state_machines(sfn, |name| name == wanted)
        .await?
        .into_iter()
        .next()
    {
        Some((_, arn)) => Ok(arn),
        None => bail!(
            "no state machine named {wanted}: deploy the {env} stack, check the region, or pass --state-machine-arn"
        ),
    }
}

/// Waits for the execution to end; prints the audit record or the error.
async fn wait_and_print(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let options = WaitOptions {
        limit: Some(limit),
        ..WaitOptions::default()
    };
    let finished = stepops_sfn::wait_for_execution(sfn, arn, &options, |_| {}).await?;
    if finished.succeeded() {
        let output = finished.output.unwrap_or(Value::Null);
        println!("{}", serde_json::to_string_pretty(&output)?);
        eprintln!(
            "SUCCEEDED ({}): {}",
            output["outcome"].as_str().unwrap_or("?"),
            output["change"].as_str().unwrap_or("")
        );
        return Ok(());
    }
    let status = finished.status.as_str();
    let error = finished.error.as_deref().unwrap_or("(no error name)");
    let cause = readable_cause(finished.cause.as_deref().unwrap_or(""));
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"status": status, "error": error, "cause": cause, "executionArn": arn})
        )?
    );
    bail!("the admin task {status}: {error}: {cause}");
}

/// A Lambda error document (`{"errorType","errorMessage"}`) as its message; other text as is.
fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

/// The local engine on the template, with the admin function in-process (local token source)
/// and a notify function that logs.
async fn start_local_engine(
    args: &AdminArgs,
    env: Environment,
) -> anyhow::Result<(LocalEngine, tempfile::TempDir)> {
    let synapse = args.synapse_endpoint.clone().ok_or_else(|| {
        anyhow!("--local needs --synapse-endpoint URL (or STEPOPS_SYNAPSE_ENDPOINT)")
    })?;
    let settings = AdminSettings::from_lookup(|k| match k {
        stepops_admin::settings::ENV_ENVIRONMENT => Some(env.to_string()),
        stepops_admin::settings::ENV_ENDPOINT => Some(synapse.clone()),
        other => std::env::var(other).ok(),
    })?;
    let client = Arc::new(SynapseClient::new(
        settings.client,
        LocalTokenSource::for_environment(env),
    )?);
    let admin = handler(move |event: Value| {
        let client = client.clone();
        async move {
            stepops_admin::invoke(&event, env, &client)
                .await
                .map_err(|e| LambdaError::from_named(&e))
        }
    });
    let notify = handler(|event: Value| async move {
        tracing::info!(notification = %event, "notify (local: logged, not sent)");
        Ok(json!({"delivered": ["local-log"], "failed": []}))
    });
    let state = tempfile::tempdir().context("cannot create a state directory")?;
    let engine = LocalEngine::start(
        EngineConfig {
            template: Some(args.template.clone()),
            template_options: TemplateOptions {
                parameter_overrides: [
                    ("Environment".to_owned(), env.to_string()),
                    ("SynapseEndpoint".to_owned(), synapse),
                ]
                .into(),
                ..TemplateOptions::default()
            },
            port: Some(0),
            ..EngineConfig::new(state.path())
        }
        .with_lambda("AdminFunction", admin)
        .with_lambda("NotifyFunction", notify),
    )
    .await
    .with_context(|| {
        format!(
            "cannot start the local engine on {}",
            args.template.display()
        )
    })?;
    Ok((engine, state))
}
