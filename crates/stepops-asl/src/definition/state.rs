//! One state, parsed by its type: the fields each type allows, its paths and templates.

use super::map::parse_map;
use super::retry::{parse_catch, parse_retry};
use super::*;

pub(super) fn parse_state(name: &str, body: &Value) -> Result<State, LoadError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid(format!("state '{name}' must be a JSON object")))?;
    let what = format!("state '{name}'");
    check_query_language(obj, &what)?;
    let ty = obj
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("state '{name}' has no Type")))?;
    let common: &[&str] = &["Type", "Comment", "QueryLanguage"];
    let io_in: &[&str] = &["InputPath", "OutputPath"];
    let flow: &[&str] = &["Next", "End"];
    let mut allowed: Vec<&str> = common.to_vec();
    match ty {
        "Pass" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend(["Parameters", "Result", "ResultPath", "Assign"]);
        }
        "Task" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Assign",
                "Credentials",
            ]);
        }
        "Choice" => {
            allowed.extend(io_in);
            allowed.extend(["Choices", "Default", "Assign"]);
        }
        "Wait" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Seconds",
                "Timestamp",
                "SecondsPath",
                "TimestampPath",
                "Assign",
            ]);
        }
        "Succeed" => allowed.extend(io_in),
        "Fail" => allowed.extend(["Error", "Cause", "ErrorPath", "CausePath"]),
        "Parallel" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Branches",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Assign",
            ]);
        }
        "Map" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "ItemProcessor",
                "Iterator",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Assign",
            ]);
            allowed.extend(super::map::DISTRIBUTED_ONLY);
        }
        other => {
            return Err(invalid(format!(
                "state '{name}' has an unknown Type '{other}' (expected Task, Pass, Choice, Wait, Succeed, Fail, Parallel or Map)"
            )));
        }
    }
    allow_fields(obj, &allowed, &what)?;
    if obj.contains_key("Credentials") {
        return Err(unsupported(format!(
            "state '{name}' uses Credentials (cross-account roles); the local engine has no IAM"
        )));
    }

    // Transitions.
    let next = opt_str(obj, "Next", name)?;
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(format!(
                "state '{name}': End must be a boolean, not {other}"
            )));
        }
    };
    let has_flow = allowed.contains(&"Next");
    if has_flow {
        match (&next, end) {
            (Some(_), true) => {
                return Err(invalid(format!(
                    "state '{name}' has both Next and End: true; use one"
                )));
            }
            (None, false) => {
                return Err(invalid(format!(
                    "state '{name}' has neither Next nor End: true (a {ty} state must say where to go)"
                )));
            }
            _ => {}
        }
    }

    let input_path = path_field(obj, "InputPath", name)?;
    let output_path = path_field(obj, "OutputPath", name)?;
    let mut result_path = path_field(obj, "ResultPath", name)?;
    if let PathField::Path(p) = &result_path
        && !p.is_reference()
    {
        return Err(invalid(format!(
            "state '{name}': ResultPath '{}' must be a Reference Path",
            p.as_str()
        )));
    }
    let parameters = template(obj, "Parameters", name)?;
    let result_selector = template(obj, "ResultSelector", name)?;
    let assign = match obj.get("Assign") {
        None => None,
        Some(v @ Value::Object(_)) => {
            stepops_asl_data::template::validate(v)
                .map_err(|e| invalid(format!("state '{name}': Assign: {e}")))?;
            Some(v.clone())
        }
        Some(other) => {
            return Err(invalid(format!(
                "state '{name}': Assign must be an object, not {other}"
            )));
        }
    };
    let retry = parse_retry(obj, name)?;
    let (uses_context, uses_execution_input) = context_needs(body);
    let catch = parse_catch(obj, name)?;

    let kind = match ty {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => {
            let resource = obj
                .get("Resource")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("Task state '{name}' has no Resource string")))?
                .to_owned();
            if !resource.starts_with("arn:") {
                return Err(invalid(format!(
                    "Task state '{name}': Resource '{resource}' is not an ARN (was a ${{Placeholder}} left unsubstituted?)"
                )));
            }
            let timeout = int_or_path(obj, "TimeoutSeconds", "TimeoutSecondsPath", name, 1)?;
            let heartbeat = int_or_path(obj, "HeartbeatSeconds", "HeartbeatSecondsPath", name, 1)?;
            if let (Some(IntOrPath::Literal(t)), Some(IntOrPath::Literal(h))) =
                (&timeout, &heartbeat)
                && h >= t
            {
                return Err(invalid(format!(
                    "Task state '{name}': HeartbeatSeconds ({h}) must be smaller than TimeoutSeconds ({t})"
                )));
            }
            Kind::Task(TaskSpec {
                resource,
                timeout,
                heartbeat,
            })
        }
        "Choice" => {
            let list = obj
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "Choice state '{name}' needs a non-empty Choices array"
                    ))
                })?;
            let mut choices = Vec::new();
            for (i, r) in list.iter().enumerate() {
                let rule = Rule::parse(r, true)
                    .map_err(|e| invalid(format!("Choice state '{name}': Choices[{i}]: {e}")))?;
                let assign = r.get("Assign").cloned();
                if let Some(a) = &assign {
                    stepops_asl_data::template::validate(a).map_err(|e| {
                        invalid(format!("Choice state '{name}': Choices[{i}].Assign: {e}"))
                    })?;
                }
                choices.push((rule, assign));
            }
            Kind::Choice {
                choices,
                default: opt_str(obj, "Default", name)?,
            }
        }
        "Wait" => {
            let mut forms = Vec::new();
            if let Some(v) = obj.get("Seconds") {
                let n = v.as_u64().ok_or_else(|| {
                    invalid(format!(
                        "Wait state '{name}': Seconds must be a non-negative integer, not {v}"
                    ))
                })?;
                forms.push(WaitSpec::Seconds(n));
            }
            if let Some(v) = obj.get("Timestamp") {
                let s = v.as_str().ok_or_else(|| {
                    invalid(format!("Wait state '{name}': Timestamp must be a string"))
                })?;
                if crate::executor::parse_timestamp(s).is_none() {
                    return Err(invalid(format!(
                        "Wait state '{name}': Timestamp '{s}' is not an ISO-8601 extended offset date-time"
                    )));
                }
                forms.push(WaitSpec::Timestamp(s.to_owned()));
            }
            if let Some(s) = opt_str(obj, "SecondsPath", name)? {
                forms.push(WaitSpec::SecondsPath(reference_path(
                    &s,
                    "SecondsPath",
                    name,
                )?));
            }
            if let Some(s) = opt_str(obj, "TimestampPath", name)? {
                forms.push(WaitSpec::TimestampPath(reference_path(
                    &s,
                    "TimestampPath",
                    name,
                )?));
            }
            if forms.len() != 1 {
                return Err(invalid(format!(
                    "Wait state '{name}' needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath"
                )));
            }
            Kind::Wait(forms.pop().expect("one form"))
        }
        "Succeed" => Kind::Succeed,
        "Fail" => {
            let error = str_or_path(obj, "Error", "ErrorPath", name)?;
            let cause = str_or_path(obj, "Cause", "CausePath", name)?;
            Kind::Fail { error, cause }
        }
        "Parallel" => {
            let list = obj
                .get("Branches")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "Parallel state '{name}' needs a non-empty Branches array"
                    ))
                })?;
            let mut branches = Vec::new();
            for (i, b) in list.iter().enumerate() {
                let what = format!("branch {i} of Parallel state '{name}'");
                let label = format!("Parallel state '{name}': Branches[{i}]");
                let bo = nested_machine(b, &label, &what, &[])?;
                branches.push(parse_machine(bo, &what, true)?);
            }
            Kind::Parallel { branches }
        }
        "Map" => Kind::Map(Box::new(parse_map(obj, name, &mut result_path)?)),
        _ => unreachable!("type checked above"),
    };
    // Fields only some types accept in practice.
    if matches!(kind, Kind::Map(_))
        && obj.contains_key("Parameters")
        && obj.contains_key("ItemSelector")
    {
        return Err(invalid(format!(
            "Map state '{name}' has both Parameters and ItemSelector; use ItemSelector"
        )));
    }
    let parameters = if matches!(kind, Kind::Map(_)) {
        None
    } else {
        parameters
    };
    Ok(State {
        name: name.to_owned(),
        kind,
        input_path,
        output_path,
        parameters,
        result_selector,
        result_path,
        assign,
        next,
        retry,
        catch,
        uses_context,
        uses_execution_input,
    })
}
