//! The subset of CBOR (RFC 8949) that AWS's CBOR protocol for Kinesis uses
//! (`application/x-amz-cbor-1.1`, the encoding the AWS SDK for Java picks for Kinesis).
//!
//! Blobs travel as CBOR byte strings instead of base64 text, so a PutRecords body has about a
//! quarter fewer bytes than its AWS JSON 1.1 form to write, send and hash for SigV4.
//!
//! The writer emits definite lengths in their shortest form; the reader accepts any
//! well-formed item (indefinite lengths, tags, floats, simple values), so that answers from
//! any CBOR encoder can be read. Both are pure functions over byte slices.

use std::borrow::Cow;

/// Nesting deeper than this is refused (an answer is a few levels deep; this bounds the
/// recursion on hostile input).
const MAX_DEPTH: usize = 32;

const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const INDEFINITE: u8 = 31;
const BREAK: u8 = 0xff;

/// Appends CBOR items to a buffer.
pub struct Writer<'b>(pub &'b mut Vec<u8>);

impl Writer<'_> {
    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => self.0.push(major | value as u8),
            24..=0xff => self.0.extend_from_slice(&[major | 24, value as u8]),
            0x100..=0xffff => {
                self.0.push(major | 25);
                self.0.extend_from_slice(&(value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.0.push(major | 26);
                self.0.extend_from_slice(&(value as u32).to_be_bytes());
            }
            _ => {
                self.0.push(major | 27);
                self.0.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    /// A map of `entries` key/value pairs follows.
    pub fn map(&mut self, entries: usize) {
        self.head(MAP, entries as u64);
    }

    /// An array of `items` follows.
    pub fn array(&mut self, items: usize) {
        self.head(ARRAY, items as u64);
    }

    pub fn text(&mut self, text: &str) {
        self.head(TEXT, text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        self.head(BYTES, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    pub fn unsigned(&mut self, value: u64) {
        self.head(UNSIGNED, value);
    }
}

/// A decoded item; strings borrow from the input unless they were sent in chunks.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Unsigned(u64),
    /// The integer `-1 - n`.
    Negative(u64),
    Bytes(Cow<'a, [u8]>),
    Text(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Tag(u64, Box<Value<'a>>),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
    Simple(u8),
}

impl<'a> Value<'a> {
    /// The value of the text key `name` in a map.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(name))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR at byte {offset}: {reason}")]
pub struct DecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Decodes the single CBOR item that `input` holds.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let mut reader = Reader { input, at: 0 };
    let value = reader.item(0)?;
    if reader.at != input.len() {
        return Err(reader.error("bytes left after the item"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            offset: self.at,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.input.len() - self.at < n {
            return Err(self.error("the input ends inside an item"));
        }
        let slice = &self.input[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    /// The argument of a head whose additional information is `info` (not indefinite).
    fn argument(&mut self, info: u8) -> Result<u64, DecodeError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()),
            _ => return Err(self.error("reserved additional information")),
        })
    }

    /// A length that fits in what is left of the input (each element takes a byte at least).
    fn length(&mut self, info: u8) -> Result<usize, DecodeError> {
        let length = self.argument(info)?;
        if length > (self.input.len() - self.at) as u64 {
            return Err(self.error("a length runs past the end of the input"));
        }
        Ok(length as usize)
    }

    fn at_break(&mut self) -> bool {
        if self.peek() == Some(BREAK) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        match major {
            UNSIGNED => Ok(Value::Unsigned(self.argument(info)?)),
            NEGATIVE => Ok(Value::Negative(self.argument(info)?)),
            BYTES => self.string(BYTES, info).map(Value::Bytes),
            TEXT => {
                let bytes = self.string(TEXT, info)?;
                let text = match bytes {
                    Cow::Borrowed(bytes) => Cow::Borrowed(
                        std::str::from_utf8(bytes).map_err(|_| self.error("text is not UTF-8"))?,
                    ),
                    Cow::Owned(bytes) => Cow::Owned(
                        String::from_utf8(bytes).map_err(|_| self.error("text is not UTF-8"))?,
                    ),
                };
                Ok(Value::Text(text))
            }
            ARRAY => {
                let mut items = Vec::new();
                if info == INDEFINITE {
                    while !self.at_break() {
                        items.push(self.item(depth + 1)?);
                    }
                } else {
                    let length = self.length(info)?;
                    items.reserve(length);
                    for _ in 0..length {
                        items.push(self.item(depth + 1)?);
                    }
                }
                Ok(Value::Array(items))
            }
            MAP => {
                let mut entries = Vec::new();
                if info == INDEFINITE {
                    while !self.at_break() {
                        let key = self.item(depth + 1)?;
                        entries.push((key, self.item(depth + 1)?));
                    }
                } else {
                    let length = self.length(info)?;
                    entries.reserve(length);
                    for _ in 0..length {
                        let key = self.item(depth + 1)?;
                        entries.push((key, self.item(depth + 1)?));
                    }
                }
                Ok(Value::Map(entries))
            }
            TAG => {
                let tag = self.argument(info)?;
                Ok(Value::Tag(tag, Box::new(self.item(depth + 1)?)))
            }
            // Major type 7: simple values and floats.
            _ => self.simple(info),
        }
    }

    /// A byte or text string's content: borrowed when definite, joined when in chunks.
    fn string(&mut self, major: u8, info: u8) -> Result<Cow<'a, [u8]>, DecodeError> {
        if info != INDEFINITE {
            let length = self.length(info)?;
            return Ok(Cow::Borrowed(self.take(length)?));
        }
        let mut joined = Vec::new();
        while !self.at_break() {
            let chunk = self.byte()?;
            if chunk >> 5 != major || chunk & 0x1f == INDEFINITE {
                return Err(self.error("a string chunk of another kind"));
            }
            let length = self.length(chunk & 0x1f)?;
            joined.extend_from_slice(self.take(length)?);
        }
        Ok(Cow::Owned(joined))
    }

    fn simple(&mut self, info: u8) -> Result<Value<'a>, DecodeError> {
        Ok(match info {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 => Value::Null,
            23 => Value::Undefined,
            24 => Value::Simple(self.byte()?),
            25 => Value::Float(half_to_f64(u16::from_be_bytes(
                self.take(2)?.try_into().unwrap(),
            ))),
            26 => Value::Float(f64::from(f32::from_be_bytes(
                self.take(4)?.try_into().unwrap(),
            ))),
            27 => Value::Float(f64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            0..=19 => Value::Simple(info),
            INDEFINITE => return Err(self.error("a break outside an indefinite item")),
            _ => return Err(self.error("reserved additional information")),
        })
    }
}

/// Reads items one after another without building a tree: for answers with an entry per
/// record, where a tree would cost allocations per record. Containers are walked with
/// [`Cursor::next_in`], which handles definite and indefinite lengths alike.
pub struct Cursor<'a> {
    reader: Reader<'a>,
}

/// Items left in a container being walked: `Some(n)` for a definite length, `None` for an
/// indefinite one (ended by a break).
#[derive(Debug, Clone, Copy)]
pub struct Remaining(Option<usize>);

impl<'a> Cursor<'a> {
    pub fn new(input: &'a [u8]) -> Cursor<'a> {
        Cursor {
            reader: Reader { input, at: 0 },
        }
    }

    fn container(&mut self, major: u8, what: &'static str) -> Result<Remaining, DecodeError> {
        let initial = self.reader.byte()?;
        if initial >> 5 != major {
            self.reader.at -= 1;
            return Err(self.reader.error(what));
        }
        match initial & 0x1f {
            INDEFINITE => Ok(Remaining(None)),
            info => Ok(Remaining(Some(self.reader.length(info)?))),
        }
    }

    /// Enters a map: its entries are key, value, key, value, ...
    pub fn map(&mut self) -> Result<Remaining, DecodeError> {
        self.container(MAP, "expected a map")
    }

    pub fn array(&mut self) -> Result<Remaining, DecodeError> {
        self.container(ARRAY, "expected an array")
    }

    /// Whether the container has another entry (consumes an indefinite one's break).
    pub fn next_in(&mut self, remaining: &mut Remaining) -> bool {
        match &mut remaining.0 {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => !self.reader.at_break(),
        }
    }

    /// Whether the next item is null or undefined (then consumed).
    pub fn null(&mut self) -> bool {
        let is_null = matches!(self.reader.peek(), Some(0xf6 | 0xf7));
        if is_null {
            self.reader.at += 1;
        }
        is_null
    }

    /// The next item as text; `None` for any other kind (skipped).
    pub fn text(&mut self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        match self.reader.item(0)? {
            Value::Text(text) => Ok(Some(text)),
            _ => Ok(None),
        }
    }

    pub fn skip(&mut self) -> Result<(), DecodeError> {
        self.reader.item(0).map(drop)
    }

    /// Checks that the whole input was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.reader.at == self.reader.input.len() {
            Ok(())
        } else {
            Err(self.reader.error("bytes left after the item"))
        }
    }
}

/// IEEE 754 binary16 to f64 (RFC 8949 appendix D).
fn half_to_f64(half: u16) -> f64 {
    let exponent = (half >> 10) & 0x1f;
    let mantissa = f64::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mantissa + 1024.0) * 2f64.powi(i32::from(exponent) - 25),
    };
    if half & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn heads_take_their_shortest_form() {
        // RFC 8949 appendix A.
        for (value, expected) in [
            (0u64, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65535, "19ffff"),
            (65536, "1a00010000"),
            (1_000_000, "1a000f4240"),
            (1_000_000_000_000, "1b000000e8d4a51000"),
            (u64::MAX, "1bffffffffffffffff"),
        ] {
            let mut out = Vec::new();
            Writer(&mut out).unsigned(value);
            assert_eq!(hex(&out), expected, "{value}");
            assert_eq!(decode(&out).unwrap(), Value::Unsigned(value));
        }
        let mut out = Vec::new();
        let mut writer = Writer(&mut out);
        writer.map(1);
        writer.text("a");
        writer.array(2);
        writer.bytes(&[1, 2]);
        writer.text("\u{fc}");
        assert_eq!(hex(&out), "a1616182420102 62c3bc".replace(' ', ""));
    }

    #[test]
    fn reads_the_rfc_examples() {
        let cases: Vec<(&str, Value<'static>)> = vec![
            ("20", Value::Negative(0)),
            ("3863", Value::Negative(99)),
            ("f4", Value::Bool(false)),
            ("f6", Value::Null),
            ("f7", Value::Undefined),
            ("f93c00", Value::Float(1.0)),
            ("f97bff", Value::Float(65504.0)),
            ("f90001", Value::Float(5.960464477539063e-8)),
            ("fa47c35000", Value::Float(100000.0)),
            ("fb3ff199999999999a", Value::Float(1.1)),
            (
                "c11a514b67b0",
                Value::Tag(1, Box::new(Value::Unsigned(1363896240))),
            ),
            ("4401020304", Value::Bytes(Cow::Owned(vec![1, 2, 3, 4]))),
            ("6449455446", Value::Text("IETF".into())),
            (
                "5f42010243030405ff",
                Value::Bytes(Cow::Owned(vec![1, 2, 3, 4, 5])),
            ),
            (
                "7f657374726561646d696e67ff",
                Value::Text("streaming".into()),
            ),
            (
                "9f018202039f0405ffff",
                Value::Array(vec![
                    Value::Unsigned(1),
                    Value::Array(vec![Value::Unsigned(2), Value::Unsigned(3)]),
                    Value::Array(vec![Value::Unsigned(4), Value::Unsigned(5)]),
                ]),
            ),
            (
                "bf61610161629f0203ffff",
                Value::Map(vec![
                    (Value::Text("a".into()), Value::Unsigned(1)),
                    (
                        Value::Text("b".into()),
                        Value::Array(vec![Value::Unsigned(2), Value::Unsigned(3)]),
                    ),
                ]),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(&unhex(input)).unwrap(), expected, "{input}");
        }
        assert!(matches!(decode(&unhex("f97c00")).unwrap(), Value::Float(f) if f == f64::INFINITY));
        assert!(matches!(decode(&unhex("f97e00")).unwrap(), Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn definite_strings_are_borrowed() {
        let input = unhex("a1664572726f7273f6");
        let value = decode(&input).unwrap();
        match &value {
            Value::Map(entries) => assert!(matches!(entries[0].0, Value::Text(Cow::Borrowed(_)))),
            other => panic!("{other:?}"),
        }
        assert_eq!(value.get("Errors"), Some(&Value::Null));
        assert_eq!(value.get("Other"), None);
    }

    #[test]
    fn a_cursor_walks_definite_and_indefinite_containers() {
        // {"a": [1, "x"], "b": null} with an indefinite outer map and array.
        for input in ["a26161820161786162f6", "bf61619f016178ff6162f6ff"] {
            let input = unhex(input);
            let mut cursor = Cursor::new(&input);
            let mut map = cursor.map().unwrap();
            let mut seen = Vec::new();
            while cursor.next_in(&mut map) {
                let key = cursor.text().unwrap().unwrap().into_owned();
                if key == "a" {
                    let mut items = cursor.array().unwrap();
                    assert!(cursor.next_in(&mut items));
                    assert_eq!(cursor.text().unwrap(), None, "a number is not text");
                    assert!(cursor.next_in(&mut items));
                    assert_eq!(cursor.text().unwrap().as_deref(), Some("x"));
                    assert!(!cursor.next_in(&mut items));
                } else {
                    assert!(cursor.null());
                }
                seen.push(key);
            }
            cursor.finish().unwrap();
            assert_eq!(seen, ["a", "b"]);
        }
        let input = unhex("8101");
        let mut cursor = Cursor::new(&input);
        assert_eq!(cursor.map().unwrap_err().reason, "expected a map");
        assert!(cursor.array().is_ok(), "a refused head is not consumed");
        assert!(Cursor::new(&unhex("0000")).finish().is_err());
    }

    #[test]
    fn malformed_input_is_refused_with_its_offset() {
        for (input, reason) in [
            ("", "the input ends inside an item"),
            ("62c3", "a length runs past the end of the input"),
            ("1a0001", "the input ends inside an item"),
            ("0000", "bytes left after the item"),
            ("62c328", "text is not UTF-8"),
            ("ff", "a break outside an indefinite item"),
            ("1c", "reserved additional information"),
            ("5f6161ff", "a string chunk of another kind"),
            ("9f01", "the input ends inside an item"),
            // An array claiming 2^32 items in a 5-byte input must not allocate for them.
            (
                "9bffffffff00000000",
                "a length runs past the end of the input",
            ),
        ] {
            let error = decode(&unhex(input)).unwrap_err();
            assert_eq!(error.reason, reason, "{input}");
        }
        let deep = vec![0x81u8; MAX_DEPTH + 2];
        assert_eq!(decode(&deep).unwrap_err().reason, "nested too deeply");
        assert_eq!(
            decode(&unhex("0000")).unwrap_err().to_string(),
            "malformed CBOR at byte 1: bytes left after the item"
        );
    }
}
