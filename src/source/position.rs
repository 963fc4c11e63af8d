//! The source position: progress for every shard of the stream, in a compact binary form.
//!
//! Conduit persists only the position of the last record it acknowledged and hands it back to
//! `Open` on restart (conduit-protocol.md §4.7), so one position must resume **every** shard
//! right after what was delivered: it holds a [`ShardProgress`] for each shard the connector
//! has read from, including closed shards read to their end ([`ShardProgress::Finished`]), so
//! that their children may be read after a restart.
//!
//! # Binary formats
//!
//! This connector writes format **version 2** ([`v2`]): the same layout as version 1 below,
//! except that a shard's sequence number is written as the bytes in which it differs from the
//! previous shard's, which halves positions of streams with many shards (about 12 bytes per
//! shard at 512 shards instead of 27). Positions of version 1, which earlier connector versions
//! wrote, are still read ([`Position::encode_v1`] writes them, for tests).
//!
//! # Binary format, version 1
//!
//! All integers are unsigned LEB128 varints (7 bits per byte, low bits first, minimal length).
//!
//! ```text
//! position   = 0xA1                      magic nibble 0xA, format version 1
//!              varint len, stream name   UTF-8
//!              varint shard count
//!              shard*                    in shard-id order (byte order of the ids), no duplicates
//! shard      = varint header             (id << 3) | (tag << 1) | 0   standard id `shardId-` + 12 digits,
//!                                                                       id = the number
//!                                          (len << 3) | (tag << 1) | 1   any other id, followed by
//!              [len bytes of id]                                        its UTF-8 bytes
//!              progress
//! tag        = 0 after                   progress = varint n, n bytes: sequence::pack(sequence)
//!              1 after + sub-sequence    progress = varint n, n bytes, varint sub-sequence
//!              2 finished                progress = nothing
//! ```
//!
//! A sequence number is stored as its minimal big-endian integer (see [`super::sequence`]):
//! a 56-digit one takes 24 bytes (23 below 2^184 ≈ 2.5e55; Kinesis' start with 49...). Bytes
//! per shard with a standard id and a 24-byte sequence:
//!
//! | shard progress                      | shard number < 16 | < 2048 | < 262144 |
//! |-------------------------------------|-------------------|--------|----------|
//! | after a 56-digit sequence           | 26                | 27     | 28       |
//! | same, with sub-sequence < 128       | 27                | 28     | 29       |
//! | same, with sub-sequence < 16384     | 28                | 29     | 30       |
//! | finished                            | 1                 | 2      | 3        |
//!
//! plus, once, the stream name and 3 bytes (with fewer than 128 shards and a name shorter than
//! 128 bytes). A non-standard shard id costs its length + 1 to 2 bytes instead of the 1 to 3
//! byte header.
//!
//! The version byte keeps the high nibble `0xA`: `0xA3`..`0xAF` are future versions, which this
//! connector rejects with [`PositionError::UnsupportedVersion`] (version 15 is reserved to
//! introduce a longer version field). Anything else is [`PositionError::Malformed`] for
//! [`Position::decode`].
//!
//! # Positions of the Go connector
//!
//! A pipeline that ran the Go Kinesis connector (`conduitio-labs/conduit-connector-kinesis`
//! v0.2.0) hands over its position, the JSON `{"sequenceNumber":"…","shardId":"…"}` of the last
//! record: one shard only, no stream name. [`Position::decode_saved`] accepts it as
//! [`Saved::GoConnector`]: that shard resumes after that sequence number, and every other shard,
//! absent from the position, starts from its oldest record (`TRIM_HORIZON`), as shards that
//! appear after a position was written do. Nothing is lost; what the Go connector had delivered
//! from the other shards is delivered again.
//!
//! # Determinism and uniqueness
//!
//! Shards are written in `BTreeMap` order and every field has exactly one encoding (minimal
//! varints, minimal sequence bytes, the compact form whenever an id is standard), so equal
//! states give equal bytes and [`Position::decode`] accepts only bytes [`Position::encode`]
//! (or, for version 1, [`Position::encode_v1`]) produces. Positions of different records differ: every record moves its own shard's progress
//! strictly forward (a higher sequence number, or a higher sub-sequence within one aggregated
//! Kinesis record) and progress never moves back, so no two records of one run share a state.
//! Conduit's `Stop` draining compares positions with `bytes.Equal` (conduit-protocol.md §4.3),
//! which relies on this.
//!
//! # Hot path
//!
//! [`PositionEncoder`] ([`encoder`]) keeps the encoded shard entries in one buffer and
//! rewrites only the entry of the shard that advanced (and of the next one, written relative
//! to it), so a position per record costs two shard entries plus one copy of the buffer.

mod encoder;
mod v2;

use std::collections::BTreeMap;

use super::sequence;
pub(crate) use encoder::PositionEncoder;

/// Magic nibble (high 4 bits of the first byte).
const MAGIC: u8 = 0xA0;
/// The format version this connector writes; it reads this one and [`VERSION_1`].
pub(crate) const VERSION: u8 = 2;
/// The format version connector versions before [`VERSION`] wrote.
pub(crate) const VERSION_1: u8 = 1;

const TAG_AFTER: u64 = 0;
const TAG_AFTER_SUB: u64 = 1;
const TAG_FINISHED: u64 = 2;

const STANDARD_PREFIX: &str = "shardId-";
const STANDARD_DIGITS: usize = 12;

/// How far one shard has been delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardProgress {
    /// Every record up to Kinesis record `sequence` was delivered.
    ///
    /// * `sub_sequence: None`: record `sequence` was delivered entirely (a plain record, or
    ///   every user record of an aggregated one): resume with `AFTER_SEQUENCE_NUMBER`
    ///   `sequence`.
    /// * `sub_sequence: Some(k)`: `sequence` is an aggregated (KPL) record of which the user
    ///   records with sub-sequence `0..=k` were delivered: resume with `AT_SEQUENCE_NUMBER`
    ///   `sequence` and skip its user records with sub-sequence `<= k` (see
    ///   [`ShardProgress::resume`] and [`ShardProgress::covers`]). Resuming *after* it would
    ///   lose the rest of the aggregate.
    After {
        sequence: String,
        sub_sequence: Option<u64>,
    },
    /// The shard is closed and was read to its end.
    Finished,
}

