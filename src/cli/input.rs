//! Reading `produce` input: CSV (RFC 4180, header row) or JSON lines, row by row, each valid
//! row as one JSON object and each malformed row as an error with its line number.
//!
//! CSV values are strings. A header may give its column a type with a suffix:
//! `qty:number`, `id:integer`, `active:boolean` (or `:bool`), `attrs:json`, `name:string`;
//! the field is then named without the suffix. A typed cell that is empty becomes `null`; one
//! that does not parse makes the row malformed. Suffixes that are not one of these types are
//! part of the name (`a:b` stays `a:b`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::Path;
use std::rc::Rc;

use serde_json::Value;

use crate::config::gosyntax::parse_bool;

/// The input syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Csv,
    JsonLines,
}

impl InputKind {
    pub fn from_option(value: &str) -> Option<InputKind> {
        match value {
            "csv" => Some(InputKind::Csv),
            "jsonl" | "ndjson" | "json" => Some(InputKind::JsonLines),
            _ => None,
        }
    }

    /// By file extension: `.csv`, or `.jsonl` / `.ndjson` / `.json` (JSON lines).
    pub fn from_path(path: &str) -> Option<InputKind> {
        let extension = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        Self::from_option(&extension)
    }
}

/// One valid input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line the row starts on (1-based; the CSV header is line 1).
    pub line: u64,
    /// The row as one compact JSON object, fields in input order, number literals as written.
    pub json: String,
    /// The fields, for partition keys and `--raw-field`.
    pub fields: serde_json::Map<String, Value>,
    /// The row's own text: the JSON line as it is in the input (without its line end), or the
    /// CSV record written again as one RFC 4180 record (quoted where needed, no line end).
    pub raw: Vec<u8>,
}

/// A malformed row; reading goes on after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// What reading gives: a row, a malformed row, or (last) an error that ends the input.
#[derive(Debug)]
pub enum Item {
    Row(Row),
    Malformed(RowError),
    Fatal(String),
}

/// Reads rows from `reader` and hands each to `emit` until the input ends, `max_rows` valid
/// rows were read, or `emit` returns false. Blocking.
pub fn read_rows(
    reader: Box<dyn Read + Send>,
    kind: InputKind,
    max_rows: Option<u64>,
    mut emit: impl FnMut(Item) -> bool,
) {
    let mut valid = 0u64;
    let mut emit_counted = |item: Item| -> bool {
        let is_row = matches!(item, Item::Row(_));
        if !emit(item) {
            return false;
        }
        if is_row {
            valid += 1;
            if max_rows.is_some_and(|max| valid >= max) {
                return false;
            }
        }
        true
    };
    if max_rows == Some(0) {
        return;
    }
    match kind {
        InputKind::Csv => read_csv(reader, &mut emit_counted),
        InputKind::JsonLines => read_json_lines(reader, &mut emit_counted),
    }
}

// -- CSV -------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    String,
    Number,
    Integer,
    Boolean,
    Json,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: ColumnType,
}

fn column(header: &str) -> Column {
    if let Some((name, suffix)) = header.rsplit_once(':') {
        let kind = match suffix.trim() {
            "string" => Some(ColumnType::String),
            "number" => Some(ColumnType::Number),
            "integer" | "int" => Some(ColumnType::Integer),
            "boolean" | "bool" => Some(ColumnType::Boolean),
            "json" => Some(ColumnType::Json),
            _ => None,
        };
        if let Some(kind) = kind {
            return Column {
                name: name.to_string(),
                kind,
            };
        }
    }
    Column {
        name: header.to_string(),
        kind: ColumnType::String,
    }
}

fn columns(headers: &csv::StringRecord) -> Result<Vec<Column>, String> {
    let columns: Vec<Column> = headers.iter().map(column).collect();
    for (i, c) in columns.iter().enumerate() {
        if c.name.is_empty() {
            return Err(format!(
                "line 1: column {} of the CSV header has no name",
                i + 1
            ));
        }
        if columns[..i].iter().any(|other| other.name == c.name) {
            return Err(format!(
                "line 1: the CSV header names the column {:?} twice",
                c.name
            ));
        }
    }
    Ok(columns)
}

