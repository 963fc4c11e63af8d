//! Go templates as the Go Kinesis connector (v0.2.0) runs them, translated to Handlebars.
//!
//! The Go connector executes `partitionKeyTemplate` with Go's `text/template` on an
//! `opencdc.Record` of conduit-commons v0.4.0 and prints every value with fmt's `%v` rules. A
//! subset of that language is translated here to Handlebars calling two helpers that follow
//! the same rules, so that a pipeline moves over without edits and gets the same keys:
//!
//! | Go template | Handlebars |
//! |---|---|
//! | literal text | the same text |
//! | `{{ .Key }}`, `{{ .Payload.After.id }}` (a field chain) | `{{go Key}}`, `{{go Payload.After.id}}` |
//! | `{{ index .Metadata "opencdc.collection" }}` | `{{go (index Metadata "opencdc.collection")}}` |
//! | `{{ index .Payload.After "tags" 0 }}` (string and integer keys) | `{{go (index Payload.After "tags" 0)}}` |
//! | `{{-` / `-}}` | applied to the text during the translation |
//! | `{{/* comment */}}` | dropped |
//!
//! Anything else (pipelines, functions other than `index`, `if`, `range`, `with`, variables,
//! methods such as `.Key.Bytes` or `.Metadata.GetCollection`) is outside the subset and refused.
//!
//! What `go` prints, by the Go type at that place (checked against Go 1.26 and
//! conduit-commons v0.4.0, see the tests):
//!
//! * `.Key`, `.Payload.Before`, `.Payload.After` (`opencdc.Data`): raw data is a `[]byte`
//!   without a `String` method, so `abc` prints `[97 98 99]`; structured data is a map; a
//!   missing one prints `<nil>`.
//! * `.Position` (`opencdc.Position` has a `String` method): its bytes as text, `<nil>` when
//!   empty. `.Operation`: `create`, `update`, `delete`, `snapshot`, else `Operation(n)`.
//! * `.Metadata`, structured data and maps inside it: `map[k1:v1 k2:v2]`, keys sorted.
//! * Numbers of structured data are `float64` (Conduit carries them in a protobuf `Struct`):
//!   shortest digits, exponent form below 1e-4 and from 1e6 on (`1234567` prints
//!   `1.234567e+06`); NaN and infinities arrive as the strings `NaN`, `Infinity`, `-Infinity`.
//!   Integers the schema decoder keeps exact (beyond 2^53) print their digits, as Go's
//!   `int64` does.
//! * A missing map key (`.Metadata.x`, `.Payload.After.x`) and a null field print
//!   `<no value>`; `index` on a missing metadata key gives the empty string (the zero value
//!   of `string`). Lists print as `[a b c]`, nulls inside values as `<nil>`.
//!
//! Where Go fails the template (a field of raw data or of a missing `Data`, an index out of
//! range, a key of the wrong type), rendering fails here too; the Go connector then fails the
//! whole batch, this one nacks the record.
//!
//! # The typed view
//!
//! The Handlebars context of a template that uses these helpers carries, under [`VIEW_KEY`],
//! the record as Go sees it (built by [`view`]): raw bytes as a tagged string (never text),
//! numbers of structured data as JSON floats. The ordinary fields of the context are not
//! changed, so `{{Key}}` still renders the key as text.

use std::fmt::Write as _;

use handlebars::{
    Context, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::{Map, Value};

use crate::destination::exact::exact_integer;
use crate::proto::opencdc::v1::{data, Data, Operation, Record};

/// The context key under which the typed view of the record lives. Starts with a NUL, so no
/// ordinary path names it.
pub const VIEW_KEY: &str = "\u{0}go";

/// Marks raw bytes (hex after the tag) in the typed view, like [`crate::destination::exact`]
/// marks exact integers: control characters no record text starts with.
const BYTES_TAG: &str = "\u{0}\u{1}go-bytes:";

/// The fields of `opencdc.Record` a template can name.
const RECORD_FIELDS: [&str; 5] = ["Position", "Operation", "Metadata", "Key", "Payload"];

/// Exported methods of `opencdc.RawData` / `opencdc.StructuredData`: Go calls them instead of
/// looking up a field of that name.
const DATA_METHODS: [&str; 4] = ["Bytes", "Clone", "MarshalJSON", "ToProto"];

/// Which parts of the record a template reads, so the view carries only those (a raw payload
/// is not hex-encoded for a key template that reads `.Key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields(u8);

impl Fields {
    pub const ALL: Fields = Fields(0b1_1111);

    fn bit(name: &str) -> u8 {
        RECORD_FIELDS
            .iter()
            .position(|f| *f == name)
            .map_or(0, |i| 1 << i)
    }

    fn insert(&mut self, name: &str) {
        self.0 |= Self::bit(name);
    }

    fn contains(self, name: &str) -> bool {
        self.0 & Self::bit(name) != 0
    }
}

// ---------------------------------------------------------------------------------------------
// Translation

/// A Go template translated to Handlebars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub handlebars: String,
    pub fields: Fields,
}

/// Translates a Go template of the supported subset; the error says what is outside it.
pub fn translate(source: &str) -> Result<Translation, String> {
    let mut out = String::with_capacity(source.len() + 16);
    let mut fields = Fields::default();
    let mut rest = source;
    // Text waiting to be written: a following `{{-` may still trim its end.
    let mut text = String::new();
    let mut trim_next_text = false;
    loop {
        let Some(open) = rest.find("{{") else {
            push_text(&mut text, rest, trim_next_text);
            out.push_str(&text);
            break;
        };
        push_text(&mut text, &rest[..open], trim_next_text);
        rest = &rest[open + 2..];
        if has_left_trim(rest) {
            text.truncate(text.trim_end_matches(GO_SPACE).len());
            rest = &rest[2..];
        }
        let (action, right_trim, after) = split_action(rest)?;
        rest = after;
        trim_next_text = right_trim;
        let Some(mustache) = translate_action(action, &mut fields)? else {
            continue; // a comment
        };
        // Handlebars reads `\{{` as an escaped mustache and drops one backslash of `\\{{`:
        // text ending in backslashes gets one more.
        if text.ends_with('\\') {
            text.push('\\');
        }
        out.push_str(&text);
        text.clear();
        out.push_str(&mustache);
    }
    Ok(Translation {
        handlebars: out,
        fields,
    })
}

