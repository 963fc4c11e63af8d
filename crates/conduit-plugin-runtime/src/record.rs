//! `opencdc.v1.Record`, written by hand rather than generated, for its metadata.
//!
//! A generated record decodes `map<string, string> metadata` into a map of owned strings:
//! two allocations per entry plus the map's node, then as many frees, for the five to ten
//! entries every Conduit record carries; in a perf profile of the destination at full rate
//! allocating them took about 6% of the plugin's CPU. [`Metadata`] keeps all keys and values of a record in one string and
//! a sorted list of spans into it, so a record's metadata costs two allocations. On the wire
//! nothing changes: field numbers, types and the entry encoding are those of
//! `proto/opencdc/v1/opencdc.proto` (checked against prost's own map encoding in the tests).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Index, Range};

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    self, check_wire_type, decode_key, decode_varint, encode_key, encode_varint,
    encoded_len_varint, key_len, skip_field, DecodeContext, WireType,
};
use prost::DecodeError;

use crate::proto::opencdc::v1::{Change, Data, Operation};

/// A single change event (`opencdc.v1.Record`).
#[derive(Clone, PartialEq, Default)]
pub struct Record {
    /// Opaque, unique position used for acknowledgements and resuming.
    pub position: Vec<u8>,
    /// An `opencdc.v1.Operation` value.
    pub operation: i32,
    /// Free-form metadata; standard keys use the `opencdc.` / `conduit.` prefixes.
    pub metadata: Metadata,
    /// Identifies the changed entity.
    pub key: Option<Data>,
    /// State before and/or after the change.
    pub payload: Option<Change>,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operation = Operation::try_from(self.operation)
            .map(|o| format!("{o:?}"))
            .unwrap_or_else(|_| self.operation.to_string());
        f.debug_struct("Record")
            .field("position", &self.position)
            .field("operation", &format_args!("{operation}"))
            .field("metadata", &self.metadata)
            .field("key", &self.key)
            .field("payload", &self.payload)
            .finish()
    }
}

const POSITION: u32 = 1;
const OPERATION: u32 = 2;
const METADATA: u32 = 3;
const KEY: u32 = 4;
const PAYLOAD: u32 = 5;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;

