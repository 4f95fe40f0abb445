//! The CSV item reader of Distributed Map (`InputType: CSV`): RFC 4180 quoting, the
//! delimiters AWS accepts, a header row or given column names.

use serde_json::{Map, Value};

pub(super) fn csv_items(text: &str, config: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let delim = match config.get("CSVDelimiter").and_then(Value::as_str) {
        None | Some("COMMA") => ',',
        Some("SEMICOLON") => ';',
        Some("TAB") => '\t',
        Some("PIPE") => '|',
        Some("SPACE") => ' ',
        Some(other) => return Err(format!("unknown CSVDelimiter '{other}'")),
    };
    let mut rows = parse_csv(text, delim)?;
    let headers: Vec<String> = match config.get("CSVHeaderLocation").and_then(Value::as_str) {
        Some("GIVEN") => config
            .get("CSVHeaders")
            .and_then(Value::as_array)
            .ok_or("CSVHeaderLocation GIVEN needs CSVHeaders")?
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            rows.remove(0)
        }
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            if row.len() != headers.len() {
                return Err(format!(
                    "row {} has {} fields but there are {} headers",
                    i + 1,
                    row.len(),
                    headers.len()
                ));
            }
            Ok(Value::Object(
                headers
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(Value::String))
                    .collect(),
            ))
        })
        .collect()
}

pub(super) fn parse_csv(text: &str, delim: char) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.is_empty() {
            in_quotes = true;
        } else if c == delim {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            row.push(std::mem::take(&mut field));
            if !(row.len() == 1 && row[0].is_empty()) {
                rows.push(std::mem::take(&mut row));
            } else {
                row.clear();
            }
            any = false;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err("unterminated quoted field".into());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Writes a Map Run's results as AWS does: `Prefix/<run id>/manifest.json` plus
/// `SUCCEEDED_0.json` / `FAILED_0.json`; returns the Map state's result.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_and_delimiters() {
        let rows = parse_csv("a,b\n\"x,1\",\"he said \"\"hi\"\"\"\r\n3,4", ',').unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["a", "b"],
                vec!["x,1", "he said \"hi\""],
                vec!["3", "4"]
            ]
        );
        let items = csv_items("id;name\n1;x\n", &{
            let mut m = Map::new();
            m.insert("CSVDelimiter".into(), json!("SEMICOLON"));
            m
        })
        .unwrap();
        assert_eq!(items, vec![json!({"id": "1", "name": "x"})]);
    }
}
