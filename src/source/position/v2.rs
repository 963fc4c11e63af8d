//! Position format version 2: shard entries whose sequence number is written as the bytes in
//! which it differs from the previous shard's.
//!
//! Sequence numbers of one stream have the same length and share most of their bits: on AWS
//! (and kinesis-local, which copies the layout) a 56-digit sequence number is, in hex, a
//! version digit, the shard's creation time, the shard index, a per-shard record counter, the
//! arrival time and the shard index again. Shards created together differ from each other in
//! the shard index and in the low bytes of the counter and the arrival time; the high bytes are
//! the same. Version 1 wrote every shard's 24 packed bytes; version 2 writes, for a sequence
//! whose packed form is as long as the previous shard's, a bitmap of the bytes that differ and
//! those bytes only. Nothing here relies on that layout: any sequence number round-trips, a
//! sequence unlike its neighbour just costs more bytes.
//!
//! ```text
//! position = 0xA2                        magic nibble 0xA, format version 2
//!            varint len, stream name     UTF-8
//!            varint shard count
//!            shard*                      in shard-id order (byte order of the ids), no duplicates
//! shard    = varint header               (id << 4) | (rel << 3) | (tag << 1) | 0   standard id
//!                                        (len << 4) | (rel << 3) | (tag << 1) | 1   other id,
//!            [len bytes of id]                                                     then its bytes
//!            progress
//! tag      = 0 after                     progress = sequence
//!            1 after + sub-sequence      progress = sequence, varint sub-sequence
//!            2 finished                  progress = nothing (rel = 0)
//! sequence = rel = 0: varint n, n bytes  sequence::pack of the sequence number
//!            rel = 1: bitmap, bytes      the packed form has the length of the previous
//!                                        sequence in the position (P, m bytes); the bitmap has
//!                                        ceil(m / 8) bytes, bit 7 of its first byte stands for
//!                                        byte 0 of P; a set bit means the byte differs, and the
//!                                        differing bytes follow in order
//! ```
//!
//! "The previous sequence" is that of the nearest earlier shard of the position with a
//! sequence (finished shards have none). Exactly one encoding per state, as in version 1: `rel`
//! is 1 whenever there is a previous sequence of the same packed length, set bits only for bytes
//! that differ, unused bitmap bits zero.
//!
//! Bytes per shard, 512 shards of one stream with realistic sequence numbers (see the test
//! `realistic_512_shards_fit_the_budget`): about 13, against 27 in version 1.

use super::{
    decode_shard_id, put_varint, sequence, standard_number, PositionError, Reader, ShardProgress,
    TAG_AFTER, TAG_AFTER_SUB, TAG_FINISHED,
};

const REL: u64 = 1 << 3;

/// Appends one shard's entry. `packed` is `sequence::pack` of the progress' sequence (empty and
/// unused for [`ShardProgress::Finished`]); `previous` the packed sequence of the nearest
/// earlier shard that has one.
pub(super) fn encode_entry(
    out: &mut Vec<u8>,
    id: &str,
    progress: &ShardProgress,
    packed: &[u8],
    previous: Option<&[u8]>,
) {
    let (tag, sub) = match progress {
        ShardProgress::After { sub_sequence, .. } => match sub_sequence {
            None => (TAG_AFTER, None),
            Some(k) => (TAG_AFTER_SUB, Some(*k)),
        },
        ShardProgress::Finished => (TAG_FINISHED, None),
    };
    let relative_to = previous.filter(|p| tag != TAG_FINISHED && p.len() == packed.len());
    let flags = (tag << 1) | if relative_to.is_some() { REL } else { 0 };
    match standard_number(id) {
        Some(n) => put_varint(out, (n << 4) | flags),
        None => {
            put_varint(out, ((id.len() as u64) << 4) | flags | 1);
            out.extend_from_slice(id.as_bytes());
        }
    }
    if tag == TAG_FINISHED {
        return;
    }
    match relative_to {
        Some(previous) => {
            let bitmap_at = out.len();
            out.resize(bitmap_at + packed.len().div_ceil(8), 0);
            for (i, (&byte, &before)) in packed.iter().zip(previous).enumerate() {
                if byte != before {
                    out[bitmap_at + i / 8] |= 0x80 >> (i % 8);
                    out.push(byte);
                }
            }
        }
        None => {
            put_varint(out, packed.len() as u64);
            out.extend_from_slice(packed);
        }
    }
    if let Some(sub) = sub {
        put_varint(out, sub);
    }
}

/// Reads one shard's entry. `previous` is the packed sequence of the nearest earlier shard that
/// has one; on return it holds this shard's when it has one.
pub(super) fn decode_entry(
    r: &mut Reader<'_>,
    previous: &mut Option<Vec<u8>>,
) -> Result<(String, ShardProgress), PositionError> {
    let start = r.offset;
    let header = r.varint("truncated in a shard header")?;
    let relative = header & REL != 0;
    let tag = (header >> 1) & 0b11;
    let value = header >> 4;
    let id = decode_shard_id(r, start, header & 1 != 0, value)?;

    let sequence_of = |r: &mut Reader<'_>, previous: &Option<Vec<u8>>| {
        let seq_start = r.offset;
        let packed = if relative {
            let Some(before) = previous else {
                return Err(
                    r.malformed_at(start, "relative sequence number without a previous one")
                );
            };
            let bitmap = r.take(before.len().div_ceil(8), "truncated in a sequence bitmap")?;
            let unused = bitmap.len() * 8 - before.len();
            if bitmap
                .last()
                .is_some_and(|last| last & ((1u8 << unused) - 1) != 0)
            {
                return Err(r.malformed_at(seq_start, "non-canonical sequence bitmap"));
            }
            let mut packed = before.clone();
            for (i, byte) in packed.iter_mut().enumerate() {
                if bitmap[i / 8] & (0x80 >> (i % 8)) != 0 {
                    let new = r.byte("truncated in a sequence number")?;
                    if new == *byte {
                        return Err(r.malformed_at(seq_start, "non-canonical sequence difference"));
                    }
                    *byte = new;
                }
            }
            packed
        } else {
            let len = r.varint("truncated in a sequence number")?;
            if len > sequence::MAX_PACKED_LEN as u64 {
                return Err(r.malformed_at(seq_start, "sequence number too long"));
            }
            if previous.as_ref().is_some_and(|p| p.len() as u64 == len) {
                return Err(r.malformed_at(start, "non-canonical: sequence number not relative"));
            }
            r.take(len as usize, "truncated in a sequence number")?
                .to_vec()
        };
        if packed.first() == Some(&0) {
            return Err(r.malformed_at(seq_start, "non-canonical sequence number"));
        }
        let text = sequence::unpack(&packed);
        if !sequence::is_valid(&text) {
            return Err(r.malformed_at(seq_start, "invalid sequence number"));
        }
        Ok((packed, text))
    };

    let progress = match tag {
        TAG_AFTER | TAG_AFTER_SUB => {
            let (packed, sequence) = sequence_of(r, previous)?;
            let sub_sequence = if tag == TAG_AFTER_SUB {
                Some(r.varint("truncated in a sub-sequence number")?)
            } else {
                None
            };
            *previous = Some(packed);
            ShardProgress::After {
                sequence,
                sub_sequence,
            }
        }
        TAG_FINISHED if relative => {
            return Err(r.malformed_at(start, "finished shard marked relative"))
        }
        TAG_FINISHED => ShardProgress::Finished,
        _ => return Err(r.malformed_at(start, "unknown shard progress tag")),
    };
    Ok((id, progress))
}
