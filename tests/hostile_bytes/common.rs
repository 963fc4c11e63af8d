//! Shared pieces: the allocation probe, byte mutations, the corpus and error-text checks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};

/// Proptest settings for every property here: few cases (the machine is slow and runs debug
/// builds), no failure files (regressions go into `tests/corpus/` deliberately).
/// `cases` generated inputs per property, from a fixed seed so that CI runs the same inputs
/// every time; `PROPTEST_RNG_SEED=<n>` explores other inputs.
pub fn config(cases: u32) -> Config {
    let default = Config::default();
    let rng_seed = match std::env::var_os("PROPTEST_RNG_SEED") {
        Some(_) => default.rng_seed,
        None => RngSeed::Fixed(0x6b69_6e65_7369_7321),
    };
    Config {
        cases,
        failure_persistence: None,
        rng_seed,
        ..default
    }
}

// -- allocation probe -------------------------------------------------------------------------

/// The system allocator, noting the largest single request of the current thread, so that a
/// test can check that no length read from the input turned into an allocation.
pub struct Probe;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown have no slot left.
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it asked for.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// What decoding `input_len` bytes may ask for at once: a fixed allowance plus a small
/// multiple of the input (decoded values are bigger than their encoding), never what a
/// length field merely declares.
pub fn allocation_bound(input_len: usize) -> usize {
    1024 * 1024 + 128 * input_len
}

/// Runs `f` and fails if it asked for more than [`allocation_bound`] of `input_len` at once.
pub fn bounded<T>(what: &str, input_len: usize, f: impl FnOnce() -> T) -> T {
    let (out, largest) = largest_allocation(f);
    assert!(
        largest <= allocation_bound(input_len),
        "{what}: decoding {input_len} bytes asked for {largest} bytes at once"
    );
    out
}

// -- error text -------------------------------------------------------------------------------

/// Fails unless `message` is non-empty and names (case-insensitively) one of `subjects`.
pub fn names_one_of(message: &str, subjects: &[&str]) {
    assert!(!message.trim().is_empty(), "empty error message");
    let lower = message.to_lowercase();
    assert!(
        subjects.iter().any(|s| lower.contains(&s.to_lowercase())),
        "error message {message:?} names none of {subjects:?}"
    );
}

// -- mutations --------------------------------------------------------------------------------

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// Overwrite 4 bytes with a big-endian u32 (huge lengths in fixed-width fields).
    BigU32(Index, u32),
    /// Insert a LEB128 varint (huge lengths in varint fields).
    Varint(Index, u64),
    /// Repeat a slice (nesting, repeated fields).
    Repeat(Index, Index, u8),
}

fn huge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(u32::MAX),
        Just(0x8000_0000),
        Just(0x0100_0000),
        Just(16 * 1024 * 1024 + 1),
        any::<u32>(),
    ]
}

fn huge_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(1 << 32),
        Just(1 << 62),
        Just(1 << 31),
        any::<u64>(),
    ]
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Edit::Flip(i, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), huge_u32()).prop_map(|(i, v)| Edit::BigU32(i, v)),
        2 => (any::<Index>(), huge_u64()).prop_map(|(i, v)| Edit::Varint(i, v)),
        1 => (any::<Index>(), any::<Index>(), 2u8..20).prop_map(|(a, b, n)| Edit::Repeat(a, b, n)),
    ]
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match edit {
        Edit::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
        Edit::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        Edit::Delete(i) if len > 0 => {
            bytes.remove(i.index(len));
        }
        Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Edit::BigU32(i, v) => {
            let at = i.index(len + 1);
            let end = (at + 4).min(len);
            bytes.splice(at..end, v.to_be_bytes());
        }
        Edit::Varint(i, v) => {
            let mut varint = Vec::new();
            put_varint(&mut varint, *v);
            let at = i.index(len + 1);
            bytes.splice(at..at, varint);
        }
        Edit::Repeat(a, b, n) if len > 0 => {
            let (x, y) = (a.index(len), b.index(len));
            let start = x.min(y);
            let end = (x.max(y) + 1).min(start + 64);
            let piece = bytes[start..end].to_vec();
            let mut repeated = Vec::new();
            for _ in 0..*n {
                repeated.extend_from_slice(&piece);
            }
            bytes.splice(end..end, repeated);
        }
        _ => {}
    }
}

/// Up to five edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..5)
}

pub fn mutate(valid: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for edit in edits {
        apply(&mut bytes, edit);
    }
    bytes
}

/// Arbitrary bytes, mostly short.
pub fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..256)
}

// -- corpus -----------------------------------------------------------------------------------

/// The committed regression inputs of one decoder: `tests/corpus/<decoder>/*`, sorted by name.
pub fn corpus(decoder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(decoder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    let out: Vec<_> = files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, bytes)
        })
        .collect();
    assert!(!out.is_empty(), "no corpus in {}", dir.display());
    out
}
