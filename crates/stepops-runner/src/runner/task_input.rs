//! A task's input as the runner receives it: `{"step", "args"}`, checked against the runner's
//! own configuration (environment, allow-list, AWS mode) before any step runs.

use super::*;

/// Parses `{"step": NAME, "args": {…}}` and checks it against the runner's own configuration
/// ([`check_task`]).
pub(super) fn parse_input(
    input: &str,
    options: &RunnerOptions,
) -> Result<(String, Value), StepError> {
    let value: Value = serde_json::from_str(input).map_err(|e| {
        StepError::invalid_input(format!(
            "the task input is not JSON ({e}); expected {{\"step\": NAME, \"args\": {{…}}}}"
        ))
    })?;
    let Some(step) = value.get("step").and_then(Value::as_str) else {
        return Err(StepError::invalid_input(
            "the task input has no string `step`; expected {\"step\": NAME, \"args\": {…}} \
             (check the Task state's Parameters)",
        ));
    };
    let args = match value.get("args") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            return Err(StepError::invalid_input(format!(
                "step `{step}`: `args` must be an object"
            )));
        }
    };
    check_task(step, &args, options)?;
    Ok((step.to_owned(), args))
}

/// The arguments that name a database.
pub(super) const TARGET_ARGS: [&str; 3] = ["source", "dest", "target"];

/// The runner trusts no task (any state machine in the account can schedule on its activity):
/// before a step runs, its `environment` must be the runner's and every target it names must
/// be on the runner's own allow-list (the check validate-input makes, from the same stack
/// parameters), and in AWS mode no `url` target is accepted. Nothing is read or written before
/// this passes. `ping` names no database and is exempt.
pub(super) fn check_task(
    step: &str,
    args: &Value,
    options: &RunnerOptions,
) -> Result<(), StepError> {
    if step == "ping" {
        return Ok(());
    }
    if let Some(mine) = options.environment {
        match args.get("environment").and_then(Value::as_str) {
            None => {
                return Err(StepError::invalid_input(format!(
                    "step `{step}`: the task has no string argument `environment`; this runner \
                     serves `{mine}` and refuses a task that does not say which environment it \
                     is for (check the Task state's Parameters)"
                )));
            }
            Some(theirs) if theirs != mine.as_str() => {
                return Err(StepError::new(
                    ErrorName::WrongEnvironment,
                    format!(
                        "this runner serves environment `{mine}`, the task is for `{theirs}`: \
                         start the execution in the `{theirs}` stack"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    // The targets it names, and the Synapse service-key parameters its config names.
    let mut targets = Vec::new();
    for field in TARGET_ARGS {
        if let Some(value) = args.get(field) {
            let target = TargetRef::from_json(field, Some(value)).map_err(|why| {
                StepError::invalid_input(format!("step `{step}`: argument {why}"))
            })?;
            targets.push((field, format!("argument `{field}`"), target));
        }
    }
    let keys = stepops_error::synapse_key_parameters(args.get("config"))
        .map_err(|why| StepError::invalid_input(format!("step `{step}`: {why}")))?;
    for (field, target) in keys {
        targets.push((field, format!("the {field} stack's service key"), target));
    }
    for (field, what, target) in targets {
        if options.refuse_url_targets && target.kind == TargetKind::Url {
            return Err(StepError::invalid_input(format!(
                "step `{step}`: {what} is {}: this runner talks to AWS (no `endpoint`), where a \
                 task names its databases by secret or parameter; url targets are for local runs",
                target.describe()
            )));
        }
        if let Some(stack) = &options.allowed_targets {
            stack.check(field, &target).map_err(|refusal| {
                let mut err = StepError::from(refusal);
                err.cause = format!(
                    "step `{step}`: {what}: {} (the runner's allowed_targets)",
                    err.cause
                );
                err
            })?;
        }
    }
    Ok(())
}