/// The white space Go's `{{-` and `-}}` trim.
const GO_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

fn push_text(text: &mut String, piece: &str, trim_start: bool) {
    if trim_start {
        text.push_str(piece.trim_start_matches(GO_SPACE));
    } else {
        text.push_str(piece);
    }
}

/// `{{- ` : a dash followed by white space.
fn has_left_trim(after_open: &str) -> bool {
    let mut chars = after_open.chars();
    chars.next() == Some('-') && chars.next().is_some_and(|c| GO_SPACE.contains(&c))
}

/// Splits off one action after `{{` (and a left trim marker): returns its inside, whether it
/// ends with ` -}}`, and what follows it. Quoted strings may contain `}}`.
fn split_action(rest: &str) -> Result<(&str, bool, &str), String> {
    if let Some(comment) = rest.trim_start_matches(GO_SPACE).strip_prefix("/*") {
        let end = comment
            .find("*/")
            .ok_or_else(|| "a comment is not closed".to_string())?;
        let after = &comment[end + 2..];
        return if let Some(after) = after.strip_prefix("}}") {
            Ok(("", false, after))
        } else if let Some(after) = strip_right_trim(after) {
            Ok(("", true, after))
        } else {
            Err("a comment ends before the closing }}".into())
        };
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'`' => {
                i += 1 + rest[i + 1..]
                    .find('`')
                    .ok_or_else(|| "a raw string is not closed".to_string())?;
                i += 1;
            }
            b'}' if rest[i..].starts_with("}}") => {
                let inside = &rest[..i];
                let after = &rest[i + 2..];
                // ` -}}`: white space, a dash, the delimiter.
                if let Some(body) = inside.strip_suffix('-') {
                    if body.ends_with(GO_SPACE) {
                        return Ok((body, true, after));
                    }
                }
                return Ok((inside, false, after));
            }
            _ => i += 1,
        }
    }
    Err("an action is not closed with }}".into())
}

fn strip_right_trim(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let space = chars.next()?;
    if !GO_SPACE.contains(&space) {
        return None;
    }
    chars.as_str().strip_prefix("-}}")
}

#[derive(Debug, PartialEq)]
enum Token {
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Int(u64),
}

fn tokens(action: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = action.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if GO_SPACE.contains(&c) {
            chars.next();
            continue;
        }
        let word_end = |from: usize| {
            action[from..]
                .find(|c: char| GO_SPACE.contains(&c))
                .map_or(action.len(), |n| from + n)
        };
        match c {
            '.' => {
                let end = word_end(start);
                let chain = &action[start..end];
                let mut segments = Vec::new();
                for segment in chain[1..].split('.') {
                    let mut cs = segment.chars();
                    let first_ok = cs.next().is_some_and(|c| c == '_' || c.is_alphabetic());
                    if !first_ok || !cs.all(|c| c == '_' || c.is_alphanumeric()) {
                        return Err(format!(
                            "{chain:?} is not a field chain such as .Payload.After.id"
                        ));
                    }
                    segments.push(segment.to_string());
                }
                out.push(Token::Field(segments));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            '"' | '`' => {
                let (value, len) = go_string(&action[start..])?;
                out.push(Token::Str(value));
                while chars.peek().is_some_and(|&(i, _)| i < start + len) {
                    chars.next();
                }
            }
            '0'..='9' => {
                let end = word_end(start);
                let digits = &action[start..end];
                let n = digits
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| digits.parse::<u64>().ok())
                    .flatten()
                    .filter(|n| *n <= i64::MAX as u64)
                    .ok_or_else(|| format!("{digits:?} is not a decimal integer"))?;
                out.push(Token::Int(n));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            c if c.is_alphabetic() => {
                let end = word_end(start);
                out.push(Token::Ident(action[start..end].to_string()));
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
            }
            other => return Err(format!("{other:?} is not part of the supported subset")),
        }
    }
    Ok(out)
}

/// A Go string literal at the start of `s`: its value and its length in `s`.
fn go_string(s: &str) -> Result<(String, usize), String> {
    if let Some(raw) = s.strip_prefix('`') {
        let end = raw
            .find('`')
            .ok_or_else(|| "a raw string is not closed".to_string())?;
        // Go drops carriage returns from raw strings.
        return Ok((raw[..end].replace('\r', ""), end + 2));
    }
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, i + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = chars.next().ok_or("a string is not closed")?;
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(c) = simple {
                    value.push(c);
                    continue;
                }
                let digits = match e {
                    'u' => 4,
                    'U' => 8,
                    _ => return Err(format!("the string escape \\{e} is not supported")),
                };
                let hex: String = (0..digits)
                    .filter_map(|_| chars.next())
                    .map(|(_, c)| c)
                    .collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == digits)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("\\{e}{hex} is not a valid escape"))?;
                value.push(c);
            }
            c => value.push(c),
        }
    }
    Err("a string is not closed".into())
}

/// One action as a Handlebars mustache; `None` for a comment.
fn translate_action(action: &str, fields: &mut Fields) -> Result<Option<String>, String> {
    if action.is_empty() {
        return Ok(None); // only comments are split off empty
    }
    let tokens = tokens(action)?;
    match tokens.as_slice() {
        [Token::Field(chain)] => {
            let path = record_path(chain, fields)?;
            Ok(Some(format!("{{{{go {path}}}}}")))
        }
        [Token::Ident(index), Token::Field(chain), keys @ ..] if index == "index" => {
            let mut mustache = format!("{{{{go (index {}", record_path(chain, fields)?);
            for key in keys {
                match key {
                    Token::Str(s) => {
                        mustache.push(' ');
                        mustache.push_str(&serde_json::to_string(s).map_err(|e| e.to_string())?);
                    }
                    Token::Int(n) => {
                        let _ = write!(mustache, " {n}");
                    }
                    _ => {
                        return Err(
                            "index takes a field chain and string or integer keys".to_string()
                        )
                    }
                }
            }
            mustache.push_str(")}}");
            Ok(Some(mustache))
        }
        [] => Err("an action is empty".into()),
        [Token::Ident(word), ..] => Err(format!(
            "{word:?} is outside the supported subset (field chains such as .Payload.After.id \
             and index)"
        )),
        _ => Err(
            "the supported subset is a field chain such as .Payload.After.id, or index \
                  with a field chain and string or integer keys"
                .into(),
        ),
    }
}

