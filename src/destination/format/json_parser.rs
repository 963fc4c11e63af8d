//! A JSON parser for raw payloads that reads JSON as goccy/go-json's `json.Unmarshal` does,
//! and the writer of what it parsed.

use std::borrow::Cow;

use super::go_json::{go_sort, write_go_string, write_number};

/// Parsed JSON. Strings and keys are bytes: like goccy's decoder, invalid UTF-8 is kept and
/// only replaced (by `\ufffd`) when written. `Number` keeps the literal; `Float` is a number
/// decoded as Go does.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    Float(f64),
    String(Cow<'a, [u8]>),
    Array(Vec<Json<'a>>),
    Object(Vec<Member<'a>>),
}

pub(super) type Member<'a> = (Cow<'a, [u8]>, Json<'a>);

const MAX_JSON_DEPTH: usize = 512;

/// How lenient the parser is with numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Numbers {
    /// RFC 8259 numbers (literals are copied to the output, so they must be valid JSON).
    Strict,
    /// goccy/go-json's `json.Unmarshal` into `any`: a run of `0-9 . e E + -` that
    /// `strconv.ParseFloat` accepts (`01`, `1.`, `-.5` included) and that fits a float64.
    Go,
}

pub(super) struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    numbers: Numbers,
}

impl<'a> Parser<'a> {
    /// JSON with goccy/go-json's string rules: raw control characters other than NUL are
    /// accepted, invalid UTF-8 is kept, a lone surrogate escape becomes U+FFFD.
    pub(super) fn parse(s: &'a [u8], numbers: Numbers) -> Result<Json<'a>, String> {
        let mut p = Parser { s, i: 0, numbers };
        p.whitespace();
        let value = p.value(0)?;
        p.whitespace();
        if p.i < s.len() {
            return Err(p.error("unexpected data after the JSON value"));
        }
        Ok(value)
    }

    fn error(&self, what: &str) -> String {
        if self.i >= self.s.len() {
            format!("{what} at the end of the data")
        } else {
            format!("{what} at byte {}", self.i)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, String> {
        if depth > MAX_JSON_DEPTH {
            return Err(self.error("JSON nested too deeply"));
        }
        match self.peek() {
            None => Err(self.error("expected a JSON value")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    fn literal(&mut self, text: &[u8], value: Json<'a>) -> Result<Json<'a>, String> {
        if self.s[self.i..].starts_with(text) {
            self.i += text.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, String> {
        self.i += 1;
        let mut members = Vec::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.whitespace();
            self.expect(b':', "expected ':' after an object key")?;
            self.whitespace();
            let value = self.value(depth + 1)?;
            members.push((key, value));
            self.whitespace();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.whitespace();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.whitespace();
            items.push(self.value(depth + 1)?);
            self.whitespace();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.i;
        if self.numbers == Numbers::Go {
            while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
                self.i += 1;
            }
        } else {
            self.strict_number()?;
        }
        std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.error("invalid number"))
    }

    fn strict_number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn string(&mut self) -> Result<Cow<'a, [u8]>, String> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            match self.peek() {
                None | Some(0) => return Err(self.error("unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.i += 2;
                }
                Some(_) => self.i += 1,
            }
        }
        let raw = &self.s[start..self.i];
        self.i += 1;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        unescape(raw)
            .map(Cow::Owned)
            .map_err(|offset| format!("invalid escape in a string at byte {}", start + offset))
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Decodes the escapes of a JSON string like goccy's `unescapeString`: a high surrogate
/// escape followed by a low one is one character, any other surrogate is U+FFFD; other
/// bytes are copied. Errors carry the offset of a bad escape.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(raw.len());
    let mut j = 0;
    while j < raw.len() {
        let c = raw[j];
        if c != b'\\' {
            out.push(c);
            j += 1;
            continue;
        }
        let Some(&e) = raw.get(j + 1) else {
            return Err(j);
        };
        j += 2;
        match e {
            b'"' | b'\\' | b'/' => out.push(e),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let Some(unit) = hex4(&raw[j..]) else {
                    return Err(j - 2);
                };
                j += 4;
                let mut code = unit;
                if (0xD800..0xDC00).contains(&unit) && raw.get(j..j + 2) == Some(b"\\u") {
                    if let Some(low @ 0xDC00..=0xDFFF) = hex4(&raw[j + 2..]) {
                        code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        j += 6;
                    }
                }
                let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(j - 2),
        }
    }
    Ok(out)
}

/// Turns parsed JSON into what goccy's `json.Unmarshal` into `map[string]any` holds: numbers
/// as float64 (false when one is not a float64), objects in goccy's key order with the last
/// of duplicate keys.
pub(super) fn normalize_go(value: &mut Json<'_>) -> bool {
    match value {
        Json::Number(literal) => match literal.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                *value = Json::Float(v);
                true
            }
            _ => false,
        },
        Json::Array(items) => items.iter_mut().all(normalize_go),
        Json::Object(members) => {
            if !members.iter_mut().all(|(_, v)| normalize_go(v)) {
                return false;
            }
            go_sort(members, |m| m.0.as_ref());
            let mut deduped: Vec<Member<'_>> = Vec::with_capacity(members.len());
            for member in members.drain(..) {
                match deduped.last_mut() {
                    Some(last) if last.0 == member.0 => *last = member,
                    _ => deduped.push(member),
                }
            }
            *members = deduped;
            true
        }
        _ => true,
    }
}

/// Compact JSON: strings escaped the Go way, `Number` literals as they are, `Float`s the Go
/// way, objects in their order.
fn write_json(out: &mut Vec<u8>, value: &Json<'_>) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Json::Number(literal) => out.extend_from_slice(literal.as_bytes()),
        Json::Float(v) => write_number(out, *v),
        Json::String(s) => write_go_string(out, s),
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item);
            }
            out.push(b']');
        }
        Json::Object(members) => {
            out.push(b'{');
            write_json_members(out, members, &[], true);
            out.push(b'}');
        }
    }
}