impl prost::Message for Record {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.position.is_empty() {
            encoding::bytes::encode(POSITION, &self.position, buf);
        }
        if self.operation != 0 {
            encoding::int32::encode(OPERATION, &self.operation, buf);
        }
        for (key, value) in self.metadata.iter() {
            encode_key(METADATA, WireType::LengthDelimited, buf);
            encode_varint(entry_len(key, value) as u64, buf);
            encode_entry_part(ENTRY_KEY, key, buf);
            encode_entry_part(ENTRY_VALUE, value, buf);
        }
        if let Some(key) = &self.key {
            encoding::message::encode(KEY, key, buf);
        }
        if let Some(payload) = &self.payload {
            encoding::message::encode(PAYLOAD, payload, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = |mut error: DecodeError, name: &'static str| {
            error.push("Record", name);
            error
        };
        match tag {
            POSITION => encoding::bytes::merge(wire_type, &mut self.position, buf, ctx)
                .map_err(|e| field(e, "position")),
            OPERATION => encoding::int32::merge(wire_type, &mut self.operation, buf, ctx)
                .map_err(|e| field(e, "operation")),
            METADATA => self
                .metadata
                .merge_entry(wire_type, buf, ctx)
                .map_err(|e| field(e, "metadata")),
            KEY => encoding::message::merge(
                wire_type,
                self.key.get_or_insert_with(Default::default),
                buf,
                ctx,
            )
            .map_err(|e| field(e, "key")),
            PAYLOAD => encoding::message::merge(
                wire_type,
                self.payload.get_or_insert_with(Default::default),
                buf,
                ctx,
            )
            .map_err(|e| field(e, "payload")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let position = if self.position.is_empty() {
            0
        } else {
            encoding::bytes::encoded_len(POSITION, &self.position)
        };
        let operation = if self.operation == 0 {
            0
        } else {
            encoding::int32::encoded_len(OPERATION, &self.operation)
        };
        let metadata: usize = self
            .metadata
            .iter()
            .map(|(key, value)| {
                let len = entry_len(key, value);
                key_len(METADATA) + encoded_len_varint(len as u64) + len
            })
            .sum();
        let key = self
            .key
            .as_ref()
            .map_or(0, |k| encoding::message::encoded_len(KEY, k));
        let payload = self
            .payload
            .as_ref()
            .map_or(0, |p| encoding::message::encoded_len(PAYLOAD, p));
        position + operation + metadata + key + payload
    }

    fn clear(&mut self) {
        *self = Record::default();
    }
}

/// One string of a map entry; like prost's map encoding, an empty one (the default) is left
/// out.
fn encode_entry_part(tag: u32, text: &str, buf: &mut impl BufMut) {
    if !text.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(text.len() as u64, buf);
        buf.put_slice(text.as_bytes());
    }
}

/// Encoded length of one map entry message.
fn entry_len(key: &str, value: &str) -> usize {
    let part = |tag: u32, text: &str| {
        if text.is_empty() {
            0
        } else {
            key_len(tag) + encoded_len_varint(text.len() as u64) + text.len()
        }
    };
    part(ENTRY_KEY, key) + part(ENTRY_VALUE, value)
}

const TYPICAL_TEXT: usize = 384;
const TYPICAL_ENTRIES: usize = 10;

/// Where one entry's key and value are in [`Metadata::text`].
#[derive(Clone, Copy)]
struct Span {
    key: (u32, u32),
    value: (u32, u32),
}

fn range((start, end): (u32, u32)) -> Range<usize> {
    start as usize..end as usize
}

/// A record's metadata: string keys, each with one string value, in key order (like the
/// `BTreeMap<String, String>` a generated record has), stored in one buffer.
#[derive(Clone, Default)]
pub struct Metadata {
    /// Keys and values, back to back. A value replaced by `insert` stays here unused until
    /// the record is dropped; replacing is rare (a source sets each key once).
    text: String,
    /// Sorted by key, keys unique.
    entries: Vec<Span>,
}

impl Metadata {
    /// No entries.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Room for `entries` entries whose keys and values total `text_bytes` bytes.
    pub fn with_capacity(entries: usize, text_bytes: usize) -> Metadata {
        Metadata {
            text: String::with_capacity(text_bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key_of(&self, span: &Span) -> &str {
        &self.text[range(span.key)]
    }

    fn value_of(&self, span: &Span) -> &str {
        &self.text[range(span.value)]
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|span| self.key_of(span).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| self.value_of(&self.entries[i]))
    }

    /// Whether `key` has an entry.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let key_span = self.push(key.as_ref());
        let value_span = self.push(value.as_ref());
        self.place(key_span, value_span);
    }

    /// Removes `key`; true when it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator {
        self.entries
            .iter()
            .map(|span| (self.key_of(span), self.value_of(span)))
    }

    /// Keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.entries.iter().map(|span| self.key_of(span))
    }

    /// Appends `text` to the buffer and returns where it is.
    fn push(&mut self, text: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(text);
        (offset(start), offset(self.text.len()))
    }

    /// Files a key and value already in the buffer, replacing an entry with the same key.
    fn place(&mut self, key: (u32, u32), value: (u32, u32)) {
        let span = Span { key, value };
        let position = match self.entries.last() {
            // Sorted input (what prost and this type write) appends without a search.
            Some(last) if self.key_of(last) < &self.text[range(key)] => Err(self.entries.len()),
            None => Err(0),
            Some(_) => self.find(&self.text[range(key)]),
        };
        match position {
            Ok(i) => self.entries[i] = span,
            Err(i) => self.entries.insert(i, span),
        }
    }

    /// Decodes one map entry (a nested message with `key = 1` and `value = 2`, either left
    /// out when empty; the last of repeated fields or entries wins, as in prost and Go).
    fn merge_entry(
        &mut self,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        check_wire_type(WireType::LengthDelimited, wire_type)?;
        let len = decode_varint(buf)?;
        let remaining = buf.remaining();
        if len > remaining as u64 {
            return Err(decode_error("buffer underflow"));
        }
        let limit = remaining - len as usize;
        if self.entries.is_empty() {
            // Room for what a Conduit record usually carries (five to ten entries of a few
            // dozen bytes) instead of growing the buffers step by step.
            self.text.reserve(TYPICAL_TEXT);
            self.entries.reserve(TYPICAL_ENTRIES);
        }
        let here = offset(self.text.len());
        let (mut key, mut value) = ((here, here), (here, here));
        while buf.remaining() > limit {
            let (tag, wire_type) = decode_key(buf)?;
            match tag {
                ENTRY_KEY | ENTRY_VALUE => {
                    check_wire_type(WireType::LengthDelimited, wire_type)?;
                    let span = self.read_string(buf, limit)?;
                    if tag == ENTRY_KEY {
                        key = span;
                    } else {
                        value = span;
                    }
                }
                _ => skip_field(wire_type, tag, buf, ctx.clone())?,
            }
        }
        if buf.remaining() != limit {
            return Err(decode_error("delimited length exceeded"));
        }
        self.place(key, value);
        Ok(())
    }