/// Checks a field chain against the record's Go types and writes it as a Handlebars path.
fn record_path(chain: &[String], fields: &mut Fields) -> Result<String, String> {
    let dotted = || format!(".{}", chain.join("."));
    let Some(first) = chain.first() else {
        return Err("`.` (the whole record) is outside the supported subset".into());
    };
    if !RECORD_FIELDS.contains(&first.as_str()) {
        return Err(format!(
            "{} is not a field of the record (Position, Operation, Metadata, Key, Payload)",
            dotted()
        ));
    }
    fields.insert(first);
    let second = chain.get(1).map(String::as_str);
    match (first.as_str(), second) {
        ("Position" | "Operation", Some(_)) => {
            return Err(format!("{}: {first} has no fields", dotted()))
        }
        ("Payload", Some(s)) if s != "Before" && s != "After" => {
            return Err(format!(
                "{}: Payload has the fields Before and After",
                dotted()
            ))
        }
        ("Metadata", Some(s)) if is_metadata_method(s) => {
            return Err(format!(
                "{}: {s} is a method of opencdc.Metadata; use index .Metadata \"{s}\" for a key \
                 of that name",
                dotted()
            ))
        }
        _ => {}
    }
    let data_field = match (first.as_str(), chain.get(2)) {
        ("Key", _) => chain.get(1),
        ("Payload", field) => field,
        _ => None,
    };
    if let Some(method) = data_field.filter(|f| DATA_METHODS.contains(&f.as_str())) {
        return Err(format!(
            "{}: {method} is a method of opencdc.Data, outside the supported subset",
            dotted()
        ));
    }
    let mut path = String::new();
    for (i, segment) in chain.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        let plain = segment != "this"
            && segment
                .bytes()
                .all(|b| b == b'_' || b.is_ascii_alphanumeric())
            && !segment.as_bytes()[0].is_ascii_digit();
        if plain {
            path.push_str(segment);
        } else {
            let _ = write!(path, "[{segment}]");
        }
    }
    Ok(path)
}

fn is_metadata_method(name: &str) -> bool {
    // Every exported method of opencdc.Metadata in conduit-commons v0.4.0 is a Get or Set.
    ["Get", "Set"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
    })
}

// ---------------------------------------------------------------------------------------------
// The typed view

/// The record as Go sees it, with only `fields` filled in (see the module docs).
pub fn view(record: &Record, fields: Fields) -> Value {
    let mut root = Map::new();
    if fields.contains("Position") {
        let position = if record.position.is_empty() {
            Value::Null // a nil Position: Go prints <nil>
        } else {
            bytes_value(&record.position)
        };
        root.insert("Position".into(), position);
    }
    if fields.contains("Operation") {
        root.insert("Operation".into(), Value::from(record.operation));
    }
    if fields.contains("Metadata") {
        let metadata = record
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        root.insert("Metadata".into(), Value::Object(metadata));
    }
    if fields.contains("Key") {
        root.insert("Key".into(), data_value(record.key.as_ref()));
    }
    if fields.contains("Payload") {
        let payload = record.payload.as_ref();
        let mut change = Map::new();
        change.insert(
            "Before".into(),
            data_value(payload.and_then(|p| p.before.as_ref())),
        );
        change.insert(
            "After".into(),
            data_value(payload.and_then(|p| p.after.as_ref())),
        );
        root.insert("Payload".into(), Value::Object(change));
    }
    Value::Object(root)
}

fn bytes_value(bytes: &[u8]) -> Value {
    let mut text = String::with_capacity(BYTES_TAG.len() + bytes.len() * 2);
    text.push_str(BYTES_TAG);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    Value::String(text)
}

fn tagged_bytes(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix(BYTES_TAG)?;
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn data_value(data: Option<&Data>) -> Value {
    match data.and_then(|d| d.data.as_ref()) {
        None => Value::Null,
        Some(data::Data::RawData(bytes)) => bytes_value(bytes),
        Some(data::Data::StructuredData(s)) => struct_value(s),
    }
}

fn struct_value(structure: &prost_types::Struct) -> Value {
    Value::Object(
        structure
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), proto_value(v)))
            .collect(),
    )
}

