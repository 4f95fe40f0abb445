//! A state's `Retry` and `Catch` lists.

use super::*;

pub(super) fn parse_retry(
    obj: &Map<String, Value>,
    state: &str,
) -> Result<Vec<Retrier>, LoadError> {
    let Some(v) = obj.get("Retry") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| invalid(format!("state '{state}': Retry must be an array")))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let what = format!("state '{state}': Retry[{i}]");
        let ro = r
            .as_object()
            .ok_or_else(|| invalid(format!("{what} must be an object")))?;
        allow_fields(
            ro,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
            &what,
        )?;
        let error_equals = error_equals(ro, &what)?;
        if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(format!(
                "{what}: a retrier with States.ALL must be the last one"
            )));
        }
        let interval_seconds = number(ro, "IntervalSeconds", &what)?.unwrap_or(1.0);
        if interval_seconds < 1.0 || interval_seconds.fract() != 0.0 {
            return Err(invalid(format!(
                "{what}: IntervalSeconds must be a positive integer"
            )));
        }
        let max_attempts = match ro.get("MaxAttempts") {
            None => 3,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "{what}: MaxAttempts must be a non-negative integer"
                    ))
                })?,
        };
        let backoff_rate = number(ro, "BackoffRate", &what)?.unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(invalid(format!("{what}: BackoffRate must be at least 1.0")));
        }
        let max_delay_seconds = number(ro, "MaxDelaySeconds", &what)?;
        if let Some(d) = max_delay_seconds
            && (d <= 0.0 || d.fract() != 0.0)
        {
            return Err(invalid(format!(
                "{what}: MaxDelaySeconds must be a positive integer"
            )));
        }
        let full_jitter = match ro.get("JitterStrategy").and_then(Value::as_str) {
            None | Some("NONE") => {
                if ro.get("JitterStrategy").is_some_and(|v| !v.is_string()) {
                    return Err(invalid(format!(
                        "{what}: JitterStrategy must be FULL or NONE"
                    )));
                }
                false
            }
            Some("FULL") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: JitterStrategy '{other}' must be FULL or NONE"
                )));
            }
        };
        out.push(Retrier {
            error_equals,
            interval_seconds,
            max_attempts,
            backoff_rate,
            max_delay_seconds,
            full_jitter,
        });
    }
    Ok(out)
}

pub(super) fn parse_catch(
    obj: &Map<String, Value>,
    state: &str,
) -> Result<Vec<Catcher>, LoadError> {
    let Some(v) = obj.get("Catch") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| invalid(format!("state '{state}': Catch must be an array")))?;
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let what = format!("state '{state}': Catch[{i}]");
        let co = c
            .as_object()
            .ok_or_else(|| invalid(format!("{what} must be an object")))?;
        allow_fields(
            co,
            &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
            &what,
        )?;
        let error_equals = error_equals(co, &what)?;
        if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(format!(
                "{what}: a catcher with States.ALL must be the last one"
            )));
        }
        let next = co
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{what} has no Next")))?
            .to_owned();
        let result_path = path_field(co, "ResultPath", state)?;
        let assign = co.get("Assign").cloned();
        if let Some(a) = &assign {
            stepops_asl_data::template::validate(a)
                .map_err(|e| invalid(format!("{what}: Assign: {e}")))?;
        }
        out.push(Catcher {
            error_equals,
            next,
            result_path,
            assign,
        });
    }
    Ok(out)
}
