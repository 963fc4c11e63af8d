//! Evaluating field chains and `index` on the typed view, and printing values with Go's
//! `%v` rules.

use std::fmt::Write as _;

use serde_json::Value;

use super::view::{bytes_value, tagged_bytes};
use super::{BYTES_TAG, DATA_METHODS, RECORD_FIELDS};
use crate::destination::exact::exact_integer;
use crate::proto::opencdc::v1::Operation;

/// A value reached by a field chain, with the Go type that decides how it prints.
#[derive(Debug, Clone, Copy)]
pub(super) enum Go<'a> {
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

pub(super) const NULL: Value = Value::Null;

pub(super) fn field<'a>(current: Go<'a>, name: &str) -> Result<Go<'a>, String> {
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
pub(super) fn walk<'a>(root: &'a Value, path: &str) -> Result<Go<'a>, String> {
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
pub(super) fn print_go(value: Go<'_>) -> Result<String, String> {
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
pub(super) fn operation(n: i64) -> String {
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
pub(crate) fn print_value(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

pub(super) fn write_value(out: &mut String, value: &Value) {
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
pub(crate) fn go_float(f: f64) -> String {
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
pub(super) enum Indexed {
    /// A nil interface: Go prints `<no value>`.
    NoValue,
    Value(Value),
}

/// Go's `index item keys...` (text/template's builtin) on the typed view.
pub(super) fn index(item: Go<'_>, keys: &[&Value]) -> Result<Indexed, String> {
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

pub(super) fn go_type(value: &Value) -> &'static str {
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