/// A protobuf `Value` as Go's `structpb.Value.AsInterface` gives it.
fn proto_value(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => match serde_json::Number::from_f64(*n) {
            Some(number) => Value::Number(number),
            // AsInterface turns what JSON cannot hold into these strings.
            None if n.is_nan() => Value::from("NaN"),
            None if *n > 0.0 => Value::from("Infinity"),
            None => Value::from("-Infinity"),
        },
        Some(Kind::StringValue(s)) => Value::from(s.as_str()),
        Some(Kind::BoolValue(b)) => Value::from(*b),
        Some(Kind::StructValue(s)) => struct_value(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(proto_value).collect()),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// A value reached by a field chain, with the Go type that decides how it prints.
#[derive(Debug, Clone, Copy)]
enum Go<'a> {
    Record(&'a Value),
    Position(&'a Value),
    Operation(&'a Value),
    Metadata(&'a Value),
    Payload(&'a Value),
    /// `opencdc.Data`: null (nil), tagged bytes (raw) or an object (structured).
    Data(&'a Value),
    /// An element of a map: `None` when the key is missing (Go's invalid value).
    /// `text`: an element of `Metadata`, whose type is `string`.
    Element {
        value: Option<&'a Value>,
        text: bool,
    },
}

const NULL: Value = Value::Null;

fn field<'a>(current: Go<'a>, name: &str) -> Result<Go<'a>, String> {
    let get = |v: &'a Value| v.as_object().and_then(|m| m.get(name));
    match current {
        Go::Record(root) => {
            let value = get(root).unwrap_or(&NULL);
            match name {
                "Position" => Ok(Go::Position(value)),
                "Operation" => Ok(Go::Operation(value)),
                "Metadata" => Ok(Go::Metadata(value)),
                "Key" => Ok(Go::Data(value)),
                "Payload" => Ok(Go::Payload(value)),
                _ => Err(format!(
                    "can't evaluate field {name} in type opencdc.Record"
                )),
            }
        }
        Go::Position(_) => Err(format!(
            "can't evaluate field {name} in type opencdc.Position"
        )),
        Go::Operation(_) => Err(format!(
            "can't evaluate field {name} in type opencdc.Operation"
        )),
        Go::Metadata(map) => Ok(Go::Element {
            value: get(map),
            text: true,
        }),
        Go::Payload(change) => match name {
            "Before" | "After" => Ok(Go::Data(get(change).unwrap_or(&NULL))),
            _ => Err(format!(
                "can't evaluate field {name} in type opencdc.Change"
            )),
        },
        Go::Data(Value::Null) => Err(format!("nil pointer evaluating opencdc.Data.{name}")),
        Go::Data(_) if DATA_METHODS.contains(&name) => Err(format!(
            "{name} is a method of opencdc.Data, outside the supported subset"
        )),
        Go::Data(Value::Object(map)) => Ok(Go::Element {
            value: map.get(name),
            text: false,
        }),
        Go::Data(_) => Err(format!("can't evaluate field {name} in type opencdc.Data")),
        Go::Element { value: None, .. } => Ok(current),
        Go::Element {
            value: Some(Value::Object(map)),
            ..
        } => Ok(Go::Element {
            value: map.get(name),
            text: false,
        }),
        Go::Element {
            value: Some(Value::Null),
            ..
        } => Err(format!("nil pointer evaluating interface {{}}.{name}")),
        Go::Element { text, .. } => Err(format!(
            "can't evaluate field {name} in type {}",
            if text { "string" } else { "interface {}" }
        )),
    }
}

/// Follows a Handlebars path (as the translation writes it) from the record.
fn walk<'a>(root: &'a Value, path: &str) -> Result<Go<'a>, String> {
    let mut current = Go::Record(root);
    let mut rest = path;
    let mut first = true;
    while !rest.is_empty() {
        let (segment, after) = if let Some(bracketed) = rest.strip_prefix('[') {
            let end = bracketed
                .find(']')
                .ok_or_else(|| format!("{path:?} is not a record path"))?;
            (&bracketed[..end], &bracketed[end + 1..])
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if first && !RECORD_FIELDS.contains(&segment) {
            return Err(format!(
                "go takes a path from the record (Position, Operation, Metadata, Key, Payload), \
                 not {path:?}"
            ));
        }
        first = false;
        current = field(current, segment)?;
        rest = match after.strip_prefix('.') {
            Some(next) if !next.is_empty() => next,
            None if after.is_empty() => after,
            _ => return Err(format!("{path:?} is not a record path")),
        };
    }
    if first {
        return Err("go takes a path from the record".into());
    }
    Ok(current)
}

/// What `{{ <chain> }}` prints in Go.
fn print_go(value: Go<'_>) -> Result<String, String> {
    Ok(match value {
        Go::Record(_) => return Err("printing the whole record is not supported".into()),
        Go::Position(Value::Null) => "<nil>".into(),
        Go::Position(v) => {
            String::from_utf8_lossy(&v.as_str().and_then(tagged_bytes).unwrap_or_default())
                .into_owned()
        }
        Go::Operation(v) => operation(v.as_i64().unwrap_or(0)),
        Go::Metadata(v) | Go::Data(v) => print_value(v),
        Go::Payload(change) => {
            let get = |name| change.get(name).unwrap_or(&NULL);
            format!(
                "{{{} {}}}",
                print_value(get("Before")),
                print_value(get("After"))
            )
        }
        // Go's template turns an empty interface holding nil into "no value".
        Go::Element {
            value: None | Some(Value::Null),
            ..
        } => "<no value>".into(),
        Go::Element { value: Some(v), .. } => print_value(v),
    })
}

/// `opencdc.Operation.String()`.
fn operation(n: i64) -> String {
    match i32::try_from(n)
        .ok()
        .and_then(|n| Operation::try_from(n).ok())
    {
        Some(Operation::Create) => "create".into(),
        Some(Operation::Update) => "update".into(),
        Some(Operation::Delete) => "delete".into(),
        Some(Operation::Snapshot) => "snapshot".into(),
        _ => format!("Operation({n})"),
    }
}

/// A value of the typed view printed with fmt's `%v`.
pub fn print_value(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) => out.push_str(&go_float(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => {
            if let Some(bytes) = tagged_bytes(s) {
                out.push('[');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{b}");
                }
                out.push(']');
            } else {
                out.push_str(exact_integer(s).unwrap_or(s));
            }
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_value(out, &map[key]);
            }
            out.push(']');
        }
    }
}

/// A `float64` as fmt's `%v` prints it: `strconv.FormatFloat(f, 'g', -1, 64)`, i.e. the
/// shortest digits that read back as `f`, in exponent form when the exponent is below -4 or
/// at least 6 (with a sign and at least two digits: `1e+06`, `1e-05`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` writes the same shortest digits: `1.234567e6`, `-1e-6`.
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exponent) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    } else if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// The result of Go's `index`.
#[derive(Debug, Clone, PartialEq)]
enum Indexed {
    /// A nil interface: Go prints `<no value>`.
    NoValue,
    Value(Value),
}

