//! The migration steps' arguments, read from a task's input with errors that name the
//! argument, what it must be, and what was given.

use serde_json::{Value, json};

use crate::results::RoundTotals;
use crate::step::StepError;

/// `results`: where the copy Map's `ResultWriter` put the round's manifest
/// (`{Bucket, Key}` as in the Map's `ResultWriterDetails`, or `{bucket, key}`); optional.
pub(super) fn results_arg(args: &Value) -> Result<Option<(String, String)>, StepError> {
    let v = match args.get("results") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let field = |upper: &str, lower: &str| {
        v.get(upper)
            .or_else(|| v.get(lower))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match (field("Bucket", "bucket"), field("Key", "key")) {
        (Some(b), Some(k)) => Ok(Some((b, k))),
        _ => Err(StepError::invalid_input(format!(
            "argument `results` must be {{Bucket, Key}} (the copy Map's ResultWriterDetails), got {v}"
        ))),
    }
}

/// `totals`: the run's copy counts before this round (`{chunksCopied, rowsCopied, rowsDeleted}`,
/// other fields ignored, missing ones 0); optional.
pub(super) fn totals_arg(args: &Value) -> Result<RoundTotals, StepError> {
    let v = match args.get("totals") {
        None | Some(Value::Null) => return Ok(RoundTotals::default()),
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(StepError::invalid_input(format!(
                "argument `totals` must be an object {{chunksCopied, rowsCopied, rowsDeleted}}, got {other}"
            )));
        }
    };
    let n = |k: &str| match v.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(x) => x.as_u64().ok_or_else(|| {
            StepError::invalid_input(format!(
                "argument `totals.{k}` must be a whole number, got {x}"
            ))
        }),
    };
    Ok(RoundTotals {
        chunks_copied: n("chunksCopied")?,
        rows_copied: n("rowsCopied")?,
        rows_deleted: n("rowsDeleted")?,
    })
}

/// An optional boolean argument (absent or `null`: false).
pub(super) fn bool_arg(args: &Value, name: &str) -> Result<bool, StepError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(StepError::invalid_input(format!(
            "argument `{name}` must be true or false, got {other}"
        ))),
    }
}

/// `baseline`: the previous plan's `tracking` (an object), or absent / `null`.
pub(super) fn baseline_arg(args: &Value) -> Result<Option<Value>, StepError> {
    match args.get("baseline") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(other) => Err(StepError::invalid_input(format!(
            "argument `baseline` must be the previous plan's `tracking` object or null, got {other}"
        ))),
    }
}

/// `config`: the migration's config, an object (absent or `null`: `{}`).
pub(super) fn config_arg(args: &Value) -> Result<Value, StepError> {
    match args.get("config") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(StepError::invalid_input(
            "argument `config` must be an object ({include, exclude, tables})",
        )),
    }
}

/// A whole number from `min` to `max`, required.
pub(super) fn u64_arg(args: &Value, name: &str, min: u64, max: u64) -> Result<u64, StepError> {
    let v = args
        .get(name)
        .ok_or_else(|| StepError::invalid_input(format!("missing argument `{name}`")))?;
    v.as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            StepError::invalid_input(format!(
                "argument `{name}` must be a whole number from {min} to {max}, got {v}"
            ))
        })
}

/// A non-empty string field of `v`, named in errors by its path `name` (`manifest.bucket`).
pub(super) fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, StepError> {
    let key = name.rsplit('.').next().unwrap_or(name);
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            StepError::invalid_input(format!("argument `{name}` must be a non-empty string"))
        })
}