pub(super) fn write_json_members(
    out: &mut Vec<u8>,
    members: &[Member<'_>],
    skip: &[&str],
    first: bool,
) {
    let mut first = first;
    for (k, v) in members {
        if skip.iter().any(|s| s.as_bytes() == k.as_ref()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_go_string(out, k);
        out.push(b':');
        write_json(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_decodes_strings_like_goccy() {
        let parse = |s: &[u8]| match Parser::parse(s, Numbers::Strict) {
            Ok(Json::String(s)) => s.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(parse(br#""plain""#), b"plain");
        assert_eq!(
            parse(br#""\"\\\/\b\f\n\r\t\u00e9""#),
            "\"\\/\u{8}\u{c}\n\r\t\u{e9}".as_bytes()
        );
        assert_eq!(parse(br#""\ud83d\ude00""#), "\u{1F600}".as_bytes());
        assert_eq!(parse(br#""\ud83dx""#), "\u{FFFD}x".as_bytes());
        assert_eq!(parse(br#""\ude00\u0041""#), "\u{FFFD}A".as_bytes());
        assert_eq!(parse(br#""\ud83d\u0041""#), "\u{FFFD}A".as_bytes());
        // Invalid UTF-8 and raw control characters are kept (escaped when written).
        assert_eq!(parse(b"\"a\xffb\""), b"a\xffb");
        assert_eq!(parse(b"\"a\nb\x01\""), b"a\nb\x01");
        for bad in [
            &b"\"\\x\""[..],
            b"\"\\u12\"",
            b"\"a\x00b\"",
            b"\"open",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b".5",
            b"tru",
            b"[1,]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"",
        ] {
            assert!(
                Parser::parse(bad, Numbers::Strict).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(MAX_JSON_DEPTH + 2) + &"]".repeat(MAX_JSON_DEPTH + 2);
        assert!(Parser::parse(deep.as_bytes(), Numbers::Strict).is_err());
    }

    #[test]
    fn go_numbers_are_lax_like_goccy() {
        // goccy takes a run of `0-9 . e E + -` and hands it to strconv.ParseFloat.
        let mut parsed =
            Parser::parse(br#"{"a":01,"b":1.,"c":-.5,"d":1E+2}"#, Numbers::Go).unwrap();
        assert!(normalize_go(&mut parsed));
        let mut out = Vec::new();
        write_json(&mut out, &parsed);
        assert_eq!(out, br#"{"a":1,"b":1,"c":-0.5,"d":100}"#);
        for bad in [&br#"{"a":1e400}"#[..], br#"{"a":1-2}"#, br#"{"a":-}"#] {
            let parsed = Parser::parse(bad, Numbers::Go);
            assert!(
                parsed.map_or(true, |mut p| !normalize_go(&mut p)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