/// Go's `index item keys...` (text/template's builtin) on the typed view.
fn index(item: Go<'_>, keys: &[&Value]) -> Result<Indexed, String> {
    // Where the walk is: a value of the view, or the zero value a missing key gave.
    enum At<'a> {
        View(&'a Value, bool),
        Nil,
        Owned(Value),
    }
    let type_name = |what: &str| format!("can't index item of type {what}");
    let mut at = match item {
        Go::Record(_) => return Err(type_name("opencdc.Record")),
        Go::Operation(v) if keys.is_empty() => {
            return Ok(Indexed::Value(Value::from(operation(
                v.as_i64().unwrap_or(0),
            ))))
        }
        Go::Operation(_) => return Err(type_name("opencdc.Operation")),
        Go::Payload(_) if keys.is_empty() => {
            return Ok(Indexed::Value(Value::from(print_go(item)?)))
        }
        Go::Payload(_) => return Err(type_name("opencdc.Change")),
        Go::Position(v) if keys.is_empty() => {
            return Ok(Indexed::Value(Value::from(print_go(Go::Position(v))?)))
        }
        Go::Position(Value::Null) => At::Owned(bytes_value(&[])),
        Go::Position(v) | Go::Metadata(v) => At::View(v, matches!(item, Go::Metadata(_))),
        Go::Data(Value::Null)
        | Go::Element {
            value: None | Some(Value::Null),
            ..
        } => return Err("index of untyped nil".into()),
        Go::Data(v) => At::View(v, false),
        Go::Element { value: Some(v), .. } => At::View(v, false),
    };
    for key in keys {
        let (value, metadata) = match &at {
            At::Nil => return Err("index of nil pointer".into()),
            At::View(v, metadata) => (*v, *metadata),
            At::Owned(v) => (v, false),
        };
        let next = match value {
            Value::Object(map) => {
                let Some(name) = key.as_str() else {
                    return Err(format!("value has type {}; should be string", go_type(key)));
                };
                match map.get(name) {
                    Some(v) => At::Owned(v.clone()),
                    None if metadata => At::Owned(Value::from("")),
                    None => At::Nil,
                }
            }
            Value::Array(_) | Value::String(_) if !matches!(value, Value::String(s) if exact_integer(s).is_some()) =>
            {
                let Some(i) = key.as_u64() else {
                    return Err(format!(
                        "cannot index slice/array with type {}",
                        go_type(key)
                    ));
                };
                let out_of_range = || format!("index out of range: {i}");
                let i = usize::try_from(i).map_err(|_| out_of_range())?;
                match value {
                    Value::Array(items) => {
                        At::Owned(items.get(i).ok_or_else(out_of_range)?.clone())
                    }
                    Value::String(s) => {
                        let byte = match tagged_bytes(s) {
                            Some(bytes) => bytes.get(i).copied(),
                            None => s.as_bytes().get(i).copied(),
                        };
                        At::Owned(Value::from(byte.ok_or_else(out_of_range)?))
                    }
                    _ => unreachable!("matched above"),
                }
            }
            other => return Err(type_name(go_type(other))),
        };
        at = next;
    }
    Ok(match at {
        At::Nil | At::Owned(Value::Null) | At::View(Value::Null, _) => Indexed::NoValue,
        At::Owned(v) => Indexed::Value(v),
        At::View(v, _) => Indexed::Value(v.clone()),
    })
}

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() => "int",
        Value::Number(_) => "float64",
        Value::String(s) if exact_integer(s).is_some() => "int64",
        Value::String(s) if s.starts_with(BYTES_TAG) => "opencdc.RawData",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

// ---------------------------------------------------------------------------------------------
// Handlebars helpers

fn view_of(ctx: &Context) -> Result<&Value, RenderError> {
    ctx.data()
        .get(VIEW_KEY)
        .ok_or_else(|| RenderErrorReason::Other("the go helper needs a record".into()).into())
}

fn failed(helper: &str, message: String) -> RenderError {
    RenderErrorReason::Other(format!("{helper}: {message}")).into()
}

/// `{{go Payload.After.id}}`, `{{go (index Metadata "k")}}`: prints as Go's template does.
pub struct GoHelper;

impl HelperDef for GoHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let [param] = h.params().as_slice() else {
            return Err(failed("go", "takes one value".into()));
        };
        let printed = match param.relative_path() {
            Some(path) => {
                let value = walk(view_of(ctx)?, path).map_err(|e| failed("go", e))?;
                print_go(value).map_err(|e| failed("go", e))?
            }
            None if param.is_value_missing() => "<no value>".into(),
            None => print_value(param.value()),
        };
        Ok(ScopedJson::Derived(Value::String(printed)))
    }
}

/// `(index Metadata "opencdc.collection")`, `(index Payload.After "tags" 0)`: Go's `index`.
/// Its result is meant for `go`, which prints it.
pub struct IndexHelper;

