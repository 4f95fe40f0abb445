//! A stack's state machine from its CloudFormation outputs: `DescribeStacks` through the SDK's
//! paginator (the answer of a listing comes in pages joined by `NextToken`), so that any stack
//! in the account and region is found, and the value checked to carry the environment asked for.

use aws_sdk_cloudformation::types::Stack;

use stepops_error::ErrorName;

use crate::SfnError;

/// One stack's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackOutput {
    /// The stack's name.
    pub stack: String,
    /// The output's value.
    pub value: String,
}

/// The value of the output `key` of the stack `stack` (name or id).
pub async fn stack_output(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    key: &str,
) -> Result<String, SfnError> {
    let found = find_stack(cfn, stack)
        .await?
        .ok_or_else(|| SfnError::NotFound(missing_stack(stack)))?;
    output_of(&found, key).ok_or_else(|| {
        SfnError::NotFound(format!(
            "the stack {stack} has no output {key}: is it a stepops stack? (template.yaml, Outputs)"
        ))
    })
}

/// Every stack of the account and region that has the output `key`, with its value, in the
/// order CloudFormation lists them.
pub async fn stacks_with_output(
    cfn: &aws_sdk_cloudformation::Client,
    key: &str,
) -> Result<Vec<StackOutput>, SfnError> {
    Ok(describe(cfn, None)
        .await?
        .iter()
        .filter_map(|s| {
            Some(StackOutput {
                stack: s.stack_name()?.to_owned(),
                value: output_of(s, key)?,
            })
        })
        .collect())
}

/// The state machine ARN in the output `key` of `stack`, refused unless it carries
/// `environment` (a dev stack's machine is `…:stateMachine:stepops-dev-…`). A stack that does
/// not exist is reported with the stacks that do have the output (namespaced dev stacks).
pub async fn state_machine_of_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    key: &str,
    environment: &str,
) -> Result<String, SfnError> {
    if find_stack(cfn, stack).await?.is_none() {
        return Err(missing_with_candidates(cfn, stack, key).await);
    }
    let arn = stack_output(cfn, stack, key).await?;
    if !arn.contains(environment) {
        return Err(SfnError::WrongEnvironment(format!(
            "the stack {stack}'s state machine {arn} does not carry the environment {environment}: refusing"
        )));
    }
    Ok(arn)
}

fn missing_stack(stack: &str) -> String {
    format!(
        "CloudFormation has no stack {stack} in this account and region: deploy it, check the region, or name the state machine directly"
    )
}

/// A missing stack's error, naming the stacks that have the output `key` (when they can be
/// listed): a namespaced dev stack is `stepops-dev-BRANCH`.
async fn missing_with_candidates(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    key: &str,
) -> SfnError {
    let why = missing_stack(stack);
    let others: Vec<String> = stacks_with_output(cfn, key)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.stack)
        .collect();
    if others.is_empty() {
        SfnError::NotFound(why)
    } else {
        SfnError::NotFound(format!(
            "{why}; stacks with a {key} output: {}",
            others.join(", ")
        ))
    }
}

/// The stack `stack`, or `None` when CloudFormation does not know it (it answers a missing
/// stack with a `ValidationError`).
async fn find_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<Stack>, SfnError> {
    let stacks = match describe(cfn, Some(stack)).await {
        Err(SfnError::Call {
            name: ErrorName::NotFound,
            ..
        }) => Vec::new(),
        other => other?,
    };
    Ok(stacks
        .into_iter()
        .find(|s| s.stack_name() == Some(stack) || s.stack_id() == Some(stack)))
}

/// `DescribeStacks` of one stack or of all, every page.
async fn describe(
    cfn: &aws_sdk_cloudformation::Client,
    stack: Option<&str>,
) -> Result<Vec<Stack>, SfnError> {
    let mut pages = cfn
        .describe_stacks()
        .set_stack_name(stack.map(str::to_owned))
        .into_paginator()
        .send();
    let mut stacks = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SfnError::call("DescribeStacks", e))?;
        stacks.extend(page.stacks().iter().cloned());
    }
    Ok(stacks)
}

fn output_of(stack: &Stack, key: &str) -> Option<String> {
    stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some(key))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
}