/// Where to resume reading a shard, derived from its [`ShardProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume<'a> {
    /// `AFTER_SEQUENCE_NUMBER` this sequence number.
    AfterSequence(&'a str),
    /// `AT_SEQUENCE_NUMBER` this sequence number, then drop the user records of that Kinesis
    /// record whose sub-sequence is `<= skip_through`.
    AtSequence {
        sequence: &'a str,
        skip_through: u64,
    },
    /// Nothing left to read: the shard was read to its end.
    Finished,
}

impl ShardProgress {
    /// Where a reader resumes this shard.
    pub fn resume(&self) -> Resume<'_> {
        match self {
            ShardProgress::After {
                sequence,
                sub_sequence: None,
            } => Resume::AfterSequence(sequence),
            ShardProgress::After {
                sequence,
                sub_sequence: Some(k),
            } => Resume::AtSequence {
                sequence,
                skip_through: *k,
            },
            ShardProgress::Finished => Resume::Finished,
        }
    }

    /// Whether the user record `(sequence, sub_sequence)` of this shard was already delivered
    /// according to this progress (a reader drops such records after resuming).
    /// `sub_sequence` is `None` for a plain (non-aggregated) record, which counts as the one and
    /// only user record of its Kinesis record.
    pub fn covers(&self, sequence: &str, sub_sequence: Option<u64>) -> bool {
        match self {
            ShardProgress::Finished => true,
            ShardProgress::After {
                sequence: done,
                sub_sequence: done_sub,
            } => match sequence::compare(sequence, done) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => match done_sub {
                    None => true,
                    Some(k) => sub_sequence.unwrap_or(0) <= *k,
                },
            },
        }
    }
}

/// The source position: the stream and the progress of every shard read so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub stream: String,
    pub shards: BTreeMap<String, ShardProgress>,
}

/// A position handed back by Conduit, as [`Position::decode_saved`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// This connector's position.
    Native(Position),
    /// The Go connector's position: `position` holds `shard` after `sequence`.
    GoConnector {
        position: Position,
        shard: String,
        sequence: String,
    },
}

impl Saved {
    pub fn position(&self) -> &Position {
        match self {
            Saved::Native(position) | Saved::GoConnector { position, .. } => position,
        }
    }

    pub fn into_position(self) -> Position {
        match self {
            Saved::Native(position) | Saved::GoConnector { position, .. } => position,
        }
    }
}

/// The Go connector's position (its `kinesisPosition`). Go's `encoding/json` matches field
/// names case-insensitively and ignores others; so does this.
#[derive(serde::Deserialize)]
struct GoPosition {
    #[serde(alias = "SequenceNumber", alias = "sequencenumber")]
    #[serde(rename = "sequenceNumber")]
    sequence_number: Option<String>,
    #[serde(alias = "ShardId", alias = "shardid", alias = "ShardID")]
    #[serde(rename = "shardId")]
    shard_id: Option<String>,
}

/// Kinesis shard ids are 1 to 128 characters of `[a-zA-Z0-9_.-]`.
fn is_shard_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Why a position could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// Not a position of this connector, or corrupted.
    #[error(
        "invalid source position ({reason} at byte {offset} of {len}): it was not written by \
         this connector or is corrupted; reset the pipeline's position"
    )]
    Malformed {
        reason: &'static str,
        offset: usize,
        len: usize,
    },
    /// JSON like the Go connector's position, but not a usable one.
    #[error(
        "invalid source position: it looks like the Go Kinesis connector's position \
         ({{\"sequenceNumber\":…,\"shardId\":…}}) but {reason}; reset the pipeline's position"
    )]
    GoConnector { reason: String },
    /// Written by a newer connector version in a format this version does not know.
    #[error(
        "the source position has format version {found}, but this connector version reads \
         position format versions 1 to {supported} only: upgrade the connector"
    )]
    UnsupportedVersion { found: u8, supported: u8 },
    /// A valid position of another stream.
    #[error(
        "the source position belongs to stream {position_stream:?} but the connector reads \
         stream {configured_stream:?}: reset the pipeline's position or point the connector at \
         stream {position_stream:?}"
    )]
    OtherStream {
        position_stream: String,
        configured_stream: String,
    },
}

impl Position {
    /// An empty position of `stream`.
    pub fn new(stream: impl Into<String>) -> Self {
        Position {
            stream: stream.into(),
            shards: BTreeMap::new(),
        }
    }

