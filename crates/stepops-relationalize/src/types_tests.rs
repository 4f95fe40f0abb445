//! The typing rules: schema types, inference, conflicts.

use serde_json::json;

use super::*;
use crate::table::{Cell, Column, Scalar};

fn col(values: Vec<Scalar<'_>>) -> Column {
    let mut column = Column::new("c");
    values.into_iter().for_each(|v| column.push(v).unwrap());
    column
}

#[test]
fn a_schema_declares_types_with_the_same_names_as_the_flattening() {
    let schema = json!({
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "s": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "a": {"type": "object", "properties": {"b": {"type": "integer"}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "steps": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "inner": {"type": "array", "items": {"type": "integer"}}
            }}},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "open": {},
            "either": {"type": ["integer", "string"]}
        }
    });
    let d = declared_types("survey", &schema);
    assert_eq!(
        d["survey"],
        [
            ("recordid".into(), ColType::Utf8),
            ("n".into(), ColType::Int64),
            ("x".into(), ColType::Float64),
            ("ok".into(), ColType::Boolean),
            ("s".into(), ColType::Utf8),
            ("at".into(), ColType::Timestamp),
            ("a_b".into(), ColType::Int64),
            ("tags".into(), ColType::Int64),
            ("steps".into(), ColType::Int64),
            ("matrix".into(), ColType::Int64),
        ]
    );
    assert_eq!(d["survey_tags"][3], ("tags_val".into(), ColType::Utf8));
    assert_eq!(d["survey_steps"][3], ("name".into(), ColType::Utf8));
    assert_eq!(
        d["survey_steps_inner"][3],
        ("inner_val".into(), ColType::Int64)
    );
    assert_eq!(d["survey_matrix"][3], ("matrix_val".into(), ColType::Int64));
    assert_eq!(
        d["survey_matrix_val"][3],
        ("matrix_val_val".into(), ColType::Float64)
    );
}

#[test]
fn types_are_inferred_when_no_schema_declares_them() {
    use Cell::*;
    for (cells, want) in [
        (vec![Int(1).into(), Null.into()], ColType::Int64),
        (vec![Int(1).into(), Float(2.5).into()], ColType::Float64),
        (vec![Bool(true).into()], ColType::Boolean),
        (vec![Scalar::Str("2024-01-01T00:00:00Z")], ColType::Utf8),
        (vec![Null.into(), Null.into()], ColType::Utf8),
        (vec![Key(1).into(), Null.into()], ColType::Int64),
    ] {
        assert_eq!(
            resolve("t", &col(cells.clone()), None),
            (want, None),
            "{cells:?}"
        );
    }
}

#[test]
fn conflicting_values_are_strings_and_reported() {
    use Cell::*;
    let (t, c) = resolve(
        "t",
        &col(vec![Int(1).into(), Scalar::Str("x"), Bool(true).into()]),
        None,
    );
    assert_eq!(t, ColType::Utf8);
    assert_eq!(c.unwrap().found, ["boolean", "integer", "string"]);
    // A scalar in one document and an array in another.
    let (t, c) = resolve("t", &col(vec![Int(1).into(), Key(2).into()]), None);
    assert_eq!(t, ColType::Utf8);
    assert_eq!(c.unwrap().found, ["integer", "array"]);
}

#[test]
fn declared_types_win_and_values_that_do_not_fit_are_a_conflict() {
    use Cell::*;
    assert_eq!(
        resolve("t", &col(vec![Int(1).into()]), Some(ColType::Float64)),
        (ColType::Float64, None)
    );
    let ts = col(vec![Scalar::Str("2024-03-05T10:00:00+01:00"), Null.into()]);
    assert_eq!(
        resolve("t", &ts, Some(ColType::Timestamp)),
        (ColType::Timestamp, None)
    );
    let (t, c) = resolve(
        "t",
        &col(vec![Scalar::Str("yesterday")]),
        Some(ColType::Timestamp),
    );
    assert_eq!(t, ColType::Utf8);
    assert_eq!(c.unwrap().declared, Some(ColType::Timestamp));
    let (t, c) = resolve("t", &col(vec![Float(1.5).into()]), Some(ColType::Int64));
    assert_eq!((t, c.is_some()), (ColType::Utf8, true));
}

#[test]
fn rfc3339_times_become_utc_microseconds() {
    assert_eq!(timestamp_micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
    assert_eq!(timestamp_micros("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(timestamp_micros("1970-01-01"), None);
}
