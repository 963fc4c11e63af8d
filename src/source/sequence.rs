//! Kinesis sequence numbers.
//!
//! A sequence number is a decimal string matching `0|([1-9]\d{0,128})` (the AWS API model's
//! pattern for `SequenceNumber`), so up to 129 digits. Real ones have 56 digits (on AWS and on
//! kinesis-local), which overflows `u128`: they are compared and stored here without
//! converting them to a machine integer.
//!
//! [`pack`] turns one into the big-endian binary form of the integer (at most 54 bytes; 24 for
//! a 56-digit number instead of 56 bytes of text) and [`unpack`] turns it back. Both are plain
//! base conversions on 32-bit limbs; no big-number crate.

use std::cmp::Ordering;

/// Longest valid sequence number, in digits (`[1-9]\d{0,128}`).
pub(crate) const MAX_DIGITS: usize = 129;

/// Longest [`pack`]ed form of a valid sequence number: `10^129 - 1 < 2^429`, so 54 bytes.
pub(crate) const MAX_PACKED_LEN: usize = 54;

/// Decimal digits handled per limb step: `10^9 < 2^32`.
const CHUNK_DIGITS: usize = 9;
const CHUNK_BASE: u64 = 1_000_000_000;

/// Whether `s` is a sequence number as Kinesis writes them: `0`, or 1 to 129 digits without a
/// leading zero.
pub(crate) fn is_valid(s: &str) -> bool {
    match s.as_bytes() {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        digits => digits.len() <= MAX_DIGITS && digits.iter().all(u8::is_ascii_digit),
    }
}

/// Numeric order of two digit strings of any length: leading zeros are ignored, then the
/// longer number is the larger one, and numbers of equal length compare digit by digit.
///
/// Meaningful for digit strings only (check with [`is_valid`]); for anything else it is
/// still a total order, but not a numeric one.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The integer `s` stands for, as big-endian bytes of minimal length: no leading zero byte,
/// and zero packs to the empty byte string.
///
/// `s` must be a string of ASCII digits (leading zeros are allowed and ignored); validate
/// untrusted input with [`is_valid`] first. `unpack(&pack(s)) == s` for every digit string
/// without leading zeros.
pub(crate) fn pack(s: &str) -> Vec<u8> {
    let digits = s.trim_start_matches('0').as_bytes();
    debug_assert!(
        digits.iter().all(u8::is_ascii_digit),
        "sequence::pack called with a non-digit string {s:?}"
    );

    // Little-endian limbs of 32 bits. Consume the digits from the most significant end, a
    // chunk of up to nine digits at a time: value = value * 10^len(chunk) + chunk.
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / CHUNK_DIGITS + 1);
    let mut start = 0;
    let mut end = match digits.len() % CHUNK_DIGITS {
        0 => CHUNK_DIGITS.min(digits.len()),
        r => r,
    };
    while start < digits.len() {
        let chunk = &digits[start..end];
        let value = chunk.iter().fold(0u64, |acc, d| {
            acc * 10 + u64::from(d.wrapping_sub(b'0') % 10)
        });
        mul_add(&mut limbs, 10u64.pow(chunk.len() as u32), value);
        start = end;
        end += CHUNK_DIGITS;
    }

    let mut out = Vec::with_capacity(limbs.len() * 4);
    for limb in limbs.iter().rev() {
        out.extend_from_slice(&limb.to_be_bytes());
    }
    let zeros = out.iter().take_while(|&&b| b == 0).count();
    out.drain(..zeros);
    out
}

/// `limbs = limbs * mul + add`, with `mul <= 10^9` and `add < 10^9`.
fn mul_add(limbs: &mut Vec<u32>, mul: u64, add: u64) {
    let mut carry = add;
    for limb in limbs.iter_mut() {
        let v = u64::from(*limb) * mul + carry;
        *limb = v as u32;
        carry = v >> 32;
    }
    if carry != 0 {
        limbs.push(carry as u32);
    }
}