    /// The bytes handed to Conduit: format version 2 ([`v2`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.shards.len() * 16);
        let mut previous: Option<Vec<u8>> = None;
        for (id, progress) in &self.shards {
            let packed = match progress {
                ShardProgress::After { sequence, .. } => sequence::pack(sequence),
                ShardProgress::Finished => Vec::new(),
            };
            v2::encode_entry(&mut body, id, progress, &packed, previous.as_deref());
            if matches!(progress, ShardProgress::After { .. }) {
                previous = Some(packed);
            }
        }
        assemble(
            &encode_prefix(&self.stream, VERSION),
            self.shards.len(),
            &body,
        )
    }

    /// The bytes of format version 1, which connector versions before format version 2
    /// wrote (format in the module docs). Kept to check that those positions are still read.
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.shards.len() * 28);
        for (id, progress) in &self.shards {
            encode_shard_v1(&mut body, id, progress);
        }
        assemble(
            &encode_prefix(&self.stream, VERSION_1),
            self.shards.len(),
            &body,
        )
    }

    /// Parses a position of format version 1 or 2, as [`Position::encode_v1`] and
    /// [`Position::encode`] (or [`PositionEncoder::encode`]) write them; only those exact
    /// bytes are accepted.
    ///
    /// Conduit may hand over an empty position where there is none; callers should treat
    /// empty bytes like no position before calling this, which rejects them.
    pub fn decode(bytes: &[u8]) -> Result<Position, PositionError> {
        Position::decode_versioned(bytes).map(|(position, _)| position)
    }

    /// [`Position::decode`], also returning the format version the bytes were written in.
    pub fn decode_versioned(bytes: &[u8]) -> Result<(Position, u8), PositionError> {
        let mut r = Reader { bytes, offset: 0 };
        let first = r.byte("empty position")?;
        if first & 0xF0 != MAGIC {
            return Err(r.malformed_at(0, "unknown format"));
        }
        let version = match first & 0x0F {
            v @ (VERSION_1 | VERSION) => v,
            0 => return Err(r.malformed_at(0, "unknown format")),
            found => {
                return Err(PositionError::UnsupportedVersion {
                    found,
                    supported: VERSION,
                })
            }
        };

        let stream = r.string("truncated in the stream name")?.to_owned();
        let count = r.varint("truncated in the shard count")?;
        let mut shards = BTreeMap::new();
        let mut previous_id: Option<String> = None;
        let mut previous_sequence: Option<Vec<u8>> = None;
        for _ in 0..count {
            let start = r.offset;
            let (id, progress) = if version == VERSION_1 {
                decode_shard_v1(&mut r)?
            } else {
                v2::decode_entry(&mut r, &mut previous_sequence)?
            };
            if previous_id.as_deref().is_some_and(|p| p >= id.as_str()) {
                return Err(r.malformed_at(start, "shards out of order"));
            }
            shards.insert(id.clone(), progress);
            previous_id = Some(id);
        }
        if r.offset != bytes.len() {
            return Err(r.malformed_at(r.offset, "trailing bytes"));
        }
        Ok((Position { stream, shards }, version))
    }

    /// A position Conduit handed back to `Open` for a source reading `stream`: this
    /// connector's ([`Position::decode_for_stream`]) or the Go connector's JSON position (see
    /// the module docs), which names no stream and is taken to be of `stream`.
    pub fn decode_saved(bytes: &[u8], stream: &str) -> Result<Saved, PositionError> {
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Position::decode_for_stream(bytes, stream).map(Saved::Native);
        }
        let invalid = |reason: String| PositionError::GoConnector { reason };
        let go: GoPosition = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("is not valid JSON of that shape ({e})")))?;
        let shard = go
            .shard_id
            .ok_or_else(|| invalid("has no shardId".into()))?;
        let sequence = go
            .sequence_number
            .ok_or_else(|| invalid("has no sequenceNumber".into()))?;
        if !is_shard_id(&shard) {
            return Err(invalid(format!(
                "shardId {shard:?} is not a Kinesis shard id"
            )));
        }
        if !sequence::is_valid(&sequence) {
            return Err(invalid(format!(
                "sequenceNumber {sequence:?} is not a Kinesis sequence number"
            )));
        }
        let mut position = Position::new(stream);
        position.shards.insert(
            shard.clone(),
            ShardProgress::After {
                sequence: sequence.clone(),
                sub_sequence: None,
            },
        );
        Ok(Saved::GoConnector {
            position,
            shard,
            sequence,
        })
    }

    /// [`Position::decode`], then checks that the position belongs to `stream`.
    pub fn decode_for_stream(bytes: &[u8], stream: &str) -> Result<Position, PositionError> {
        let position = Position::decode(bytes)?;
        if position.stream != stream {
            return Err(PositionError::OtherStream {
                position_stream: position.stream,
                configured_stream: stream.to_owned(),
            });
        }
        Ok(position)
    }
}

fn encode_prefix(stream: &str, version: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() + 3);
    out.push(MAGIC | version);
    put_varint(&mut out, stream.len() as u64);
    out.extend_from_slice(stream.as_bytes());
    out
}

fn assemble(prefix: &[u8], count: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 10 + body.len());
    out.extend_from_slice(prefix);
    put_varint(&mut out, count as u64);
    out.extend_from_slice(body);
    out
}

/// The number of a standard shard id (`shardId-` + exactly 12 ASCII digits).
fn standard_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix(STANDARD_PREFIX)?.as_bytes();
    if digits.len() != STANDARD_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Reads a shard id from an entry header's id part (both format versions write it the same
/// way): a standard id is its number `value`; a custom one (`custom`) is `value` bytes of text
/// that follow. `start` is where the entry began, for error offsets.
fn decode_shard_id(
    r: &mut Reader<'_>,
    start: usize,
    custom: bool,
    value: u64,
) -> Result<String, PositionError> {
    if !custom {
        if value >= 10u64.pow(STANDARD_DIGITS as u32) {
            return Err(r.malformed_at(start, "shard number out of range"));
        }
        return Ok(format!(
            "{STANDARD_PREFIX}{value:0width$}",
            width = STANDARD_DIGITS
        ));
    }
    let len = usize::try_from(value)
        .map_err(|_| r.malformed_at(start, "shard id length out of range"))?;
    let raw = r.take(len, "truncated in a shard id")?;
    let id =
        std::str::from_utf8(raw).map_err(|_| r.malformed_at(start, "shard id is not UTF-8"))?;
    if id.is_empty() || standard_number(id).is_some() {
        return Err(r.malformed_at(start, "non-canonical shard id"));
    }
    Ok(id.to_owned())
}

