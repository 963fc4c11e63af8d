//! The position of a record read under lease coordination: its shard, sequence number and
//! sub-sequence, nothing else.
//!
//! With `coordination=dynamodb` the lease table is the source of truth for resuming: each
//! instance holds only some shards, and the next owner of a shard starts after the
//! checkpoint in its lease item, whichever instance wrote it. Conduit still needs a unique,
//! non-empty position per record (to ack it and to end Stop), and `Source::ack` maps it back
//! to the shard whose checkpoint may advance. So this position names one record only and
//! stays small: at most 64 bytes for standard shard ids and sequence numbers of up to 56
//! digits.
//!
//! ```text
//! lease position = 0xB1                    magic nibble 0xB (0xA is the all-shard position of
//!                                           `super::super::position`), version 1
//!                  varint len, shard id    UTF-8
//!                  varint len, sequence    sequence::pack (big-endian integer)
//!                  varint sub-sequence + 1 0 for a Kinesis record delivered entirely
//! ```
//!
//! Positions of different records differ (shard, then strictly increasing sequence and
//! sub-sequence within a shard), and every state has one encoding.

use super::super::position::ShardProgress;
use super::super::sequence;

const MAGIC_VERSION: u8 = 0xB1;
/// Shard ids are at most 128 characters (Kinesis' limit).
const MAX_SHARD_ID: usize = 128;

/// One record's place in its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeasePosition {
    pub shard: String,
    /// As in [`ShardProgress::After`]: `None` when the Kinesis record was delivered entirely.
    pub progress: ShardProgress,
}

/// A position that is not a lease position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a lease-coordinated position: {0}")]
pub(crate) struct LeasePositionError(&'static str);

impl LeasePosition {
    pub(crate) fn encode(shard: &str, sequence: &str, sub_sequence: Option<u64>) -> Vec<u8> {
        let packed = sequence::pack(sequence);
        let mut out = Vec::with_capacity(4 + shard.len() + packed.len());
        out.push(MAGIC_VERSION);
        varint(&mut out, shard.len() as u64);
        out.extend_from_slice(shard.as_bytes());
        varint(&mut out, packed.len() as u64);
        out.extend_from_slice(&packed);
        varint(&mut out, sub_sequence.map_or(0, |k| k.saturating_add(1)));
        out
    }

    /// Whether `bytes` look like a lease position (by the first byte).
    #[cfg(test)]
    pub(crate) fn is_lease_position(bytes: &[u8]) -> bool {
        bytes.first() == Some(&MAGIC_VERSION)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<LeasePosition, LeasePositionError> {
        let mut rest = match bytes.split_first() {
            Some((&MAGIC_VERSION, rest)) => rest,
            _ => return Err(LeasePositionError("wrong first byte")),
        };
        let shard_len = read_varint(&mut rest)? as usize;
        if shard_len == 0 || shard_len > MAX_SHARD_ID || rest.len() < shard_len {
            return Err(LeasePositionError("bad shard id length"));
        }
        let shard = std::str::from_utf8(&rest[..shard_len])
            .map_err(|_| LeasePositionError("shard id is not UTF-8"))?
            .to_owned();
        rest = &rest[shard_len..];
        let sequence_len = read_varint(&mut rest)? as usize;
        if rest.len() < sequence_len || rest.first() == Some(&0) && sequence_len > 0 {
            return Err(LeasePositionError("bad sequence number"));
        }
        let sequence = sequence::unpack(&rest[..sequence_len]);
        rest = &rest[sequence_len..];
        let sub = read_varint(&mut rest)?;
        if !rest.is_empty() {
            return Err(LeasePositionError("trailing bytes"));
        }
        Ok(LeasePosition {
            shard,
            progress: ShardProgress::After {
                sequence,
                sub_sequence: sub.checked_sub(1),
            },
        })
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(rest: &mut &[u8]) -> Result<u64, LeasePositionError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, tail)) = rest.split_first() else {
            return Err(LeasePositionError("truncated"));
        };
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // Minimal encodings only, so every state has one encoding.
            if byte == 0 && shift > 0 {
                return Err(LeasePositionError("non-minimal varint"));
            }
            return Ok(value);
        }
    }
    Err(LeasePositionError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQUENCE: &str = "49590338271490256608559692538361571095921575989136588898";

    #[test]
    fn round_trips_and_stays_within_64_bytes() {
        for sub in [None, Some(0), Some(7), Some(300)] {
            let bytes = LeasePosition::encode("shardId-000000000011", SEQUENCE, sub);
            assert!(bytes.len() <= 64, "{} bytes", bytes.len());
            assert!(LeasePosition::is_lease_position(&bytes));
            let decoded = LeasePosition::decode(&bytes).unwrap();
            assert_eq!(decoded.shard, "shardId-000000000011");
            assert_eq!(
                decoded.progress,
                ShardProgress::After {
                    sequence: SEQUENCE.into(),
                    sub_sequence: sub
                }
            );
        }
    }

    #[test]
    fn different_records_have_different_positions() {
        let a = LeasePosition::encode("shardId-000000000001", SEQUENCE, None);
        let b = LeasePosition::encode("shardId-000000000002", SEQUENCE, None);
        let c = LeasePosition::encode("shardId-000000000001", SEQUENCE, Some(0));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rejects_other_bytes() {
        assert!(LeasePosition::decode(&[]).is_err());
        assert!(LeasePosition::decode(&[0xA1, 0]).is_err());
        let mut bytes = LeasePosition::encode("s", "12", None);
        bytes.push(0);
        assert!(LeasePosition::decode(&bytes).is_err());
        bytes.truncate(bytes.len() - 2);
        assert!(LeasePosition::decode(&bytes).is_err());
    }
}
