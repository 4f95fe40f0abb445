//! Archives and documents made up for tests and the benchmark: [`archive`] builds a ZIP the
//! way uploads arrive, [`document`] a nested survey document (structs, arrays of scalars, of
//! objects, of arrays, a timestamp), [`SURVEY_SCHEMA`] its JSON Schema.

use std::io::Write;

use serde_json::{Value, json};

/// The JSON Schema of [`document`] (dataset `survey`).
pub const SURVEY_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["taskRunUUID", "score"],
  "properties": {
    "taskRunUUID": {"type": "string"},
    "startDate": {"type": "string", "format": "date-time"},
    "score": {"type": "integer"},
    "ratio": {"type": "number"},
    "completed": {"type": "boolean"},
    "device": {"type": "object", "properties": {
      "model": {"type": "string"},
      "os": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}}}
    }},
    "tags": {"type": "array", "items": {"type": "string"}},
    "steps": {"type": "array", "items": {"type": "object", "properties": {
      "identifier": {"type": "string"},
      "startDate": {"type": "string", "format": "date-time"},
      "answers": {"type": "array", "items": {"type": "integer"}},
      "result": {"type": "object", "properties": {"value": {"type": "number"}}}
    }}},
    "motion": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
  }
}"#;

/// A ZIP of `members` (name, bytes), deflated, with a `metadata.json` for `record_id` of
/// `assessment_id` uploaded at `uploaded_on` (RFC 3339) first.
pub fn archive(
    record_id: &str,
    assessment_id: &str,
    uploaded_on: &str,
    members: &[(&str, &[u8])],
) -> Vec<u8> {
    let meta =
        json!({"recordId": record_id, "assessmentId": assessment_id, "uploadedOn": uploaded_on})
            .to_string();
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let all =
        std::iter::once((crate::archive::METADATA, meta.as_bytes())).chain(members.iter().copied());
    for (name, body) in all {
        w.start_file(name, opts).expect("a ZIP in memory");
        w.write_all(body).expect("a ZIP in memory");
    }
    w.finish().expect("a ZIP in memory");
    out.into_inner()
}

/// The `i`-th survey document: deterministic, with `steps` steps.
pub fn document(i: u64, steps: usize) -> Value {
    let minute = i % 60;
    json!({
        "taskRunUUID": format!("run-{i:08}"),
        "startDate": format!("2024-03-05T10:{minute:02}:00Z"),
        "score": (i * 7) % 100,
        "ratio": (i % 1000) as f64 / 8.0,
        "completed": !i.is_multiple_of(3),
        "device": {"model": format!("phone-{}", i % 5), "os": {"name": "iOS", "version": "17.2"}},
        "tags": ["morning", format!("cohort-{}", i % 4)],
        "steps": (0..steps).map(|s| json!({
            "identifier": format!("step-{s}"),
            "startDate": format!("2024-03-05T10:{minute:02}:{:02}Z", s % 60),
            "answers": [s, s + 1, (i + s as u64) % 10],
            "result": {"value": (s as f64) * 1.5}
        })).collect::<Vec<_>>(),
        "motion": [[0.1, 0.2, 9.8], [0.0, -0.1, 9.7]]
    })
}