/// Reads one shard entry of format version 1.
fn decode_shard_v1(r: &mut Reader<'_>) -> Result<(String, ShardProgress), PositionError> {
    let start = r.offset;
    let header = r.varint("truncated in a shard header")?;
    let tag = (header >> 1) & 0b11;
    let value = header >> 3;
    let id = decode_shard_id(r, start, header & 1 != 0, value)?;

    let progress = match tag {
        TAG_AFTER | TAG_AFTER_SUB => {
            let seq_start = r.offset;
            let len = r.varint("truncated in a sequence number")?;
            if len > sequence::MAX_PACKED_LEN as u64 {
                return Err(r.malformed_at(seq_start, "sequence number too long"));
            }
            let packed = r.take(len as usize, "truncated in a sequence number")?;
            if packed.first() == Some(&0) {
                return Err(r.malformed_at(seq_start, "non-canonical sequence number"));
            }
            let seq = sequence::unpack(packed);
            if !sequence::is_valid(&seq) {
                return Err(r.malformed_at(seq_start, "invalid sequence number"));
            }
            let sub_sequence = if tag == TAG_AFTER_SUB {
                Some(r.varint("truncated in a sub-sequence number")?)
            } else {
                None
            };
            ShardProgress::After {
                sequence: seq,
                sub_sequence,
            }
        }
        TAG_FINISHED => ShardProgress::Finished,
        _ => return Err(r.malformed_at(start, "unknown shard progress tag")),
    };
    Ok((id, progress))
}