    /// Reads a length-delimited string that ends before `limit` bytes remain.
    fn read_string(&mut self, buf: &mut impl Buf, limit: usize) -> Result<(u32, u32), DecodeError> {
        let len = decode_varint(buf)?;
        if len > (buf.remaining() - limit) as u64 {
            return Err(decode_error("buffer underflow"));
        }
        let len = len as usize;
        let invalid = || decode_error("invalid string value: data is not UTF-8 encoded");
        if buf.chunk().len() >= len {
            let text = std::str::from_utf8(&buf.chunk()[..len]).map_err(|_| invalid())?;
            let span = self.push(text);
            buf.advance(len);
            Ok(span)
        } else {
            let mut bytes = vec![0; len];
            buf.copy_to_slice(&mut bytes);
            let text = String::from_utf8(bytes).map_err(|_| invalid())?;
            Ok(self.push(&text))
        }
    }
}

/// prost offers no other way to name a decoding problem of a hand-written message.
#[allow(deprecated)]
fn decode_error(message: &'static str) -> DecodeError {
    DecodeError::new(message)
}

/// Metadata is bounded by the record size Conduit sends (a few MiB), far below `u32::MAX`.
fn offset(position: usize) -> u32 {
    u32::try_from(position).expect("record metadata larger than 4 GiB")
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Metadata) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Metadata {}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Index<&str> for Metadata {
    type Output = str;

    fn index(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no metadata entry {key:?}"))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Metadata {
        let mut metadata = Metadata::new();
        metadata.extend(entries);
        metadata
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Metadata {
    fn from(entries: [(K, V); N]) -> Metadata {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Metadata {
    fn from(map: BTreeMap<String, String>) -> Metadata {
        map.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::opencdc::v1::data;
    use prost::Message;

    /// The generated shape of `opencdc.v1.Record` (a map of owned strings), to check the
    /// hand-written codec against prost's own.
    #[derive(Clone, PartialEq, prost::Message)]
    struct GeneratedRecord {
        #[prost(bytes = "vec", tag = "1")]
        position: Vec<u8>,
        #[prost(enumeration = "Operation", tag = "2")]
        operation: i32,
        #[prost(btree_map = "string, string", tag = "3")]
        metadata: BTreeMap<String, String>,
        #[prost(message, optional, tag = "4")]
        key: Option<Data>,
        #[prost(message, optional, tag = "5")]
        payload: Option<Change>,
    }

    fn raw(bytes: &[u8]) -> Option<Data> {
        Some(Data {
            data: Some(data::Data::RawData(bytes.to_vec().into())),
        })
    }

    fn sample() -> GeneratedRecord {
        GeneratedRecord {
            position: b"pos-1".to_vec(),
            operation: Operation::Update as i32,
            metadata: [
                ("opencdc.readAt", "1700000000000000000"),
                ("opencdc.collection", "orders"),
                ("empty.value", ""),
                ("", "empty key"),
                ("ünïcode", "välue ✓"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            key: raw(b"k"),
            payload: Some(Change {
                before: None,
                after: raw(b"after"),
            }),
        }
    }

    fn ours(generated: &GeneratedRecord) -> Record {
        Record {
            position: generated.position.clone(),
            operation: generated.operation,
            metadata: generated.metadata.clone().into(),
            key: generated.key.clone(),
            payload: generated.payload.clone(),
        }
    }

    #[test]
    fn encodes_byte_for_byte_like_prost() {
        let generated = sample();
        let record = ours(&generated);
        assert_eq!(record.encode_to_vec(), generated.encode_to_vec());
        assert_eq!(record.encoded_len(), generated.encoded_len());
        assert_eq!(Record::default().encode_to_vec(), Vec::<u8>::new());
    }

    #[test]
    fn decodes_what_prost_encodes() {
        let generated = sample();
        let decoded = Record::decode(generated.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, ours(&generated));
        assert_eq!(decoded.metadata.get("opencdc.collection"), Some("orders"));
        assert_eq!(decoded.metadata.get("empty.value"), Some(""));
        assert_eq!(decoded.metadata.get(""), Some("empty key"));
        assert_eq!(decoded.metadata.get("missing"), None);
        let keys: Vec<&str> = decoded.metadata.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "entries are in key order");
    }

    #[test]
    fn unsorted_and_repeated_entries_end_up_sorted_last_one_winning() {
        // Go writes map entries in random order; a key may come twice (the last wins).
        let entry = |k: &str, v: &str| GeneratedRecord {
            metadata: [(k.to_string(), v.to_string())].into(),
            ..Default::default()
        };
        let mut wire = Vec::new();
        for (k, v) in [("b", "1"), ("c", "2"), ("a", "3"), ("b", "4")] {
            wire.extend(entry(k, v).encode_to_vec());
        }
        let decoded = Record::decode(wire.as_slice()).unwrap();
        let entries: Vec<(&str, &str)> = decoded.metadata.iter().collect();
        assert_eq!(entries, [("a", "3"), ("b", "4"), ("c", "2")]);
        let generated = GeneratedRecord::decode(wire.as_slice()).unwrap();
        assert_eq!(decoded, ours(&generated));
    }

    #[test]
    fn entry_fields_in_any_order_and_unknown_fields_skipped() {
        // entry { value = "v"; 7: varint 1; key = "k" }
        let entry = [0x12, 0x01, b'v', 0x38, 0x01, 0x0a, 0x01, b'k'];
        let mut wire = vec![0x1a, entry.len() as u8];
        wire.extend(entry);
        wire.extend([0x48, 0x05]); // unknown record field 9
        let decoded = Record::decode(wire.as_slice()).unwrap();
        assert_eq!(decoded.metadata.get("k"), Some("v"));
        assert_eq!(decoded.metadata.len(), 1);
    }

    #[test]
    fn bad_entries_are_errors() {
        // Not UTF-8.
        let wire = [0x1a, 0x03, 0x0a, 0x01, 0xff];
        let error = Record::decode(&wire[..]).unwrap_err().to_string();
        assert!(
            error.contains("UTF-8") && error.contains("metadata"),
            "{error}"
        );
        // A string running past its entry.
        let wire = [0x1a, 0x03, 0x0a, 0x05, b'a', b'b', b'c'];
        assert!(Record::decode(&wire[..]).is_err());
        // An entry running past the message.
        let wire = [0x1a, 0x09, 0x0a, 0x01, b'a'];
        assert!(Record::decode(&wire[..]).is_err());
        // Metadata not length-delimited.
        let wire = [0x18, 0x01];
        assert!(Record::decode(&wire[..]).is_err());
    }

    #[test]
    fn strings_split_across_buffer_chunks() {
        let generated = sample();
        let wire = generated.encode_to_vec();
        for split in 1..wire.len() {
            let (a, b) = wire.split_at(split);
            let decoded = Record::decode(Buf::chain(a, b)).unwrap();
            assert_eq!(decoded, ours(&generated), "split at {split}");
        }
    }

    #[test]
    fn insert_replace_remove_and_index() {
        let mut metadata = Metadata::from([("b", "1"), ("a", "2")]);
        metadata.insert("b", "3");
        metadata.insert(String::from("c"), String::from("4"));
        assert_eq!(metadata.len(), 3);
        assert_eq!(&metadata["b"], "3");
        assert!(metadata.remove("a"));
        assert!(!metadata.remove("a"));
        assert!(!metadata.contains_key("a"));
        assert_eq!(
            metadata.iter().collect::<Vec<_>>(),
            [("b", "3"), ("c", "4")]
        );
        assert_eq!(format!("{metadata:?}"), r#"{"b": "3", "c": "4"}"#);
        assert_eq!(metadata, Metadata::from([("c", "4"), ("b", "3")]));
        assert_ne!(metadata, Metadata::from([("c", "4")]));
    }
}