/// A typed cell as JSON text, and its value.
fn cell(column: &Column, text: &str) -> Result<(String, Value), String> {
    let typed_empty = column.kind != ColumnType::String && text.trim().is_empty();
    if typed_empty {
        return Ok(("null".into(), Value::Null));
    }
    let invalid = |what: &str| format!("column {:?}: {text:?} is not {what}", column.name);
    match column.kind {
        ColumnType::String => Ok((
            super::common::json_string(text),
            Value::String(text.to_string()),
        )),
        ColumnType::Number | ColumnType::Integer => {
            let literal = text.trim();
            match serde_json::from_str::<Value>(literal) {
                Ok(Value::Number(n)) => {
                    let integral = literal.bytes().all(|b| b.is_ascii_digit() || b == b'-');
                    if column.kind == ColumnType::Integer && !integral {
                        return Err(invalid("an integer"));
                    }
                    Ok((literal.to_string(), Value::Number(n)))
                }
                _ if column.kind == ColumnType::Integer => Err(invalid("an integer")),
                _ => Err(invalid("a JSON number")),
            }
        }
        ColumnType::Boolean => match parse_bool(text.trim()) {
            Some(b) => Ok((b.to_string(), Value::Bool(b))),
            None => Err(invalid("a boolean (true/false, 1/0, t/f)")),
        },
        ColumnType::Json => match serde_json::from_str::<Value>(text) {
            Ok(value) => Ok((minify_json(text), value)),
            Err(e) => Err(format!(
                "column {:?}: not JSON ({})",
                column.name,
                json_error_text(&e)
            )),
        },
    }
}

/// A run of line-end bytes (`\r`, `\n`) in the input: `[start, end)` and its `\n` offsets.
struct LineEnds {
    start: u64,
    end: u64,
    newlines: Vec<u64>,
}

/// Remembers the runs of line-end bytes the csv reader has not moved past. The csv crate
/// starts a record where the previous one ended, which after `\r\n` or blank lines is still
/// before some line ends; its line number is then too small.
struct LineTracker<R> {
    inner: R,
    offset: u64,
    runs: Rc<RefCell<VecDeque<LineEnds>>>,
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut runs = self.runs.borrow_mut();
        for (i, &b) in buf[..n].iter().enumerate() {
            if b != b'\n' && b != b'\r' {
                continue;
            }
            let at = self.offset + i as u64;
            let run = match runs.back_mut() {
                Some(run) if run.end == at => run,
                _ => {
                    runs.push_back(LineEnds {
                        start: at,
                        end: at,
                        newlines: Vec::new(),
                    });
                    runs.back_mut().expect("just pushed")
                }
            };
            run.end = at + 1;
            if b == b'\n' {
                run.newlines.push(at);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The line a record starting at `position` really starts on. Positions only move forward.
fn line_of(position: Option<&csv::Position>, runs: &RefCell<VecDeque<LineEnds>>) -> u64 {
    let Some(position) = position else { return 0 };
    let at = position.byte();
    let mut runs = runs.borrow_mut();
    while runs.front().is_some_and(|run| run.end <= at) {
        runs.pop_front();
    }
    let skipped = match runs.front() {
        Some(run) if run.start <= at => run.newlines.iter().filter(|&&n| n >= at).count(),
        _ => 0,
    };
    position.line() + skipped as u64
}

fn read_csv(reader: Box<dyn Read + Send>, emit: &mut dyn FnMut(Item) -> bool) {
    let line_ends = Rc::new(RefCell::new(VecDeque::new()));
    let mut csv_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(LineTracker {
            inner: reader,
            offset: 0,
            runs: line_ends.clone(),
        });
    let columns = match csv_reader.headers() {
        Ok(headers) if headers.is_empty() => {
            emit(Item::Fatal(
                "the CSV input is empty: it needs a header row".into(),
            ));
            return;
        }
        Ok(headers) => match columns(headers) {
            Ok(columns) => columns,
            Err(e) => {
                emit(Item::Fatal(e));
                return;
            }
        },
        Err(e) => {
            emit(Item::Fatal(format!("reading the CSV header failed: {e}")));
            return;
        }
    };
    let mut record = csv::StringRecord::new();
    loop {
        match csv_reader.read_record(&mut record) {
            Ok(false) => return,
            Ok(true) => {
                let line = line_of(record.position(), &line_ends);
                let item = match csv_row(&columns, &record, line) {
                    Ok(row) => Item::Row(row),
                    Err(message) => Item::Malformed(RowError { line, message }),
                };
                if !emit(item) {
                    return;
                }
            }
            Err(error) => {
                let item = match error.kind() {
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => Item::Malformed(RowError {
                        line: line_of(pos.as_ref(), &line_ends),
                        message: format!(
                            "the row has {len} field{}, the header has {expected_len}",
                            if *len == 1 { "" } else { "s" }
                        ),
                    }),
                    csv::ErrorKind::Utf8 { pos, err } => Item::Malformed(RowError {
                        line: line_of(pos.as_ref(), &line_ends),
                        message: format!("field {} is not valid UTF-8", err.field() + 1),
                    }),
                    _ => Item::Fatal(format!("reading the CSV input failed: {error}")),
                };
                let fatal = matches!(item, Item::Fatal(_));
                if !emit(item) || fatal {
                    return;
                }
            }
        }
    }
}

fn csv_row(columns: &[Column], record: &csv::StringRecord, line: u64) -> Result<Row, String> {
    let mut json = String::from("{");
    let mut fields = serde_json::Map::new();
    for (i, (column, text)) in columns.iter().zip(record.iter()).enumerate() {
        let (literal, value) = cell(column, text)?;
        if i > 0 {
            json.push(',');
        }
        json.push_str(&super::common::json_string(&column.name));
        json.push(':');
        json.push_str(&literal);
        fields.insert(column.name.clone(), value);
    }
    json.push('}');
    let mut raw = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    raw.write_record(record)
        .map_err(|e| format!("re-encoding the row failed: {e}"))?;
    let mut raw = raw
        .into_inner()
        .map_err(|e| format!("re-encoding the row failed: {e}"))?;
    if raw.last() == Some(&b'\n') {
        raw.pop();
    }
    Ok(Row {
        line,
        json,
        fields,
        raw,
    })
}

// -- JSON lines ------------------------------------------------------------------------------

fn read_json_lines(reader: Box<dyn Read + Send>, emit: &mut dyn FnMut(Item) -> bool) {
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, reader);
    let mut buffer = Vec::new();
    let mut line = 0u64;
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                emit(Item::Fatal(format!("reading the input failed: {e}")));
                return;
            }
        }
        line += 1;
        if buffer.last() == Some(&b'\n') {
            buffer.pop();
            if buffer.last() == Some(&b'\r') {
                buffer.pop();
            }
        }
        // Blank lines separate nothing: they are not rows.
        if buffer.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let item = match json_row(&buffer, line) {
            Ok(row) => Item::Row(row),
            Err(message) => Item::Malformed(RowError { line, message }),
        };
        if !emit(item) {
            return;
        }
    }
}

