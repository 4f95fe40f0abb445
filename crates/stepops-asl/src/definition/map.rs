//! A Map state (inline or distributed): its item processor, selectors, batching, reader,
//! writer and tolerated failures.

use super::*;

/// The Map fields only a Distributed Map accepts.
pub(super) const DISTRIBUTED_ONLY: [&str; 8] = [
    "ItemReader",
    "ItemBatcher",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ResultWriter",
    "Label",
];

pub(super) fn parse_map(
    obj: &Map<String, Value>,
    name: &str,
    _result_path: &mut PathField,
) -> Result<MapSpec, LoadError> {
    let (proc_val, legacy) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "Map state '{name}' has both ItemProcessor and Iterator; use ItemProcessor"
            )));
        }
        (Some(p), None) => (p, false),
        (None, Some(p)) => (p, true),
        (None, None) => {
            return Err(invalid(format!("Map state '{name}' has no ItemProcessor")));
        }
    };
    let what = format!("the ItemProcessor of Map state '{name}'");
    let po = nested_machine(
        proc_val,
        &format!("Map state '{name}': ItemProcessor"),
        &what,
        &["ProcessorConfig"],
    )?;
    let mut distributed = false;
    if let Some(pc) = po.get("ProcessorConfig") {
        let pc = pc
            .as_object()
            .ok_or_else(|| invalid(format!("{what}: ProcessorConfig must be an object")))?;
        allow_fields(pc, &["Mode", "ExecutionType"], &what)?;
        match pc.get("Mode").and_then(Value::as_str) {
            None | Some("INLINE") => {}
            Some("DISTRIBUTED") => distributed = true,
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: ProcessorConfig.Mode '{other}' must be INLINE or DISTRIBUTED"
                )));
            }
        }
        match pc.get("ExecutionType").and_then(Value::as_str) {
            None | Some("STANDARD") | Some("EXPRESS") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: ProcessorConfig.ExecutionType '{other}' must be STANDARD or EXPRESS"
                )));
            }
        }
        if distributed && pc.get("ExecutionType").is_none() {
            return Err(invalid(format!(
                "{what}: a DISTRIBUTED Map needs ProcessorConfig.ExecutionType (STANDARD or EXPRESS)"
            )));
        }
    }
    let _ = legacy;
    let processor = parse_machine(po, &what, true)?;

    let items_path = match obj.get("ItemsPath") {
        None => None,
        Some(Value::String(s)) => Some(reference_path(s, "ItemsPath", name)?),
        Some(other) => {
            return Err(invalid(format!(
                "Map state '{name}': ItemsPath must be a string, not {other}"
            )));
        }
    };
    let item_selector = match template(obj, "ItemSelector", name)? {
        Some(v) => Some(v),
        None => template(obj, "Parameters", name)?,
    };
    let max_concurrency = int_or_path(obj, "MaxConcurrency", "MaxConcurrencyPath", name, 0)?;
    if !distributed && let Some(k) = DISTRIBUTED_ONLY.iter().find(|k| obj.contains_key(**k)) {
        return Err(invalid(format!(
            "Map state '{name}': {k} is only valid with ProcessorConfig.Mode DISTRIBUTED"
        )));
    }
    let tolerated_percentage = num_or_path(
        obj,
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        name,
    )?;
    if let Some(NumOrPath::Literal(p)) = &tolerated_percentage
        && !(0.0..=100.0).contains(p)
    {
        return Err(invalid(format!(
            "Map state '{name}': ToleratedFailurePercentage must be between 0 and 100"
        )));
    }
    let tolerated_count = num_or_path(
        obj,
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        name,
    )?;
    if let Some(NumOrPath::Literal(c)) = &tolerated_count
        && (*c < 0.0 || c.fract() != 0.0)
    {
        return Err(invalid(format!(
            "Map state '{name}': ToleratedFailureCount must be a non-negative integer"
        )));
    }
    let label = opt_str(obj, "Label", name)?;
    if let Some(l) = &label
        && (l.chars().count() > 40
            || l.chars()
                .any(|c| c.is_whitespace() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)))
    {
        return Err(invalid(format!(
            "Map state '{name}': Label '{l}' must be at most 40 characters without whitespace or special characters"
        )));
    }
    let item_reader = match obj.get("ItemReader") {
        None => None,
        Some(v) => Some(parse_item_reader(v, name)?),
    };
    let item_batcher = match obj.get("ItemBatcher") {
        None => None,
        Some(v) => {
            let bo = v.as_object().ok_or_else(|| {
                invalid(format!("Map state '{name}': ItemBatcher must be an object"))
            })?;
            let what = format!("Map state '{name}': ItemBatcher");
            allow_fields(
                bo,
                &[
                    "MaxItemsPerBatch",
                    "MaxItemsPerBatchPath",
                    "MaxInputBytesPerBatch",
                    "MaxInputBytesPerBatchPath",
                    "BatchInput",
                ],
                &what,
            )?;
            let max_items = int_or_path(bo, "MaxItemsPerBatch", "MaxItemsPerBatchPath", name, 1)?;
            let max_bytes = int_or_path(
                bo,
                "MaxInputBytesPerBatch",
                "MaxInputBytesPerBatchPath",
                name,
                1,
            )?;
            if max_items.is_none() && max_bytes.is_none() {
                return Err(invalid(format!(
                    "{what} needs MaxItemsPerBatch or MaxInputBytesPerBatch (or their Path forms)"
                )));
            }
            let batch_input = template(bo, "BatchInput", name)?;
            Some(ItemBatcher {
                max_items,
                max_bytes,
                batch_input,
            })
        }
    };
    let result_writer = match obj.get("ResultWriter") {
        None => None,
        Some(v) => {
            let ro = v.as_object().ok_or_else(|| {
                invalid(format!(
                    "Map state '{name}': ResultWriter must be an object"
                ))
            })?;
            let what = format!("Map state '{name}': ResultWriter");
            allow_fields(ro, &["Resource", "Parameters", "WriterConfig"], &what)?;
            if ro.contains_key("WriterConfig") {
                return Err(unsupported(format!(
                    "{what}: WriterConfig (result transformation) is not implemented by the local engine"
                )));
            }
            let res = ro.get("Resource").and_then(Value::as_str).unwrap_or("");
            if res != "arn:aws:states:::s3:putObject" {
                return Err(unsupported(format!(
                    "{what}: Resource '{res}' (the local engine writes results only with arn:aws:states:::s3:putObject)"
                )));
            }
            let parameters = template(ro, "Parameters", name)?.unwrap_or(Value::Null);
            Some(ResultWriter { parameters })
        }
    };
    Ok(MapSpec {
        processor,
        distributed,
        items_path,
        item_selector,
        max_concurrency,
        item_reader,
        item_batcher,
        tolerated_percentage,
        tolerated_count,
        result_writer,
        label,
    })
}