/// The decimal text of the big-endian unsigned integer in `bytes` (leading zero bytes are
/// ignored; the empty slice is `"0"`). Inverse of [`pack`].
pub fn unpack(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let bytes = &bytes[zeros..];
    if bytes.is_empty() {
        return "0".to_owned();
    }

    // Big-endian bytes -> little-endian 32-bit limbs.
    let mut limbs: Vec<u32> = bytes
        .rchunks(4)
        .map(|chunk| chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        .collect();

    // Divide by 10^9 until nothing is left; the remainders are the nine-digit groups, least
    // significant first.
    let mut groups: Vec<u32> = Vec::with_capacity(bytes.len() * 8 / 29 + 1);
    while !limbs.is_empty() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / CHUNK_BASE) as u32;
            rem = cur % CHUNK_BASE;
        }
        groups.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }

    let mut out = String::with_capacity(groups.len() * CHUNK_DIGITS);
    let mut iter = groups.iter().rev();
    if let Some(first) = iter.next() {
        out.push_str(&first.to_string());
    }
    for group in iter {
        out.push_str(&format!("{group:09}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A 56-digit sequence number as kinesis-local hands them out.
    const SEQ_56: &str = "49656955519473916467716018592383429564417383584367116290";

    fn random_digits(rng: &mut impl Rng, len: usize) -> String {
        let mut s = String::with_capacity(len);
        s.push(char::from(b'1' + rng.random_range(0..9u8)));
        for _ in 1..len {
            s.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        s
    }

    #[test]
    fn validity() {
        assert!(is_valid("0"));
        assert!(is_valid("7"));
        assert!(is_valid(SEQ_56));
        assert!(is_valid(&"9".repeat(MAX_DIGITS)));
        assert!(!is_valid(&"9".repeat(MAX_DIGITS + 1)));
        assert!(!is_valid(""));
        assert!(!is_valid("00"));
        assert!(!is_valid("01"));
        assert!(!is_valid("-1"));
        assert!(!is_valid("+1"));
        assert!(!is_valid("1 "));
        assert!(!is_valid("12a4"));
        assert!(!is_valid("١٢")); // non-ASCII digits
    }

    #[test]
    fn compare_is_numeric() {
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("10", "9"), Ordering::Greater);
        assert_eq!(compare("0", "0"), Ordering::Equal);
        assert_eq!(compare("0", "000"), Ordering::Equal);
        assert_eq!(compare("007", "7"), Ordering::Equal);
        assert_eq!(compare("008", "7"), Ordering::Greater);
        assert_eq!(compare("0", "1"), Ordering::Less);
        assert_eq!(compare(SEQ_56, SEQ_56), Ordering::Equal);

        let mut bigger = SEQ_56.to_owned();
        bigger.pop();
        bigger.push('1');
        assert_eq!(compare(SEQ_56, &bigger), Ordering::Less);
        assert_eq!(compare(&bigger, SEQ_56), Ordering::Greater);
        // 55 digits < 56 digits whatever the digits.
        assert_eq!(compare(&"9".repeat(55), SEQ_56), Ordering::Less);
    }

    #[test]
    fn compare_matches_u128_where_it_fits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let a: u128 = rng.random::<u128>() >> rng.random_range(0..128);
            let b: u128 = rng.random::<u128>() >> rng.random_range(0..128);
            assert_eq!(
                compare(&a.to_string(), &b.to_string()),
                a.cmp(&b),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn pack_known_values() {
        assert_eq!(pack("0"), Vec::<u8>::new());
        assert_eq!(pack("000"), Vec::<u8>::new());
        assert_eq!(pack("1"), vec![1]);
        assert_eq!(pack("255"), vec![0xff]);
        assert_eq!(pack("256"), vec![1, 0]);
        assert_eq!(pack("0256"), vec![1, 0]);
        assert_eq!(pack("4294967295"), vec![0xff; 4]);
        assert_eq!(pack("4294967296"), vec![1, 0, 0, 0, 0]);
        assert_eq!(pack("1000000000"), vec![0x3b, 0x9a, 0xca, 0x00]);
        assert_eq!(pack(&u128::MAX.to_string()), vec![0xff; 16], "2^128 - 1");
        assert_eq!(pack("340282366920938463463374607431768211456"), {
            let mut v = vec![1];
            v.extend([0; 16]);
            v
        });
        assert_eq!(unpack(&[]), "0");
        assert_eq!(unpack(&[0, 0]), "0");
        assert_eq!(unpack(&[0, 1, 0]), "256");
    }

    #[test]
    fn pack_matches_u128_where_it_fits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..2000 {
            let n: u128 = rng.random::<u128>() >> rng.random_range(0..128);
            let expected: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            assert_eq!(pack(&n.to_string()), expected, "{n}");
            assert_eq!(unpack(&expected), n.to_string());
        }
    }

    #[test]
    fn fifty_six_digits_round_trip_in_24_bytes() {
        let packed = pack(SEQ_56);
        assert_eq!(packed.len(), 24);
        assert_eq!(unpack(&packed), SEQ_56);
        let max56 = "9".repeat(56);
        assert_eq!(pack(&max56).len(), 24);
        assert_eq!(unpack(&pack(&max56)), max56);
        let min56 = format!("1{}", "0".repeat(55));
        assert_eq!(pack(&min56).len(), 23);
        assert_eq!(unpack(&pack(&min56)), min56);
    }

    #[test]
    fn longest_valid_number_fits_max_packed_len() {
        let max = "9".repeat(MAX_DIGITS);
        assert_eq!(pack(&max).len(), MAX_PACKED_LEN);
        assert_eq!(unpack(&pack(&max)), max);
    }

    #[test]
    fn round_trip_random_lengths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for len in 1..=MAX_DIGITS + 20 {
            for _ in 0..20 {
                let s = random_digits(&mut rng, len);
                let packed = pack(&s);
                assert_ne!(packed.first(), Some(&0), "minimal length for {s}");
                assert_eq!(unpack(&packed), s);
            }
        }
        // Powers of ten and their neighbours, around every chunk boundary.
        for zeros in 0..70 {
            let p = format!("1{}", "0".repeat(zeros));
            assert_eq!(unpack(&pack(&p)), p);
            let below = "9".repeat(zeros + 1);
            assert_eq!(unpack(&pack(&below)), below);
        }
    }

    #[test]
    fn packed_order_matches_numeric_order() {
        // Minimal big-endian bytes order like numbers when compared by (length, bytes).
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..2000 {
            let (la, lb) = (rng.random_range(54..=57), rng.random_range(54..=57));
            let a = random_digits(&mut rng, la);
            let b = random_digits(&mut rng, lb);
            let (pa, pb) = (pack(&a), pack(&b));
            let packed_order = pa.len().cmp(&pb.len()).then_with(|| pa.cmp(&pb));
            assert_eq!(packed_order, compare(&a, &b), "{a} {b}");
        }
    }
}