fn json_row(bytes: &[u8], line: u64) -> Result<Row, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid UTF-8 (at byte {}), so not a JSON line",
            e.valid_up_to() + 1
        )
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(Row {
            line,
            json: minify_json(text),
            fields,
            raw: bytes.to_vec(),
        }),
        Ok(other) => Err(format!(
            "the line is JSON but not an object ({}); each line must be one JSON object",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        )),
        Err(e) => Err(format!("invalid JSON: {}", json_error_text(&e))),
    }
}

/// serde_json's message with "column N" (the line is always 1 within a line).
fn json_error_text(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    format!("{message} at column {}", error.column())
}

/// Valid JSON text without the whitespace between tokens (strings untouched).
pub(crate) fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: InputKind, input: &str, max: Option<u64>) -> Vec<Item> {
        let mut items = Vec::new();
        read_rows(
            Box::new(std::io::Cursor::new(input.to_string().into_bytes())),
            kind,
            max,
            |item| {
                items.push(item);
                true
            },
        );
        items
    }

    fn rows(items: &[Item]) -> Vec<&Row> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Row(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn malformed(items: &[Item]) -> Vec<&RowError> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Malformed(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn kinds_by_extension_and_option() {
        assert_eq!(InputKind::from_path("a/b.CSV"), Some(InputKind::Csv));
        assert_eq!(InputKind::from_path("x.ndjson"), Some(InputKind::JsonLines));
        assert_eq!(InputKind::from_path("x.json"), Some(InputKind::JsonLines));
        assert_eq!(InputKind::from_path("x.txt"), None);
        assert_eq!(InputKind::from_path("-"), None);
        assert_eq!(InputKind::from_option("jsonl"), Some(InputKind::JsonLines));
    }

    #[test]
    fn csv_quotes_newlines_commas_and_line_numbers() {
        let input = "\u{feff}id,name,note\n1,\"Smith, Jane\",\"line one\nline two\"\n2,Bob,\"say \"\"hi\"\"\"\r\n3,Ünïcødé,\n";
        let items = read(InputKind::Csv, input, None);
        let rows = rows(&items);
        assert_eq!(rows.len(), 3, "{items:?}");
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            rows[0].json,
            r#"{"id":"1","name":"Smith, Jane","note":"line one\nline two"}"#
        );
        assert_eq!(rows[0].raw, b"1,\"Smith, Jane\",\"line one\nline two\"");
        // The quoted newline makes the next row start on line 4.
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].fields["note"], "say \"hi\"");
        assert_eq!(rows[2].line, 5);
        assert_eq!(rows[2].json, r#"{"id":"3","name":"Ünïcødé","note":""}"#);
    }

    #[test]
    fn csv_line_numbers_with_crlf_line_ends_and_blank_lines() {
        for end in ["\r\n", "\n"] {
            let input = "a,b\r\n1,\"x\r\ny\"\r\n3,4,5\r\n6,7\r\n\r\n\r\n8,9\r\n\r\n10,\"\r\n\"\r\n"
                .replace("\r\n", end);
            let items = read(InputKind::Csv, &input, None);
            let lines: Vec<u64> = rows(&items).iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 5, 8, 10], "{end:?}: {items:?}");
            assert_eq!(malformed(&items)[0].line, 4, "{end:?}");
        }
    }

    #[test]
    fn csv_typed_columns() {
        let input = "id:integer,price:number,ok:bool,attrs:json,a:b,label:string\n7,1.50,true,\"{\"\"x\"\": [1, 2]}\",c,042\n8,,0,,d,\n";
        let items = read(InputKind::Csv, input, None);
        let rows = rows(&items);
        assert_eq!(rows.len(), 2, "{items:?}");
        assert_eq!(
            rows[0].json,
            r#"{"id":7,"price":1.50,"ok":true,"attrs":{"x":[1,2]},"a:b":"c","label":"042"}"#
        );
        assert_eq!(
            rows[1].json,
            r#"{"id":8,"price":null,"ok":false,"attrs":null,"a:b":"d","label":""}"#
        );
        assert_eq!(rows[0].fields["id"], 7);
    }

    #[test]
    fn csv_malformed_rows_are_reported_and_reading_goes_on() {
        let input = "id:number,name\n1,a\n2,\"b\nb\",extra\nx,c\n4,d\n";
        let items = read(InputKind::Csv, input, None);
        let bad = malformed(&items);
        assert_eq!(bad.len(), 2, "{items:?}");
        assert_eq!(bad[0].line, 3);
        assert!(
            bad[0].message.contains("3 fields, the header has 2"),
            "{bad:?}"
        );
        assert_eq!(bad[1].line, 5);
        assert!(
            bad[1].message.contains("\"x\" is not a JSON number"),
            "{bad:?}"
        );
        let good: Vec<u64> = rows(&items).iter().map(|r| r.line).collect();
        assert_eq!(good, [2, 6]);
    }

    #[test]
    fn csv_header_problems_are_fatal() {
        let items = read(InputKind::Csv, "", None);
        assert!(
            matches!(&items[..], [Item::Fatal(m)] if m.contains("header")),
            "{items:?}"
        );
        let items = read(InputKind::Csv, "a,a:number\n1,2\n", None);
        assert!(
            matches!(&items[..], [Item::Fatal(m)] if m.contains("twice")),
            "{items:?}"
        );
    }

    #[test]
    fn json_lines() {
        let input = "{\"b\": 1.50, \"a\": \"x y\"}\n\n  \n[1]\n{\"a\":\n{\"z\":true}\r\n";
        let items = read(InputKind::JsonLines, input, None);
        let rows = rows(&items);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].json, r#"{"b":1.50,"a":"x y"}"#);
        assert_eq!(rows[0].raw, br#"{"b": 1.50, "a": "x y"}"#);
        assert_eq!(rows[1].line, 6);
        assert_eq!(rows[1].raw, br#"{"z":true}"#);
        let bad = malformed(&items);
        assert_eq!(bad[0].line, 4);
        assert!(
            bad[0].message.contains("not an object (an array)"),
            "{bad:?}"
        );
        assert_eq!(bad[1].line, 5);
        assert!(bad[1].message.starts_with("invalid JSON: EOF"), "{bad:?}");
        assert!(bad[1].message.ends_with("at column 5"), "{bad:?}");
    }

    #[test]
    fn max_rows_counts_valid_rows_only() {
        let input = "{\"n\":1}\nbad\n{\"n\":2}\n{\"n\":3}\n";
        let items = read(InputKind::JsonLines, input, Some(2));
        assert_eq!(rows(&items).len(), 2);
        assert_eq!(malformed(&items).len(), 1);
        assert!(read(InputKind::JsonLines, input, Some(0)).is_empty());
    }

    #[test]
    fn minifies_outside_strings() {
        assert_eq!(
            minify_json("{ \"a b\" : [ 1 ,\n 2 ], \"c\\\" d\": \"\\\\\" }"),
            r#"{"a b":[1,2],"c\" d":"\\"}"#
        );
    }
}