pub(super) fn num_or_path(
    obj: &Map<String, Value>,
    key: &str,
    path_key: &str,
    state: &str,
) -> Result<Option<NumOrPath>, LoadError> {
    match (obj.get(key), obj.get(path_key)) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "Map state '{state}': {key} and {path_key} are mutually exclusive"
        ))),
        (Some(v), None) => Ok(Some(NumOrPath::Literal(v.as_f64().ok_or_else(|| {
            invalid(format!(
                "Map state '{state}': {key} must be a number, not {v}"
            ))
        })?))),
        (None, Some(Value::String(p))) => {
            Ok(Some(NumOrPath::Path(reference_path(p, path_key, state)?)))
        }
        (None, Some(other)) => Err(invalid(format!(
            "Map state '{state}': {path_key} must be a path string, not {other}"
        ))),
        (None, None) => Ok(None),
    }
}

pub(super) fn parse_item_reader(v: &Value, name: &str) -> Result<ItemReader, LoadError> {
    let what = format!("Map state '{name}': ItemReader");
    let ro = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))?;
    allow_fields(ro, &["Resource", "Parameters", "ReaderConfig"], &what)?;
    let res = ro.get("Resource").and_then(Value::as_str).unwrap_or("");
    let resource = match res {
        "arn:aws:states:::s3:getObject" => "getObject",
        "arn:aws:states:::s3:listObjectsV2" => "listObjectsV2",
        other => {
            return Err(unsupported(format!(
                "{what}: Resource '{other}' (the local engine reads items with arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2 over its local S3 folder)"
            )));
        }
    };
    let parameters = template(ro, "Parameters", name)?.unwrap_or(Value::Object(Map::new()));
    let config = match ro.get("ReaderConfig") {
        None => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err(invalid(format!("{what}: ReaderConfig must be an object"))),
    };
    allow_fields(
        &config,
        &[
            "InputType",
            "CSVHeaderLocation",
            "CSVHeaders",
            "CSVDelimiter",
            "MaxItems",
            "MaxItemsPath",
            "ManifestType",
        ],
        &format!("{what}.ReaderConfig"),
    )?;
    match config.get("InputType").and_then(Value::as_str) {
        None if resource == "listObjectsV2" => {}
        Some("JSON") | Some("JSONL") | Some("CSV") => {}
        Some("MANIFEST") | Some("PARQUET") => {
            return Err(unsupported(format!(
                "{what}: ReaderConfig.InputType {} is not implemented by the local engine (use JSON, JSONL or CSV)",
                config["InputType"]
            )));
        }
        _ if resource == "getObject" => {
            return Err(invalid(format!(
                "{what}: ReaderConfig.InputType must be JSON, JSONL or CSV for s3:getObject"
            )));
        }
        Some(other) => {
            return Err(invalid(format!(
                "{what}: unknown ReaderConfig.InputType '{other}'"
            )));
        }
        None => {}
    }
    Ok(ItemReader {
        resource: resource.to_owned(),
        parameters,
        config,
    })
}
