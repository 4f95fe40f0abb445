//! Reading one archive: a ZIP holding `metadata.json` (the record's id, assessment, upload
//! time and schema version) and JSON documents, one per `NAME.json` member or one per line of
//! a `NAME.jsonl` / `NAME.ndjson` member, of the dataset `NAME`. Members are read one at a
//! time, each under the document size limit, so memory holds one document at a time.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;

use crate::doc::{Doc, Reader};
use crate::error::RelzError;

/// The record an archive holds (its `metadata.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `recordId`: names the output files (reprocessing replaces them).
    pub record_id: String,
    /// `assessmentId`: the `assessmentid=` partition.
    pub assessment_id: String,
    /// `uploadedOn` (RFC 3339): the `year=/month=/day=` partitions, in UTC.
    pub uploaded_on: DateTime<Utc>,
    /// `schemaVersion` (default 1): which schema of each dataset validates its documents.
    pub schema_version: u32,
}

impl Metadata {
    /// `assessmentid=A/year=Y/month=M/day=D` (month and day without leading zeros).
    pub fn partition(&self) -> String {
        let d = self.uploaded_on;
        format!(
            "assessmentid={}/year={}/month={}/day={}",
            self.assessment_id,
            d.year(),
            d.month(),
            d.day()
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMetadata {
    record_id: String,
    assessment_id: String,
    uploaded_on: String,
    #[serde(default = "one")]
    schema_version: u32,
}

fn one() -> u32 {
    1
}

/// The name of the member holding the record's metadata.
pub const METADATA: &str = "metadata.json";

/// Whether `s` can name a file, a partition or a dataset: `[A-Za-z0-9_.-]+`, not starting
/// with `.` or `_` (folders starting with `_` hold the quarantine).
pub fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '_'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// One document of the archive, or why a member (or one of its lines) is set aside.
#[derive(Debug)]
pub enum Item<'a> {
    /// A JSON object of the dataset `dataset`, borrowed from the reader's buffer.
    Doc {
        /// The member's name.
        member: &'a str,
        /// Its line (from 1) in a `.jsonl` member.
        line: Option<usize>,
        /// The dataset (the member's file name without extension).
        dataset: &'a str,
        /// The document (its root is an object).
        doc: &'a Doc<'a>,
    },
    /// Not a usable document.
    Bad {
        /// The member's name.
        member: String,
        /// Its line (from 1) in a `.jsonl` member.
        line: Option<usize>,
        /// The dataset, when the member's name gives a usable one.
        dataset: Option<String>,
        /// Why.
        reason: String,
        /// The text as read (lossy UTF-8), when it was within the size limit.
        text: Option<String>,
    },
}

enum Kind {
    One,
    Lines,
}

/// The dataset and kind of a member name, or why it is not a JSON member.
fn member_kind(name: &str) -> (Option<String>, Result<Kind, String>) {
    let file = name.rsplit('/').next().unwrap_or(name);
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    let kind = match ext {
        "json" => Ok(Kind::One),
        "jsonl" | "ndjson" => Ok(Kind::Lines),
        _ => Err("not a JSON member (.json, .jsonl or .ndjson)".to_owned()),
    };
    if !plain_name(stem) {
        return (
            None,
            Err(format!(
                "the member's name does not give a usable dataset name ({stem:?}: letters, digits, `_`, `-`, `.`, not starting with `_` or `.`)"
            )),
        );
    }
    (Some(stem.to_owned()), kind)
}

/// An open archive.
pub struct Archive {
    zip: zip::ZipArchive<std::io::BufReader<File>>,
    name: String,
}

impl Archive {
    /// Opens the ZIP at `path` (the archive `name`, for messages).
    pub fn open(path: &Path, name: &str) -> Result<Self, RelzError> {
        let corrupt = |reason: String| RelzError::CorruptArchive {
            archive: name.to_owned(),
            reason,
        };
        let file = File::open(path)?;
        let zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Archive {
            zip,
            name: name.to_owned(),
        })
    }

    /// The record's metadata.
    pub fn metadata(&mut self) -> Result<Metadata, RelzError> {
        let archive = self.name.clone();
        let bad = |reason: String| RelzError::BadMetadata {
            archive: archive.clone(),
            reason,
        };
        let corrupt = |reason: String| RelzError::CorruptArchive {
            archive: archive.clone(),
            reason,
        };
        let mut text = Vec::new();
        match self.zip.by_name(METADATA) {
            Ok(f) => {
                f.take(1 << 20)
                    .read_to_end(&mut text)
                    .map_err(|e| corrupt(format!("{METADATA}: {e}")))?;
            }
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(bad(format!("it has no {METADATA} member")));
            }
            Err(e) => return Err(corrupt(e.to_string())),
        }
        let raw: RawMetadata = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("{METADATA} is not valid: {e}")))?;
        for (field, v) in [
            ("recordId", &raw.record_id),
            ("assessmentId", &raw.assessment_id),
        ] {
            if !plain_name(v) {
                return Err(bad(format!(
                    "{METADATA}: {field} must be letters, digits, `_`, `-`, `.` (not starting with `.` or `_`)"
                )));
            }
        }
        let uploaded_on = DateTime::parse_from_rfc3339(&raw.uploaded_on)
            .map_err(|e| {
                bad(format!(
                    "{METADATA}: uploadedOn is not an RFC 3339 time: {e}"
                ))
            })?
            .with_timezone(&Utc);
        Ok(Metadata {
            record_id: raw.record_id,
            assessment_id: raw.assessment_id,
            uploaded_on,
            schema_version: raw.schema_version,
        })
    }

    /// The datasets the archive's JSON members belong to, sorted, without repeats.
    pub fn datasets(&mut self) -> Result<Vec<String>, RelzError> {
        let mut out = Vec::new();
        for i in 0..self.zip.len() {
            let entry = self
                .zip
                .by_index_raw(i)
                .map_err(|e| RelzError::CorruptArchive {
                    archive: self.name.clone(),
                    reason: e.to_string(),
                })?;
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            if entry.is_dir() || name == METADATA {
                continue;
            }
            if let (Some(d), Ok(_)) = member_kind(&name) {
                out.push(d);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Calls `f` with every document (or set-aside member) in the archive's order; a
    /// document over `max_bytes` is set aside unread.
    pub fn for_each(
        &mut self,
        max_bytes: u64,
        mut f: impl FnMut(Item<'_>) -> Result<(), RelzError>,
    ) -> Result<(), RelzError> {
        let mut docs = Reader::default();
        for i in 0..self.zip.len() {
            let entry = self
                .zip
                .by_index(i)
                .map_err(|e| RelzError::CorruptArchive {
                    archive: self.name.clone(),
                    reason: e.to_string(),
                })?;
            let member = String::from_utf8_lossy(entry.name_raw()).into_owned();
            if entry.is_dir() || member == METADATA {
                continue;
            }
            let (dataset, kind) = member_kind(&member);
            let bad = |line, reason: String, text| Item::Bad {
                member: member.clone(),
                line,
                dataset: dataset.clone(),
                reason,
                text,
            };
            match kind {
                Err(reason) => f(bad(None, reason, None))?,
                Ok(Kind::One) => {
                    let declared = entry.size();
                    if declared > max_bytes {
                        f(bad(None, too_big(declared, max_bytes), None))?;
                        continue;
                    }
                    let mut buf = Vec::new();
                    entry
                        .take(max_bytes + 1)
                        .read_to_end(&mut buf)
                        .map_err(|e| corrupt_member(&self.name, &member, e))?;
                    if buf.len() as u64 > max_bytes {
                        f(bad(None, too_big(buf.len() as u64, max_bytes), None))?;
                        continue;
                    }
                    parse(&mut docs, &member, None, dataset.as_deref(), &buf, &mut f)?;
                }
                Ok(Kind::Lines) => {
                    let mut reader = BufReader::with_capacity(LINE_BUFFER, entry);
                    let mut buf = Vec::new();
                    let mut line = 0;
                    loop {
                        buf.clear();
                        line += 1;
                        // A line whole in the reader's buffer is parsed there, without a copy.
                        let chunk = reader
                            .fill_buf()
                            .map_err(|e| corrupt_member(&self.name, &member, e))?;
                        if let Some(end) = memchr::memchr(b'\n', chunk)
                            && end as u64 <= max_bytes
                        {
                            let text = &chunk[..=end];
                            if !text.iter().all(u8::is_ascii_whitespace) {
                                parse(
                                    &mut docs,
                                    &member,
                                    Some(line),
                                    dataset.as_deref(),
                                    text,
                                    &mut f,
                                )?;
                            }
                            reader.consume(end + 1);
                            continue;
                        }
                        let n = (&mut reader)
                            .take(max_bytes + 1)
                            .read_until(b'\n', &mut buf)
                            .map_err(|e| corrupt_member(&self.name, &member, e))?;
                        if n == 0 {
                            break;
                        }
                        if buf.len() as u64 > max_bytes && buf.last() != Some(&b'\n') {
                            // Skip the rest of the line without holding it.
                            let mut rest = buf.len() as u64;
                            loop {
                                let chunk = reader
                                    .fill_buf()
                                    .map_err(|e| corrupt_member(&self.name, &member, e))?;
                                if chunk.is_empty() {
                                    break;
                                }
                                let (used, done) = match chunk.iter().position(|b| *b == b'\n') {
                                    Some(p) => (p + 1, true),
                                    None => (chunk.len(), false),
                                };
                                rest += used as u64;
                                reader.consume(used);
                                if done {
                                    break;
                                }
                            }
                            f(bad(Some(line), too_big(rest, max_bytes), None))?;
                            continue;
                        }
                        if buf.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        parse(
                            &mut docs,
                            &member,
                            Some(line),
                            dataset.as_deref(),
                            &buf,
                            &mut f,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The buffer a `.jsonl` member is read through: lines within it are parsed in place.
const LINE_BUFFER: usize = 256 << 10;

fn too_big(size: u64, max: u64) -> String {
    format!("the document is {size} bytes, over the limit of {max} bytes (--max-document-bytes)")
}

fn corrupt_member(archive: &str, member: &str, e: std::io::Error) -> RelzError {
    RelzError::CorruptArchive {
        archive: archive.to_owned(),
        reason: format!("member {member}: {e}"),
    }
}

/// Parses the document `buf` with `reader` and hands it (or why it is not one) to `f`; its
/// nodes' memory goes back to `reader` for the next document.
fn parse(
    reader: &mut Reader,
    member: &str,
    line: Option<usize>,
    dataset: Option<&str>,
    buf: &[u8],
    f: &mut impl FnMut(Item<'_>) -> Result<(), RelzError>,
) -> Result<(), RelzError> {
    let bad = |reason: String| Item::Bad {
        member: member.to_owned(),
        line,
        dataset: dataset.map(str::to_owned),
        reason,
        text: Some(String::from_utf8_lossy(buf).into_owned()),
    };
    // Text checked as UTF-8 once is parsed faster than bytes (which check every string);
    // bytes that are not UTF-8 are parsed as bytes for the error's position.
    let parsed = match std::str::from_utf8(buf) {
        Ok(text) => reader.parse(text),
        Err(_) => reader.parse_slice(buf),
    };
    let doc = match parsed {
        Ok(doc) => doc,
        Err(e) => return f(bad(format!("not valid JSON: {e}"))),
    };
    let done = match (doc.root_object(), dataset) {
        (Some(_), Some(dataset)) => f(Item::Doc {
            member,
            line,
            dataset,
            doc: &doc,
        }),
        (Some(_), None) => f(bad("no usable dataset name".into())),
        (None, _) => f(bad("the document is not a JSON object".into())),
    };
    reader.recycle(doc);
    done
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// What `for_each` gives for a `.jsonl` member `body` with the limit `max`: each line's
    /// number and its document's `n`, or why it was set aside.
    fn lines_of(body: &[u8], max: u64) -> Vec<(usize, Result<i64, String>)> {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(file.reopen().unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("survey.jsonl", opts).unwrap();
        w.write_all(body).unwrap();
        w.finish().unwrap();
        let mut archive = Archive::open(file.path(), "t.zip").unwrap();
        let mut out = Vec::new();
        archive
            .for_each(max, |item| {
                out.push(match item {
                    Item::Doc { line, doc, .. } => {
                        (line.unwrap(), Ok(doc.to_value()["n"].as_i64().unwrap()))
                    }
                    Item::Bad { line, reason, .. } => (line.unwrap(), Err(reason)),
                });
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn lines_across_the_read_buffer_and_at_the_size_limit_are_read_alike() {
        // About 1.2 MB of lines of 20 to about 1,000 bytes: several cross the edge of the
        // read buffer (parsed from a copy), the others are parsed in place; among them lines
        // of exactly the limit, one byte over it, blank ones, and a last one without newline.
        let max = 1000;
        let mut body = String::new();
        let mut expected = Vec::new();
        let mut n = 0;
        for line in 1..=2500 {
            n += 1;
            let text = match line % 500 {
                7 => " \t".to_owned(),
                11 => {
                    let text = format!(r#"{{"n": {n}, "pad": ""}}"#);
                    format!(r#"{{"n": {n}, "pad": "{}"}}"#, "x".repeat(max - text.len()))
                }
                13 => {
                    let text = format!(r#"{{"n": {n}, "pad": ""}}"#);
                    format!(
                        r#"{{"n": {n}, "pad": "{}"}}"#,
                        "x".repeat(max + 1 - text.len())
                    )
                }
                _ => format!(r#"{{"n": {n}, "pad": "{}"}}"#, "y".repeat(line * 37 % 960)),
            };
            // A blank line gives nothing.
            if text.len() > max {
                expected.push((line, Err(text.len())));
            } else if !text.trim().is_empty() {
                expected.push((line, Ok(n)));
            }
            body.push_str(&text);
            if line < 2500 {
                body.push('\n');
            }
        }
        assert!(body.len() > 4 * LINE_BUFFER, "{}", body.len());
        let got = lines_of(body.as_bytes(), max as u64);
        assert_eq!(got.len(), expected.len());
        for ((line, got), (want_line, want)) in got.iter().zip(&expected) {
            assert_eq!(line, want_line);
            match (got, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "line {line}"),
                (Err(reason), Err(len)) => {
                    // The size counts the line's newline.
                    let size = format!("the document is {} bytes, over the limit", len + 1);
                    assert!(reason.contains(&size), "line {line}: {reason}");
                }
                _ => panic!("line {line}: {got:?}, expected {want:?}"),
            }
        }
    }
}
