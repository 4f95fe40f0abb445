//! The local-folder stand-in for S3 that Distributed Map's `ItemReader` and `ResultWriter`
//! use: `s3://BUCKET/KEY` is `RunOptions.s3_root/BUCKET/KEY`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::csv::csv_items;
use crate::definition::ItemReader;
use crate::executor::{Exec, NodeStatus, StateContext, to_json};

pub(super) fn s3_root(exec: &Exec) -> Result<PathBuf, String> {
    exec.options.s3_root.clone().ok_or_else(|| {
        "no local S3 folder is configured (RunOptions.s3_root); the local engine reads and writes Distributed Map items there".to_owned()
    })
}

pub(super) fn s3_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let bad = |s: &str| s.split('/').any(|p| p == "..") || s.starts_with('/');
    if bucket.is_empty() || bad(bucket) || bad(key) {
        return Err(format!("invalid S3 location s3://{bucket}/{key}"));
    }
    Ok(root.join(bucket).join(key))
}

pub(super) fn param_str(params: &Value, key: &str) -> Option<String> {
    params.get(key).and_then(Value::as_str).map(str::to_owned)
}

pub(super) fn read_items(
    exec: &Exec,
    cx: &StateContext,
    reader: &ItemReader,
    eff: &Value,
) -> Result<Vec<Value>, String> {
    let params = stepops_asl_data::template::evaluate(&reader.parameters, &cx.scope(eff))
        .map_err(|e| e.cause)?;
    let root = s3_root(exec)?;
    let bucket = param_str(&params, "Bucket").ok_or("ItemReader.Parameters needs a Bucket")?;
    let max_items = match (
        reader.config.get("MaxItems"),
        reader.config.get("MaxItemsPath"),
    ) {
        (Some(v), _) => v.as_u64(),
        (None, Some(Value::String(p))) => stepops_asl_data::path::JsonPath::parse(p)
            .ok()
            .and_then(|p| p.read(&cx.scope(eff)))
            .and_then(|v| v.as_u64()),
        _ => None,
    }
    .filter(|n| *n > 0)
    .map(|n| n as usize)
    .unwrap_or(usize::MAX);
    let mut items = if reader.resource == "listObjectsV2" {
        let prefix = param_str(&params, "Prefix").unwrap_or_default();
        let base = s3_path(&root, &bucket, "")?;
        let mut files = Vec::new();
        list_files(&base, &base, &mut files)
            .map_err(|e| format!("cannot list s3://{bucket}/: {e}"))?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(key, meta)| {
                let modified = meta
                    .modified()
                    .ok()
                    .map(|t| crate::executor::ts(chrono::DateTime::<chrono::Utc>::from(t)))
                    .unwrap_or_default();
                json!({
                    "Etag": format!("\"{:x}\"", meta.len()),
                    "Key": key,
                    "LastModified": modified,
                    "Size": meta.len(),
                    "StorageClass": "STANDARD",
                })
            })
            .collect()
    } else {
        let key = param_str(&params, "Key").ok_or("ItemReader.Parameters needs a Key")?;
        let file = s3_path(&root, &bucket, &key)?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read s3://{bucket}/{key} ({}): {e}", file.display()))?;
        let input_type = reader
            .config
            .get("InputType")
            .and_then(Value::as_str)
            .unwrap_or("JSON");
        match input_type {
            "JSON" => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(a)) => a,
                Ok(_) => return Err(format!("s3://{bucket}/{key} does not hold a JSON array")),
                Err(e) => return Err(format!("s3://{bucket}/{key} is not valid JSON: {e}")),
            },
            "JSONL" => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(i, l)| {
                    serde_json::from_str(l).map_err(|e| {
                        format!("s3://{bucket}/{key} line {}: not valid JSON: {e}", i + 1)
                    })
                })
                .collect::<Result<_, _>>()?,
            _ => {
                csv_items(&text, &reader.config).map_err(|e| format!("s3://{bucket}/{key}: {e}"))?
            }
        }
    };
    items.truncate(max_items);
    Ok(items)
}

pub(super) fn list_files(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(String, std::fs::Metadata)>,
) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        let p = e.path();
        if meta.is_dir() {
            list_files(base, &p, out)?;
        } else {
            let key = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((key, meta));
        }
    }
    Ok(())
}

/// Parses CSV (RFC 4180 quoting) into objects keyed by the header row or `CSVHeaders`.
pub(super) fn write_results(
    exec: &Exec,
    cx: &StateContext,
    params: &Value,
    eff: &Value,
    map_run_arn: &str,
    outputs: &[Value],
    statuses: &[(Value, Option<Value>, NodeStatus)],
) -> Result<Value, String> {
    let params =
        stepops_asl_data::template::evaluate(params, &cx.scope(eff)).map_err(|e| e.cause)?;
    let root = s3_root(exec)?;
    let bucket = param_str(&params, "Bucket").ok_or("ResultWriter.Parameters needs a Bucket")?;
    let prefix = param_str(&params, "Prefix").unwrap_or_default();
    let run_id = map_run_arn.rsplit(':').next().unwrap_or("run").to_owned();
    let dir_key = if prefix.is_empty() {
        run_id.clone()
    } else {
        format!("{}/{run_id}", prefix.trim_end_matches('/'))
    };
    let dir = s3_path(&root, &bucket, &dir_key)?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for (i, ((input, _, status), out)) in statuses.iter().zip(outputs).enumerate() {
        let mut entry = json!({
            "ExecutionArn": format!("{map_run_arn}:{i}"),
            "Input": to_json(input),
            "InputDetails": {"Included": true},
            "Name": format!("{i}"),
            "StateMachineArn": exec.info.state_machine_arn,
            "Status": if *status == NodeStatus::Succeeded { "SUCCEEDED" } else { "FAILED" },
        });
        if *status == NodeStatus::Succeeded {
            entry["Output"] = Value::String(to_json(out));
            entry["OutputDetails"] = json!({"Included": true});
            succeeded.push(entry);
        } else {
            // As AWS writes a failed child: its error and cause, no output.
            for field in ["Error", "Cause"] {
                if let Some(v) = out.get(field).filter(|v| !v.is_null()) {
                    entry[field] = v.clone();
                }
            }
            failed.push(entry);
        }
    }
    let mut files = Map::new();
    for (label, list) in [("SUCCEEDED", succeeded), ("FAILED", failed)] {
        let mut refs = Vec::new();
        if !list.is_empty() {
            let key = format!("{dir_key}/{label}_0.json");
            let text = to_json(&Value::Array(list));
            std::fs::write(dir.join(format!("{label}_0.json")), &text)
                .map_err(|e| format!("cannot write s3://{bucket}/{key}: {e}"))?;
            refs.push(json!({"Key": key, "Size": text.len()}));
        }
        files.insert(label.into(), Value::Array(refs));
    }
    files.insert("PENDING".into(), json!([]));
    let manifest_key = format!("{dir_key}/manifest.json");
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": files,
    });
    std::fs::write(dir.join("manifest.json"), to_json(&manifest))
        .map_err(|e| format!("cannot write s3://{bucket}/{manifest_key}: {e}"))?;
    Ok(json!({
        "MapRunArn": map_run_arn,
        "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key},
    }))
}