impl HelperDef for IndexHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let Some((item, keys)) = h.params().split_first() else {
            return Err(failed("index", "takes a record path and keys".into()));
        };
        let Some(path) = item.relative_path() else {
            return Err(failed("index", "takes a record path first".into()));
        };
        let item = walk(view_of(ctx)?, path).map_err(|e| failed("index", e))?;
        let keys: Vec<&Value> = keys.iter().map(|k| k.value()).collect();
        match index(item, &keys).map_err(|e| failed("index", e))? {
            Indexed::NoValue => Ok(ScopedJson::Missing),
            Indexed::Value(v) => Ok(ScopedJson::Derived(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RecordTemplate, TemplateError};
    use super::*;
    use crate::proto::opencdc::v1::{Change, Metadata};
    use prost_types::value::Kind;

    fn kind_value(kind: Kind) -> prost_types::Value {
        prost_types::Value { kind: Some(kind) }
    }

    fn object(fields: Vec<(&str, Kind)>) -> prost_types::Struct {
        prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), kind_value(v)))
                .collect(),
        }
    }

    fn structured(fields: Vec<(&str, Kind)>) -> Option<Data> {
        Some(Data {
            data: Some(data::Data::StructuredData(object(fields))),
        })
    }

    fn raw(bytes: &[u8]) -> Option<Data> {
        Some(Data {
            data: Some(data::Data::RawData(bytes.to_vec().into())),
        })
    }

    fn list(items: Vec<Kind>) -> Kind {
        Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(kind_value).collect(),
        })
    }

    fn metadata(pairs: &[(&str, &str)]) -> Metadata {
        let mut m = Metadata::new();
        for (k, v) in pairs {
            m.insert(k, v);
        }
        m
    }

    /// The records the Go program executed the templates on (the same values through
    /// `opencdc.Record.FromProto`).
    fn records() -> Vec<Record> {
        use Kind::*;
        let after = structured(vec![
            ("id", NumberValue(1234567.0)),
            ("small", NumberValue(42.0)),
            ("frac", NumberValue(2.5)),
            ("neg", NumberValue(-0.000001)),
            ("tiny", NumberValue(1e-7)),
            ("big", NumberValue(1e21)),
            ("e20", NumberValue(1e20)),
            ("name", StringValue("Ann Lee".into())),
            ("flag", BoolValue(true)),
            ("nil", NullValue(0)),
            (
                "nested",
                StructValue(object(vec![
                    ("z", NumberValue(1.0)),
                    ("a", StringValue("q".into())),
                    ("m", StructValue(object(vec![]))),
                ])),
            ),
            (
                "list",
                list(vec![
                    NumberValue(1.0),
                    StringValue("a".into()),
                    BoolValue(true),
                    NullValue(0),
                    list(vec![]),
                    StructValue(object(vec![("k", StringValue("v".into()))])),
                ]),
            ),
            ("empty", StringValue(String::new())),
            ("this", StringValue("t".into())),
            ("Bytes", StringValue("b".into())),
            ("é", StringValue("acc".into())),
            ("nan", NumberValue(f64::NAN)),
            ("inf", NumberValue(f64::NEG_INFINITY)),
        ]);
        vec![
            Record {
                position: b"pos-1".to_vec(),
                operation: Operation::Create as i32,
                metadata: metadata(&[("opencdc.collection", "orders"), ("b", "x y"), ("a", "")]),
                key: raw(b"abc"),
                payload: Some(Change {
                    before: None,
                    after,
                }),
            },
            Record {
                position: b"p2".to_vec(),
                operation: Operation::Update as i32,
                metadata: metadata(&[("opencdc.collection", "users")]),
                key: structured(vec![
                    ("id", NumberValue(7.0)),
                    ("tenant", StringValue("acme".into())),
                ]),
                payload: Some(Change {
                    before: structured(vec![("id", NumberValue(7.0))]),
                    after: raw(b"raw-after"),
                }),
            },
            Record {
                operation: Operation::Delete as i32,
                ..Default::default()
            },
            Record {
                position: vec![0xff, b'x'],
                operation: Operation::Snapshot as i32,
                key: raw(&[0xff, 0, b'a']),
                payload: Some(Change {
                    before: raw(b""),
                    after: raw(b""),
                }),
                ..Default::default()
            },
            Record {
                position: b"p5".to_vec(),
                operation: 0,
                key: raw(b"k"),
                ..Default::default()
            },
        ]
    }

    /// What Go 1.26's text/template printed for these templates on [`records`] with
    /// conduit-commons v0.4.0 (`template.New("partitionKey").Parse(t)`, `Execute(&sb, rec)`, as
    /// the Go connector's destination does). `Err` holds the end of Go's error message.
    #[rustfmt::skip]
    const GOLDEN: &[(&str, [Result<&str, &str>; 5])] = &[
        (
            "{{ .Key }}",
            [Ok("[97 98 99]"), Ok("map[id:7 tenant:acme]"), Ok("<nil>"), Ok("[255 0 97]"), Ok("[107]")],
        ),
        (
            "{{.Key}}",
            [Ok("[97 98 99]"), Ok("map[id:7 tenant:acme]"), Ok("<nil>"), Ok("[255 0 97]"), Ok("[107]")],
        ),
        (
            "{{ .Position }}",
            [Ok("pos-1"), Ok("p2"), Ok("<nil>"), Ok("�x"), Ok("p5")],
        ),
        (
            "{{ .Operation }}",
            [Ok("create"), Ok("update"), Ok("delete"), Ok("snapshot"), Ok("Operation(0)")],
        ),
        (
            "{{ .Metadata }}",
            [Ok("map[a: b:x y opencdc.collection:orders]"), Ok("map[opencdc.collection:users]"), Ok("map[]"), Ok("map[]"), Ok("map[]")],
        ),
        (
            "{{ .Metadata.b }}",
            [Ok("x y"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
        ),
        (
            "{{ .Metadata.missing }}",
            [Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
        ),
        (
            "{{ .Metadata.missing.deeper }}",
            [Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
        ),
        (
            "{{ .Metadata.b.c }}",
            [Err("can't evaluate field c in type string"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
        ),
        (
            "{{ index .Metadata \"opencdc.collection\" }}",
            [Ok("orders"), Ok("users"), Ok(""), Ok(""), Ok("")],
        ),
        (
            "{{ index .Metadata \"missing\" }}",
            [Ok(""), Ok(""), Ok(""), Ok(""), Ok("")],
        ),
        (
            "{{ index .Metadata }}",
            [Ok("map[a: b:x y opencdc.collection:orders]"), Ok("map[opencdc.collection:users]"), Ok("map[]"), Ok("map[]"), Ok("map[]")],
        ),
        (
            "{{ .Payload.After.id }}",
            [Ok("1.234567e+06"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id")],
        ),
        (
            "{{ .Payload.After.small }}",
            [Ok("42"), Err("can't evaluate field small in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.small"), Err("can't evaluate field small in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.small")],
        ),
        (
            "{{ .Payload.After.frac }}",
            [Ok("2.5"), Err("can't evaluate field frac in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.frac"), Err("can't evaluate field frac in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.frac")],
        ),
        (
            "{{ .Payload.After.neg }}",
            [Ok("-1e-06"), Err("can't evaluate field neg in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.neg"), Err("can't evaluate field neg in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.neg")],
        ),
        (
            "{{ .Payload.After.tiny }}",
            [Ok("1e-07"), Err("can't evaluate field tiny in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.tiny"), Err("can't evaluate field tiny in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.tiny")],
        ),
        (
            "{{ .Payload.After.big }}",
            [Ok("1e+21"), Err("can't evaluate field big in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.big"), Err("can't evaluate field big in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.big")],
        ),
        (
            "{{ .Payload.After.e20 }}",
            [Ok("1e+20"), Err("can't evaluate field e20 in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.e20"), Err("can't evaluate field e20 in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.e20")],
        ),
        (
            "{{ .Payload.After.nan }}",
            [Ok("NaN"), Err("can't evaluate field nan in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nan"), Err("can't evaluate field nan in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nan")],
        ),
        (
            "{{ .Payload.After.inf }}",
            [Ok("-Infinity"), Err("can't evaluate field inf in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.inf"), Err("can't evaluate field inf in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.inf")],
        ),
        (
            "{{ .Payload.After.name }}",
            [Ok("Ann Lee"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name")],
        ),
        (
            "{{ .Payload.After.flag }}",
            [Ok("true"), Err("can't evaluate field flag in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.flag"), Err("can't evaluate field flag in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.flag")],
        ),
        (
            "{{ .Payload.After.nil }}",
            [Ok("<no value>"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil")],
        ),
        (
            "{{ .Payload.After.missing }}",
            [Ok("<no value>"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing")],
        ),
        (
            "{{ .Payload.After.missing.deeper }}",
            [Ok("<no value>"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing")],
        ),
        (
            "{{ .Payload.After.nil.deeper }}",
            [Err("nil pointer evaluating interface {}.deeper"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil")],
        ),
        (
            "{{ .Payload.After.name.deeper }}",
            [Err("can't evaluate field deeper in type interface {}"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name")],
        ),
        (
            "{{ .Payload.After.nested }}",
            [Ok("map[a:q m:map[] z:1]"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
        ),
        (
            "{{ .Payload.After.nested.a }}",
            [Ok("q"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
        ),
        (
            "{{ .Payload.After.list }}",
            [Ok("[1 a true <nil> [] map[k:v]]"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
        ),
        (
            "{{ .Payload.After.empty }}",
            [Ok(""), Err("can't evaluate field empty in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.empty"), Err("can't evaluate field empty in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.empty")],
        ),
        (
            "{{ .Payload.After.this }}",
            [Ok("t"), Err("can't evaluate field this in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.this"), Err("can't evaluate field this in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.this")],
        ),
        (
            "{{ .Payload.After.é }}",
            [Ok("acc"), Err("can't evaluate field é in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.é"), Err("can't evaluate field é in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.é")],
        ),
        (
            "{{ index .Payload.After \"id\" }}",
            [Ok("1.234567e+06"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.After \"missing\" }}",
            [Ok("<no value>"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.After \"nil\" }}",
            [Ok("<no value>"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.After \"nested\" \"a\" }}",
            [Ok("q"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.After \"list\" 1 }}",
            [Ok("a"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.After.list 3 }}",
            [Ok("<no value>"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
        ),
        (
            "{{ index .Payload.After.list 9 }}",
            [Err("error calling index: index out of range: 9"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
        ),
        (
            "{{ index .Payload.After \"name\" 0 }}",
            [Ok("65"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Key 0 }}",
            [Ok("97"), Err("error calling index: value has type int; should be string"), Err("error calling index: index of untyped nil"), Ok("255"), Ok("107")],
        ),
        (
            "{{ index .Key \"id\" }}",
            [Err("error calling index: cannot index slice/array with type string"), Ok("7"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: cannot index slice/array with type string")],
        ),
        (
            "{{ index .Payload.After \"missing\" \"x\" }}",
            [Err("error calling index: index of nil pointer"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ index .Payload.Before \"x\" }}",
            [Err("error calling index: index of untyped nil"), Ok("<no value>"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
        ),
        (
            "{{ .Payload.After }}",
            [Ok("map[Bytes:b big:1e+21 e20:1e+20 empty: flag:true frac:2.5 id:1.234567e+06 inf:-Infinity list:[1 a true <nil> [] map[k:v]] name:Ann Lee nan:NaN neg:-1e-06 nested:map[a:q m:map[] z:1] nil:<nil> small:42 this:t tiny:1e-07 é:acc]"), Ok("[114 97 119 45 97 102 116 101 114]"), Ok("<nil>"), Ok("[]"), Ok("<nil>")],
        ),
        (
            "{{ .Payload.Before }}",
            [Ok("<nil>"), Ok("map[id:7]"), Ok("<nil>"), Ok("[]"), Ok("<nil>")],
        ),
        (
            "{{ .Payload }}",
            [Ok("{<nil> map[Bytes:b big:1e+21 e20:1e+20 empty: flag:true frac:2.5 id:1.234567e+06 inf:-Infinity list:[1 a true <nil> [] map[k:v]] name:Ann Lee nan:NaN neg:-1e-06 nested:map[a:q m:map[] z:1] nil:<nil> small:42 this:t tiny:1e-07 é:acc]}"), Ok("{map[id:7] [114 97 119 45 97 102 116 101 114]}"), Ok("{<nil> <nil>}"), Ok("{[] []}"), Ok("{<nil> <nil>}")],
        ),
        (
            "{{ .Key.id }}",
            [Err("can't evaluate field id in type opencdc.Data"), Ok("7"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("can't evaluate field id in type opencdc.Data")],
        ),
        (
            "{{ .Key.tenant }}",
            [Err("can't evaluate field tenant in type opencdc.Data"), Ok("acme"), Err("nil pointer evaluating opencdc.Data.tenant"), Err("can't evaluate field tenant in type opencdc.Data"), Err("can't evaluate field tenant in type opencdc.Data")],
        ),
        (
            "prefix-{{- .Key -}} -suffix",
            [Ok("prefix-[97 98 99]-suffix"), Ok("prefix-map[id:7 tenant:acme]-suffix"), Ok("prefix-<nil>-suffix"), Ok("prefix-[255 0 97]-suffix"), Ok("prefix-[107]-suffix")],
        ),
        (
            "a \n\t{{- .Operation }}  b",
            [Ok("acreate  b"), Ok("aupdate  b"), Ok("adelete  b"), Ok("asnapshot  b"), Ok("aOperation(0)  b")],
        ),
        (
            "{{ .Operation -}} \r\n x",
            [Ok("createx"), Ok("updatex"), Ok("deletex"), Ok("snapshotx"), Ok("Operation(0)x")],
        ),
        (
            "x{{/* comment */}}y",
            [Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy")],
        ),
        (
            "x {{- /* c */ -}} y",
            [Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy")],
        ),
        (
            "{{ .Payload.After.id }}/{{ index .Metadata \"opencdc.collection\" }}",
            [Ok("1.234567e+06/orders"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id")],
        ),
        (
            "a\\{{ .Operation }}",
            [Ok("a\\create"), Ok("a\\update"), Ok("a\\delete"), Ok("a\\snapshot"), Ok("a\\Operation(0)")],
        ),
        (
            "{{ index .Metadata `opencdc.collection` }}",
            [Ok("orders"), Ok("users"), Ok(""), Ok(""), Ok("")],
        ),
        (
            "{{ index .Payload.After.nested \"m\" }}",
            [Ok("map[]"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
        ),
    ];

    #[test]
    fn translated_go_templates_render_what_go_renders() {
        let records = records();
        for (source, expected) in GOLDEN {
            let template = RecordTemplate::compile_go(source)
                .unwrap_or_else(|e| panic!("{source:?} refused: {e}"));
            assert_eq!(template.translated_from(), Some(*source));
            for (i, (record, expected)) in records.iter().zip(expected).enumerate() {
                let got = template.render(record);
                match (expected, &got) {
                    (Ok(want), Ok(got)) => {
                        assert_eq!(
                            got,
                            want,
                            "{source:?} on record {i} (as {:?})",
                            template.source()
                        )
                    }
                    (Err(reason), Err(error)) => assert!(
                        error
                            .to_string()
                            .contains(reason.trim_start_matches("error calling index: ")),
                        "{source:?} on record {i}: {error} does not say {reason:?}"
                    ),
                    _ => panic!(
                        "{source:?} on record {i} (as {:?}): got {got:?}, Go gave {expected:?}",
                        template.source()
                    ),
                }
            }
        }
    }

    #[test]
    fn the_handlebars_forms() {
        for (go, handlebars) in [
            ("{{ .Key }}", "{{go Key}}"),
            ("{{ .Payload.After.id }}", "{{go Payload.After.id}}"),
            (
                r#"{{ index .Metadata "opencdc.collection" }}"#,
                r#"{{go (index Metadata "opencdc.collection")}}"#,
            ),
            (
                r#"{{ index .Payload.After "list" 1 }}"#,
                r#"{{go (index Payload.After "list" 1)}}"#,
            ),
            ("k-{{- .Key -}} -{{/* c */}}x", "k-{{go Key}}-x"),
            (
                "{{ .Payload.After.this }}.{{ .Payload.After.é }}",
                "{{go Payload.After.[this]}}.{{go Payload.After.[é]}}",
            ),
            ("a\\{{ .Operation }}", "a\\\\{{go Operation}}"),
            (
                "{{ index .Metadata `a\"b` }}",
                r#"{{go (index Metadata "a\"b")}}"#,
            ),
        ] {
            let template = RecordTemplate::compile_go(go).unwrap();
            assert_eq!(template.source(), handlebars, "{go:?}");
        }
    }

    #[test]
    fn the_handlebars_form_renders_the_same_when_written_by_hand() {
        let records = records();
        for (source, _) in GOLDEN {
            let translated = RecordTemplate::compile_go(source).unwrap();
            let by_hand = RecordTemplate::compile(translated.source()).unwrap();
            for record in &records {
                assert_eq!(
                    by_hand.render(record).ok(),
                    translated.render(record).ok(),
                    "{source:?}"
                );
            }
        }
        // Next to ordinary Handlebars, which still prints the key as text.
        let mixed = RecordTemplate::compile("{{Key}}={{go Key}}").unwrap();
        assert_eq!(mixed.render(&records[0]).unwrap(), "abc=[97 98 99]");
    }

    #[test]
    fn outside_the_subset_is_refused_with_the_suggestion() {
        for source in [
            "{{ .Key | printf \"%s\" }}",
            "{{ printf \"%s\" .Key }}",
            "{{ if .Key }}x{{ end }}",
            "{{ range .Payload.After.list }}x{{ end }}",
            "{{ with .Payload }}{{ .After }}{{ end }}",
            "{{ $x := .Key }}{{ $x }}",
            "{{ . }}",
            "{{ .Nope }}",
            "{{ .Position.x }}",
            "{{ .Payload.Middle }}",
            "{{ .Key.Bytes }}",
            "{{ .Payload.After.Bytes }}",
            "{{ .Metadata.GetCollection }}",
            "{{ index .Metadata .Key }}",
            "{{ index .Metadata \"a\\x41\" }}",
            "{{ .Key }}-{{Operation}}",
            "{{ .Key ",
            "{{ (index .Metadata \"a\") }}",
            "{{ .Payload.After.1x }}",
        ] {
            let err = RecordTemplate::compile_go(source)
                .err()
                .unwrap_or_else(|| panic!("{source:?} accepted"));
            let TemplateError::GoSyntax(message) = &err else {
                panic!("{source:?}: {err:?}");
            };
            assert!(message.contains("Go template"), "{message}");
            assert!(message.contains("try"), "{message}");
        }
    }

    #[test]
    fn plain_handlebars_still_refuses_go_syntax() {
        assert!(matches!(
            RecordTemplate::compile("{{ .Key }}"),
            Err(TemplateError::GoSyntax(_))
        ));
        // And compile_go leaves Handlebars alone.
        let t = RecordTemplate::compile_go("{{Key}}").unwrap();
        assert_eq!(t.translated_from(), None);
        assert_eq!(t.render(&records()[0]).unwrap(), "abc");
    }

    #[test]
    fn floats_print_like_go() {
        for (f, go) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (-2.5, "-2.5"),
            (123456.789, "123456.789"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    #[test]
    fn exact_integers_print_their_digits() {
        let record = Record {
            payload: Some(Change {
                before: None,
                after: structured(vec![(
                    "id",
                    crate::destination::exact::integer_kind(8_340_323_910_550_179_726),
                )]),
            }),
            ..Default::default()
        };
        let t = RecordTemplate::compile_go("{{ .Payload.After.id }}").unwrap();
        assert_eq!(t.render(&record).unwrap(), "8340323910550179726");
    }

    #[test]
    fn the_view_carries_only_what_the_template_reads() {
        let t = translate("{{ .Key }}").unwrap();
        let view = view(&records()[0], t.fields);
        assert_eq!(
            view.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["Key"]
        );
    }
}