fn encode_shard_v1(out: &mut Vec<u8>, id: &str, progress: &ShardProgress) {
    let tag = match progress {
        ShardProgress::After {
            sub_sequence: None, ..
        } => TAG_AFTER,
        ShardProgress::After {
            sub_sequence: Some(_),
            ..
        } => TAG_AFTER_SUB,
        ShardProgress::Finished => TAG_FINISHED,
    };
    match standard_number(id) {
        Some(n) => put_varint(out, (n << 3) | (tag << 1)),
        None => {
            put_varint(out, ((id.len() as u64) << 3) | (tag << 1) | 1);
            out.extend_from_slice(id.as_bytes());
        }
    }
    if let ShardProgress::After {
        sequence,
        sub_sequence,
    } = progress
    {
        let packed = sequence::pack(sequence);
        put_varint(out, packed.len() as u64);
        out.extend_from_slice(&packed);
        if let Some(sub) = sub_sequence {
            put_varint(out, *sub);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn malformed_at(&self, offset: usize, reason: &'static str) -> PositionError {
        PositionError::Malformed {
            reason,
            offset,
            len: self.bytes.len(),
        }
    }

    fn byte(&mut self, eof_reason: &'static str) -> Result<u8, PositionError> {
        let b = *self
            .bytes
            .get(self.offset)
            .ok_or_else(|| self.malformed_at(self.offset, eof_reason))?;
        self.offset += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize, eof_reason: &'static str) -> Result<&'a [u8], PositionError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.malformed_at(self.offset, eof_reason))?;
        let out = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(out)
    }

    /// A minimal-length LEB128 varint of at most 64 bits.
    fn varint(&mut self, eof_reason: &'static str) -> Result<u64, PositionError> {
        let start = self.offset;
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte(eof_reason)?;
            let bits = u64::from(b & 0x7F);
            if i == 9 && bits > 1 {
                return Err(self.malformed_at(start, "varint overflows 64 bits"));
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(self.malformed_at(start, "non-minimal varint"));
                }
                return Ok(value);
            }
        }
        Err(self.malformed_at(start, "varint longer than 10 bytes"))
    }

    fn string(&mut self, eof_reason: &'static str) -> Result<&'a str, PositionError> {
        let start = self.offset;
        let len = self.varint(eof_reason)?;
        let len = usize::try_from(len).map_err(|_| self.malformed_at(start, eof_reason))?;
        let raw = self.take(len, eof_reason)?;
        std::str::from_utf8(raw).map_err(|_| self.malformed_at(start, "text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const SEQ_56: &str = "49656955519473916467716018592383429564417383584367116290";

    fn after(seq: &str) -> ShardProgress {
        ShardProgress::After {
            sequence: seq.to_owned(),
            sub_sequence: None,
        }
    }

    fn after_sub(seq: &str, sub: u64) -> ShardProgress {
        ShardProgress::After {
            sequence: seq.to_owned(),
            sub_sequence: Some(sub),
        }
    }

    fn std_id(n: u64) -> String {
        format!("shardId-{n:012}")
    }

    fn encode_in(p: &Position, version: u8) -> Vec<u8> {
        if version == VERSION_1 {
            p.encode_v1()
        } else {
            p.encode()
        }
    }

    fn random_sequence(rng: &mut StdRng) -> String {
        let len = match rng.random_range(0..10) {
            0 => rng.random_range(1..=sequence::MAX_DIGITS),
            1 => 1,
            _ => 56,
        };
        if len == 1 {
            return rng.random_range(0..10u8).to_string();
        }
        let mut s = String::new();
        s.push(char::from(b'1' + rng.random_range(0..9u8)));
        for _ in 1..len {
            s.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        s
    }

    fn random_id(rng: &mut StdRng) -> String {
        match rng.random_range(0..10) {
            0 => format!("custom-{}", rng.random_range(0..50)),
            1 => format!("shardId-{}", rng.random_range(0..50)), // 1-2 digits: not standard
            2 => "shardId-99999999999x".to_owned(),
            3 => format!("ünïcode-{}", rng.random_range(0..5)),
            4 => std_id(999_999_999_999 - rng.random_range(0..3)),
            _ => std_id(rng.random_range(0..300)),
        }
    }

    fn random_progress(rng: &mut StdRng) -> ShardProgress {
        match rng.random_range(0..4) {
            0 => ShardProgress::Finished,
            1 => after_sub(
                &random_sequence(rng),
                match rng.random_range(0..3) {
                    0 => u64::MAX,
                    1 => rng.random(),
                    _ => rng.random_range(0..200),
                },
            ),
            _ => after(&random_sequence(rng)),
        }
    }

    fn random_position(rng: &mut StdRng) -> Position {
        random_position_with(rng, 40)
    }

    fn random_position_with(rng: &mut StdRng, max_shards: usize) -> Position {
        let mut p = Position::new(match rng.random_range(0..4) {
            0 => String::new(),
            1 => "a".repeat(200),
            _ => format!("stream-{}", rng.random_range(0..100)),
        });
        for _ in 0..rng.random_range(0..max_shards) {
            p.shards.insert(random_id(rng), random_progress(rng));
        }
        p
    }

    #[test]
    fn round_trip_random_states() {
        let mut rng = StdRng::seed_from_u64(42);
        for _ in 0..1000 {
            let p = random_position(&mut rng);
            for (version, bytes) in [(VERSION, p.encode()), (VERSION_1, p.encode_v1())] {
                let (back, read_version) = Position::decode_versioned(&bytes)
                    .unwrap_or_else(|e| panic!("version {version}: {e}: {p:?}"));
                assert_eq!(back, p);
                assert_eq!(read_version, version);
                let again = if version == VERSION {
                    back.encode()
                } else {
                    back.encode_v1()
                };
                assert_eq!(again, bytes, "canonical");
            }
        }
    }

    #[test]
    fn empty_position_round_trips() {
        let p = Position::default();
        assert_eq!(p.encode(), vec![0xA2, 0, 0]);
        assert_eq!(p.encode_v1(), vec![0xA1, 0, 0]);
        assert_eq!(Position::decode(&p.encode()).unwrap(), p);
        assert_eq!(Position::decode(&p.encode_v1()).unwrap(), p);
    }

    #[test]
    fn known_encoding_v2() {
        let mut p = Position::new("s");
        p.shards.insert(std_id(1), after("256")); // packed 01 00
        p.shards.insert(std_id(2), ShardProgress::Finished);
        p.shards.insert(std_id(3), after_sub("257", 300)); // packed 01 01: relative to 256
        p.shards.insert(std_id(4), after("65536")); // packed 01 00 00: other length, literal
        p.shards.insert("x".to_owned(), after("65536")); // same bytes: empty difference
        assert_eq!(
            p.encode(),
            vec![
                0xA2,
                1,
                b's',
                5, //
                1 << 4,
                2,
                1,
                0,                   // shardId-...1 after 256, literal
                (2 << 4) | (2 << 1), // shardId-...2 finished
                (3 << 4) | (1 << 3) | (1 << 1),
                0b0100_0000,
                1,
                0xAC,
                0x02, // shardId-...3 after 257 (byte 1 differs) sub 300
                4 << 4,
                3,
                1,
                0,
                0, // shardId-...4 after 65536, literal
                (1 << 4) | (1 << 3) | 1,
                b'x',
                0, // x after 65536: no byte differs
            ]
        );
        assert_eq!(Position::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn known_encoding() {
        let mut p = Position::new("s");
        p.shards.insert(std_id(1), after("256"));
        p.shards.insert(std_id(2), after_sub("0", 300));
        p.shards.insert(std_id(3), ShardProgress::Finished);
        p.shards.insert("x".to_owned(), ShardProgress::Finished);
        assert_eq!(
            p.encode_v1(),
            vec![
                0xA1,
                1,
                b's',
                4, //
                1 << 3,
                2,
                1,
                0, // shardId-...1 after 256
                (2 << 3) | (1 << 1),
                0,
                0xAC,
                0x02,                // shardId-...2 after 0 sub 300
                (3 << 3) | (2 << 1), // shardId-...3 finished
                (1 << 3) | (2 << 1) | 1,
                b'x', // x finished
            ]
        );
    }

    #[test]
    fn encoder_matches_full_encode_after_random_updates() {
        let mut rng = StdRng::seed_from_u64(9);
        for round in 0..100 {
            let initial = if round % 2 == 0 {
                random_position(&mut rng)
            } else {
                Position::default()
            };
            let mut model = Position {
                stream: "orders".to_owned(),
                shards: initial.shards.clone(),
            };
            let mut enc = PositionEncoder::new("orders", &initial);
            assert_eq!(enc.encode(), model.encode());
            for _ in 0..100 {
                let id = if !model.shards.is_empty() && rng.random_bool(0.6) {
                    let i = rng.random_range(0..model.shards.len());
                    model.shards.keys().nth(i).unwrap().clone()
                } else {
                    random_id(&mut rng)
                };
                if rng.random_range(0..10) == 0 {
                    enc.remove(&id);
                    model.shards.remove(&id);
                } else {
                    let progress = random_progress(&mut rng);
                    enc.update(&id, progress.clone());
                    model.shards.insert(id.clone(), progress);
                }
                assert_eq!(enc.encode(), model.encode());
                assert_eq!(enc.snapshot(), model);
                assert_eq!(enc.get(&id), model.shards.get(&id));
            }
        }
    }

    #[test]
    fn every_record_gets_a_distinct_position() {
        // Records of four shards interleaved, some aggregated: every emitted position differs.
        let mut enc = PositionEncoder::new("s", &Position::default());
        let mut seen = std::collections::HashSet::new();
        let mut rng = StdRng::seed_from_u64(1);
        let mut seqs = [0u128; 4];
        for _ in 0..2000 {
            let shard = rng.random_range(0..4);
            seqs[shard] += rng.random_range(1..1000);
            let seq = format!("4965695551947391646771601859{:028}", seqs[shard]);
            if rng.random_bool(0.3) {
                for sub in 0..rng.random_range(1..5) {
                    enc.update(&std_id(shard as u64), after_sub(&seq, sub));
                    assert!(seen.insert(enc.encode()));
                }
            } else {
                enc.update(&std_id(shard as u64), after(&seq));
                assert!(seen.insert(enc.encode()));
            }
        }
    }

    #[test]
    fn size_per_shard_with_standard_ids_v1() {
        let stream = "orders";
        let header = Position::new(stream).encode().len();
        assert_eq!(header, 1 + 1 + stream.len() + 1);
        for shards in [1u64, 4, 16, 100, 500] {
            let mut p = Position::new(stream);
            for n in 0..shards {
                p.shards.insert(std_id(n), after_sub(SEQ_56, 127));
            }
            let mut max56 = Position::new(stream);
            for n in 0..shards {
                max56
                    .shards
                    .insert(std_id(n), after_sub(&"9".repeat(56), 16_383));
            }
            let count_len = if shards < 128 { 1 } else { 2 } - 1;
            for (label, p) in [("realistic", &p), ("largest 56-digit", &max56)] {
                let per_shard = (p.encode_v1().len() - header - count_len) as f64 / shards as f64;
                eprintln!("{shards} shards, {label}: {per_shard:.2} bytes per shard");
                assert!(per_shard <= 30.0, "{label}: {per_shard} bytes per shard");
            }
        }
        // The table in the module docs.
        let one = |n: u64, progress: ShardProgress| {
            let mut p = Position::new(stream);
            p.shards.insert(std_id(n), progress);
            p.encode_v1().len() - header
        };
        let big = "9".repeat(56);
        assert_eq!(one(15, after(&big)), 26);
        assert_eq!(one(2047, after(&big)), 27);
        assert_eq!(one(262_143, after(&big)), 28);
        assert_eq!(one(15, after_sub(&big, 127)), 27);
        assert_eq!(one(2047, after_sub(&big, 16_383)), 29);
        assert_eq!(one(262_143, after_sub(&big, 16_383)), 30);
        assert_eq!(one(15, ShardProgress::Finished), 1);
        assert_eq!(one(2047, ShardProgress::Finished), 2);
    }

    #[test]
    fn future_version_is_rejected_with_upgrade_advice() {
        let mut bytes = Position::new("s").encode();
        bytes[0] = 0xA3;
        let err = Position::decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PositionError::UnsupportedVersion {
                    found: 3,
                    supported: 2
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("version 3"), "{msg}");
        assert!(msg.contains("versions 1 to 2"), "{msg}");
        assert!(msg.contains("upgrade the connector"), "{msg}");
        // Even when the rest would not parse as version 1.
        let err = Position::decode(&[0xAF, 0xFF]).unwrap_err();
        assert!(matches!(
            err,
            PositionError::UnsupportedVersion { found: 15, .. }
        ));
    }

    #[test]
    fn foreign_and_empty_input_is_malformed() {
        for bytes in [
            &b""[..],
            br#"{"shardId":"shardId-000000000000","sequenceNumber":"1"}"#,
            &[0x01, 0, 0],
            &[0xA0, 0, 0],
            &[0x00],
        ] {
            let err = Position::decode(bytes).unwrap_err();
            assert!(matches!(err, PositionError::Malformed { .. }), "{err:?}");
        }
        let msg = Position::decode(b"").unwrap_err().to_string();
        assert!(msg.contains("empty position"), "{msg}");
    }

    const GO_SEQ: &str = "49590338271490256608559692538361571095921575989136588898";

    #[test]
    fn go_connector_positions_resume_their_shard() {
        let go = format!(r#"{{"sequenceNumber":"{GO_SEQ}","shardId":"shardId-000000000001"}}"#);
        let saved = Position::decode_saved(go.as_bytes(), "orders").unwrap();
        let mut expected = Position::new("orders");
        expected.shards.insert(std_id(1), after(GO_SEQ));
        assert_eq!(
            saved,
            Saved::GoConnector {
                position: expected.clone(),
                shard: std_id(1),
                sequence: GO_SEQ.to_owned(),
            }
        );
        assert_eq!(
            saved.position().shards[&std_id(1)].resume(),
            Resume::AfterSequence(GO_SEQ)
        );
        // Field order, white space, case and unknown fields do not matter, as in Go.
        for variant in [
            format!(r#" {{ "shardId" : "shardId-000000000001", "sequenceNumber" : "{GO_SEQ}" }}"#),
            format!(r#"{{"SequenceNumber":"{GO_SEQ}","ShardID":"shardId-000000000001","x":1}}"#),
        ] {
            assert_eq!(
                Position::decode_saved(variant.as_bytes(), "orders").unwrap(),
                saved,
                "{variant}"
            );
        }
        // Once resumed, the position is this connector's and names the stream.
        let bytes = saved.position().encode();
        assert_eq!(
            Position::decode_saved(&bytes, "orders").unwrap(),
            Saved::Native(expected)
        );
    }

    #[test]
    fn unusable_go_connector_positions_say_why() {
        for (json, says) in [
            (r#"{"shardId":"shardId-000000000001"}"#, "no sequenceNumber"),
            (r#"{"sequenceNumber":"1"}"#, "no shardId"),
            (
                r#"{"sequenceNumber":"12a","shardId":"s"}"#,
                "not a Kinesis sequence number",
            ),
            (
                r#"{"sequenceNumber":"","shardId":"s"}"#,
                "not a Kinesis sequence number",
            ),
            (
                r#"{"sequenceNumber":"1","shardId":"a b"}"#,
                "not a Kinesis shard id",
            ),
            (r#"{"sequenceNumber":1,"shardId":"s"}"#, "not valid JSON"),
            (r#"{"sequenceNumber":"1""#, "not valid JSON"),
        ] {
            let err = Position::decode_saved(json.as_bytes(), "orders").unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, PositionError::GoConnector { .. }), "{json}");
            assert!(message.contains(says), "{json}: {message}");
            assert!(message.contains("Go Kinesis connector"), "{message}");
            assert!(
                message.contains("reset the pipeline's position"),
                "{message}"
            );
        }
        // decode itself reads this connector's format only.
        let go = format!(r#"{{"sequenceNumber":"{GO_SEQ}","shardId":"shardId-000000000001"}}"#);
        assert!(matches!(
            Position::decode(go.as_bytes()),
            Err(PositionError::Malformed { .. })
        ));
    }

    #[test]
    fn other_stream_names_both() {
        let mut p = Position::new("orders");
        p.shards.insert(std_id(0), after(SEQ_56));
        let bytes = p.encode();
        assert_eq!(Position::decode_for_stream(&bytes, "orders").unwrap(), p);
        let err = Position::decode_for_stream(&bytes, "payments").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, PositionError::OtherStream { .. }));
        assert!(msg.contains("\"orders\""), "{msg}");
        assert!(msg.contains("\"payments\""), "{msg}");
        assert!(msg.contains("reset the pipeline's position"), "{msg}");
        assert!(
            msg.contains("point the connector at stream \"orders\""),
            "{msg}"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut rng = StdRng::seed_from_u64(5);
        for round in 0..400 {
            let p = random_position_with(&mut rng, 8);
            let bytes = if round % 2 == 0 {
                p.encode()
            } else {
                p.encode_v1()
            };
            for len in 0..bytes.len() {
                let err = Position::decode(&bytes[..len]);
                assert!(
                    matches!(err, Err(PositionError::Malformed { .. })),
                    "prefix of {len}/{} bytes: {err:?}",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Position::new("s").encode();
        bytes.push(0);
        let err = Position::decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PositionError::Malformed {
                    reason: "trailing bytes",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn corruption_never_panics() {
        let mut rng = StdRng::seed_from_u64(77);
        for round in 0..300 {
            let p = random_position(&mut rng);
            let bytes = if round % 2 == 0 {
                p.encode()
            } else {
                p.encode_v1()
            };
            for _ in 0..40 {
                let mut bad = bytes.clone();
                match rng.random_range(0..3) {
                    0 => {
                        let i = rng.random_range(0..bad.len());
                        bad[i] ^= 1 << rng.random_range(0..8);
                    }
                    1 => {
                        let i = rng.random_range(0..bad.len());
                        bad[i] = rng.random();
                    }
                    _ => {
                        let i = rng.random_range(0..=bad.len());
                        bad.insert(i, rng.random());
                    }
                }
                // Either an error or a different valid position that re-encodes to the same bytes.
                if let Ok((q, version)) = Position::decode_versioned(&bad) {
                    assert_eq!(encode_in(&q, version), bad);
                }
            }
        }
        for i in 0..40_000 {
            let len = rng.random_range(0..64);
            let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(b) = junk.first_mut() {
                *b = if i % 2 == 0 { 0xA1 } else { 0xA2 };
            }
            if let Ok((q, version)) = Position::decode_versioned(&junk) {
                assert_eq!(encode_in(&q, version), junk);
            }
        }
    }

    #[test]
    fn invalid_fields_are_rejected() {
        let reason = |bytes: &[u8]| match Position::decode(bytes) {
            Err(PositionError::Malformed { reason, .. }) => reason,
            other => panic!("{bytes:?}: {other:?}"),
        };
        // Sequence with a leading zero byte.
        assert_eq!(
            reason(&[0xA1, 0, 1, 0, 2, 0, 1]),
            "non-canonical sequence number"
        );
        // 54 bytes of 0xFF: more than 129 digits.
        let mut too_big = vec![0xA1, 0, 1, 0, 54];
        too_big.extend([0xFF; 54]);
        assert_eq!(reason(&too_big), "invalid sequence number");
        let mut too_long = vec![0xA1, 0, 1, 0, 55];
        too_long.extend([0x01; 55]);
        assert_eq!(reason(&too_long), "sequence number too long");
        // Unknown tag 3.
        assert_eq!(reason(&[0xA1, 0, 1, 3 << 1]), "unknown shard progress tag");
        // Duplicate / unordered shards.
        assert_eq!(
            reason(&[0xA1, 0, 2, 2 << 3 | 4, 1 << 3 | 4]),
            "shards out of order"
        );
        assert_eq!(
            reason(&[0xA1, 0, 2, 1 << 3 | 4, 1 << 3 | 4]),
            "shards out of order"
        );
        // Standard id spelled as a string.
        let mut spelled = vec![0xA1, 0, 1];
        put_varint(&mut spelled, (20 << 3) | 4 | 1);
        spelled.extend(b"shardId-000000000001");
        assert_eq!(reason(&spelled), "non-canonical shard id");
        // Shard number with 13 digits.
        let mut big_n = vec![0xA1, 0, 1];
        put_varint(&mut big_n, (10u64.pow(12) << 3) | 4);
        assert_eq!(reason(&big_n), "shard number out of range");
        // Non-minimal varint for the shard count.
        assert_eq!(reason(&[0xA1, 0, 0x80, 0x00]), "non-minimal varint");
        // Invalid UTF-8 stream name.
        assert_eq!(reason(&[0xA1, 1, 0xFF, 0]), "text is not UTF-8");
        // A shard count far larger than the input.
        assert_eq!(
            reason(&[0xA1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            "truncated in a shard header"
        );
        // 11-byte varint.
        let mut long = vec![0xA1, 0];
        long.extend([0xFF; 9]);
        long.push(0x02);
        assert_eq!(reason(&long), "varint overflows 64 bits");
    }

    #[test]
    fn resume_and_covers() {
        let plain = after("100");
        assert_eq!(plain.resume(), Resume::AfterSequence("100"));
        assert!(plain.covers("99", None));
        assert!(plain.covers("100", None));
        assert!(plain.covers("100", Some(7)));
        assert!(!plain.covers("101", None));
        assert!(!plain.covers("1000", Some(0)));

        let inside = after_sub("100", 2);
        assert_eq!(
            inside.resume(),
            Resume::AtSequence {
                sequence: "100",
                skip_through: 2
            }
        );
        assert!(inside.covers("100", Some(0)));
        assert!(inside.covers("100", Some(2)));
        assert!(!inside.covers("100", Some(3)));
        assert!(inside.covers("99", Some(50)));
        assert!(!inside.covers("101", Some(0)));

        // Long sequence numbers compare numerically, not as text.
        let long = after(SEQ_56);
        assert!(long.covers("9", None));
        assert!(!long.covers(&format!("{SEQ_56}0"), None));

        assert_eq!(ShardProgress::Finished.resume(), Resume::Finished);
        assert!(ShardProgress::Finished.covers(SEQ_56, Some(1)));
    }

    #[test]
    fn invalid_v2_fields_are_rejected() {
        let reason = |bytes: &[u8]| match Position::decode(bytes) {
            Err(PositionError::Malformed { reason, .. }) => reason,
            other => panic!("{bytes:?}: {other:?}"),
        };
        const REL: u8 = 1 << 3;
        // A relative sequence in the first shard: nothing to be relative to.
        assert_eq!(
            reason(&[0xA2, 0, 1, REL, 0]),
            "relative sequence number without a previous one"
        );
        // Shard 0 after 256 (01 00), then shard 1 written literally although as long.
        let first = [0xA2, 0, 2, 0, 2, 1, 0];
        let mut literal = first.to_vec();
        literal.extend([1 << 4, 2, 1, 1]);
        assert_eq!(
            reason(&literal),
            "non-canonical: sequence number not relative"
        );
        // A set bit for a byte that does not differ.
        let mut same = first.to_vec();
        same.extend([(1 << 4) | REL, 0b1000_0000, 1]);
        assert_eq!(reason(&same), "non-canonical sequence difference");
        // Unused bitmap bits.
        let mut unused = first.to_vec();
        unused.extend([(1 << 4) | REL, 0b0000_0001]);
        assert_eq!(reason(&unused), "non-canonical sequence bitmap");
        // A difference that leaves a leading zero byte.
        let mut zero = first.to_vec();
        zero.extend([(1 << 4) | REL, 0b1000_0000, 0]);
        assert_eq!(reason(&zero), "non-canonical sequence number");
        // A finished shard marked relative.
        assert_eq!(
            reason(&[0xA2, 0, 1, (2 << 1) | REL]),
            "finished shard marked relative"
        );
        // The valid neighbour of those: shard 1 after 257.
        let mut valid = first.to_vec();
        valid.extend([(1 << 4) | REL, 0b0100_0000, 1]);
        let p = Position::decode(&valid).unwrap();
        assert_eq!(p.shards[&std_id(1)], after("257"));
        assert_eq!(p.encode(), valid);
    }

    /// A sequence number laid out as AWS and kinesis-local write them (in hex: version 2, the
    /// shard's creation time, the shard index, a per-shard record counter, a byte, the arrival
    /// time, the shard index again, 2): 56 decimal digits.
    pub(crate) fn realistic_sequence(shard: u64, counter: u64, arrival: u64) -> String {
        let created: u64 = 1_767_225_600;
        let hex = format!(
            "02{created:09x}{:x}{counter:016x}00{arrival:09x}{shard:08x}2",
            shard % 16
        );
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        sequence::unpack(&bytes)
    }

    #[test]
    fn realistic_sequences_look_like_kinesis() {
        let s = realistic_sequence(3, 1_845_098, 1_767_229_200);
        assert_eq!(s.len(), 56, "{s}");
        assert!(sequence::is_valid(&s));
    }

    /// The budget claimed in `v2`'s module docs: bytes per shard of a position at 512 shards
    /// with realistic sequence numbers, after the shards were read unevenly for an hour.
    const V2_BYTES_PER_SHARD_AT_512: f64 = 14.0;

    #[test]
    fn realistic_512_shards_fit_the_budget() {
        let mut rng = StdRng::seed_from_u64(512);
        let shards = 512u64;
        let start = 1_767_229_200u64;
        let mut counters: Vec<u64> = (0..shards)
            .map(|_| rng.random_range(1_000_000..3_000_000))
            .collect();
        let mut arrival: Vec<u64> = vec![start; shards as usize];
        let mut enc = PositionEncoder::new("orders", &Position::default());
        for n in 0..shards {
            let seq = realistic_sequence(n, counters[n as usize], start);
            enc.update(&std_id(n), after(&seq));
        }
        let v1_len = enc.snapshot().encode_v1().len();
        let mut worst = 0usize;
        // An hour of reading, shards at different rates, a record of some shard at a time.
        for step in 0..50_000u64 {
            let n = (rng.random_range(0..shards) * rng.random_range(1..=3)) % shards;
            counters[n as usize] += rng.random_range(1..2_000);
            arrival[n as usize] = start + step * 3600 / 50_000;
            let seq = realistic_sequence(n, counters[n as usize], arrival[n as usize]);
            enc.update(&std_id(n), after(&seq));
            worst = worst.max(enc.encoded_len());
        }
        let bytes = enc.encode();
        assert_eq!(bytes.len(), enc.encoded_len());
        assert_eq!(Position::decode(&bytes).unwrap(), enc.snapshot());
        assert_eq!(bytes, enc.snapshot().encode());
        let per_shard = worst as f64 / shards as f64;
        eprintln!(
            "512 shards: version 2 at most {worst} bytes ({per_shard:.1} per shard), \
             version 1 {v1_len} bytes ({:.1} per shard)",
            v1_len as f64 / shards as f64
        );
        assert!(
            per_shard <= V2_BYTES_PER_SHARD_AT_512,
            "{per_shard:.2} bytes per shard at 512 shards, claimed at most {V2_BYTES_PER_SHARD_AT_512}"
        );
    }

    #[test]
    fn bytes_per_shard_do_not_grow_with_the_shard_count() {
        // The same reading pattern at 1, 64 and 512 shards: per-shard size stays in budget,
        // so position bytes grow linearly with the shard count, no faster.
        for shards in [1u64, 64, 512] {
            let mut p = Position::new("orders");
            for n in 0..shards {
                let seq =
                    realistic_sequence(n, 2_000_000 + n * 7919 % 100_000, 1_767_229_200 + n % 30);
                p.shards.insert(std_id(n), after(&seq));
            }
            let header = Position::new("orders").encode().len() + 1;
            let per_shard = (p.encode().len() - header) as f64 / shards as f64;
            eprintln!("{shards} shards: {per_shard:.1} bytes per shard");
            let budget = if shards == 1 {
                27.0
            } else {
                V2_BYTES_PER_SHARD_AT_512
            };
            assert!(
                per_shard <= budget,
                "{shards} shards: {per_shard:.2} bytes per shard"
            );
        }
    }
}
