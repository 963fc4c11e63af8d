//! The hot path: a position per record without re-encoding every shard.
//!
//! [`PositionEncoder`] keeps every shard's encoded entry (format version 2, [`super::v2`]) in
//! one buffer, in shard order. A record re-encodes the entry of its shard and the entry of the
//! next shard with a sequence (written relative to this one), so a position costs two small
//! entries plus one copy of the buffer, whatever the shard count. Entries change length now
//! and then (a byte of a sequence number that happens to equal its neighbour's is left out):
//! then the rest of the buffer moves and the later entries' offsets are shifted, a tight loop
//! over a vector.

use std::collections::HashMap;

use super::{assemble, encode_prefix, sequence, v2, Position, ShardProgress, VERSION};

/// Incremental encoder: [`PositionEncoder::encode`] always equals [`Position::encode`] of
/// [`PositionEncoder::snapshot`].
#[derive(Debug, Clone)]
pub(crate) struct PositionEncoder {
    #[cfg(test)]
    stream: String,
    /// Version byte + stream name.
    prefix: Vec<u8>,
    /// Every shard, in shard-id order.
    slots: Vec<Slot>,
    /// Shard id → index in `slots`.
    index: HashMap<String, usize>,
    /// The encoded entries of all shards, back to back in shard-id order.
    body: Vec<u8>,
    scratch: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Slot {
    id: String,
    progress: ShardProgress,
    /// `sequence::pack` of the progress' sequence; `None` when finished.
    packed: Option<Vec<u8>>,
    start: usize,
    len: usize,
}

fn packed_of(progress: &ShardProgress) -> Option<Vec<u8>> {
    match progress {
        ShardProgress::After { sequence, .. } => Some(sequence::pack(sequence)),
        ShardProgress::Finished => None,
    }
}

impl PositionEncoder {
    /// Starts from `initial`'s shard progress; the position is written for `stream` (the
    /// caller checked `initial` with [`Position::decode_for_stream`], or `initial` is empty).
    pub(crate) fn new(stream: &str, initial: &Position) -> Self {
        let mut encoder = PositionEncoder {
            #[cfg(test)]
            stream: stream.to_owned(),
            prefix: encode_prefix(stream, VERSION),
            slots: Vec::with_capacity(initial.shards.len()),
            index: HashMap::with_capacity(initial.shards.len()),
            body: Vec::with_capacity(initial.shards.len() * 16),
            scratch: Vec::with_capacity(64),
        };
        for (id, progress) in &initial.shards {
            encoder.index.insert(id.clone(), encoder.slots.len());
            encoder.slots.push(Slot {
                id: id.clone(),
                progress: progress.clone(),
                packed: packed_of(progress),
                start: encoder.body.len(),
                len: 0,
            });
            let i = encoder.slots.len() - 1;
            encoder.rewrite(i);
        }
        encoder
    }

    /// Sets one shard's progress (adds the shard if it is new).
    pub(crate) fn update(&mut self, shard: &str, progress: ShardProgress) {
        debug_assert!(
            match &progress {
                ShardProgress::After { sequence, .. } => sequence::is_valid(sequence),
                ShardProgress::Finished => true,
            },
            "invalid sequence number in {progress:?}"
        );
        let packed = packed_of(&progress);
        let i = match self.index.get(shard) {
            Some(&i) => {
                let slot = &mut self.slots[i];
                slot.progress = progress;
                slot.packed = packed;
                i
            }
            None => {
                let i = self.slots.partition_point(|s| s.id.as_str() < shard);
                let start = self.slots.get(i).map_or(self.body.len(), |s| s.start);
                self.slots.insert(
                    i,
                    Slot {
                        id: shard.to_owned(),
                        progress,
                        packed,
                        start,
                        len: 0,
                    },
                );
                self.reindex(i);
                i
            }
        };
        self.rewrite(i);
        if let Some(next) = self.next_with_sequence(i + 1) {
            self.rewrite(next);
        }
    }

    /// Forgets a shard (e.g. one that expired past the stream's retention).
    pub(crate) fn remove(&mut self, shard: &str) {
        let Some(i) = self.index.remove(shard) else {
            return;
        };
        let slot = self.slots.remove(i);
        self.body.drain(slot.start..slot.start + slot.len);
        for later in &mut self.slots[i..] {
            later.start -= slot.len;
        }
        self.reindex(i);
        if let Some(next) = self.next_with_sequence(i) {
            self.rewrite(next);
        }
    }

    /// The position of the current state; equal to `self.snapshot().encode()`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        assemble(&self.prefix, self.slots.len(), &self.body)
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Position {
        Position {
            stream: self.stream.clone(),
            shards: self
                .slots
                .iter()
                .map(|slot| (slot.id.clone(), slot.progress.clone()))
                .collect(),
        }
    }

    /// One shard's current progress.
    #[cfg(test)]
    pub(crate) fn get(&self, shard: &str) -> Option<&ShardProgress> {
        self.index.get(shard).map(|&i| &self.slots[i].progress)
    }

    /// Length of the encoded position, without building it.
    #[cfg(test)]
    pub(crate) fn encoded_len(&self) -> usize {
        let count_len = (64 - (self.slots.len() as u64 | 1).leading_zeros() as usize).div_ceil(7);
        self.prefix.len() + count_len + self.body.len()
    }

    /// Index updates after slots from `from` on moved.
    fn reindex(&mut self, from: usize) {
        for (i, slot) in self.slots.iter().enumerate().skip(from) {
            if let Some(entry) = self.index.get_mut(slot.id.as_str()) {
                *entry = i;
            } else {
                self.index.insert(slot.id.clone(), i);
            }
        }
    }

    /// The first slot from `from` on that has a sequence (its entry depends on the sequence
    /// of the nearest earlier one).
    fn next_with_sequence(&self, from: usize) -> Option<usize> {
        (from..self.slots.len()).find(|&j| self.slots[j].packed.is_some())
    }

    /// Re-encodes slot `i`'s entry in place.
    fn rewrite(&mut self, i: usize) {
        let previous = self.slots[..i]
            .iter()
            .rev()
            .find_map(|s| s.packed.as_deref());
        let slot = &self.slots[i];
        self.scratch.clear();
        v2::encode_entry(
            &mut self.scratch,
            &slot.id,
            &slot.progress,
            slot.packed.as_deref().unwrap_or(&[]),
            previous,
        );
        let (start, old_len, new_len) = (slot.start, slot.len, self.scratch.len());
        if old_len == new_len {
            self.body[start..start + new_len].copy_from_slice(&self.scratch);
            return;
        }
        self.body
            .splice(start..start + old_len, self.scratch.iter().copied());
        self.slots[i].len = new_len;
        for later in &mut self.slots[i + 1..] {
            later.start = later.start + new_len - old_len;
        }
    }
}
