//! JSON written byte for byte as goccy/go-json writes it (see the rules in the [module
//! documentation](super)): HTML-escaped, UTF-8-normalised strings, Go's float formatting and
//! goccy's map key order.

use std::io::Write as _;

use prost_types::value::Kind;

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(super) fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    // The SIMD encoder is about three times faster than a table one on 1 KiB payloads.
    base64_simd::STANDARD.encode_append(bytes, out);
    out.push(b'"');
}

/// True for ASCII bytes goccy escapes in HTML mode.
#[inline]
fn ascii_needs_escape(c: u8) -> bool {
    c < 0x20 || matches!(c, b'"' | b'\\' | b'<' | b'>' | b'&')
}

/// Length of the UTF-8 sequence at the start of `s` if it is valid by Go's rules (which are
/// the standard ones: no overlongs, surrogates or code points above U+10FFFF).
#[inline]
fn utf8_sequence_len(s: &[u8]) -> Option<usize> {
    let (len, lo, hi) = match s[0] {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return None,
    };
    if s.len() < len || !(lo..=hi).contains(&s[1]) {
        return None;
    }
    if s[2..len].iter().all(|b| (0x80..=0xBF).contains(b)) {
        Some(len)
    } else {
        None
    }
}

/// Whether all eight bytes are ASCII that Go writes as they are (no escape, no UTF-8 check).
/// SWAR: a byte test may flag a clean byte next to a flagged one, never miss one.
#[inline]
fn plain_ascii_word(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let v = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let flagged = (v & HIGH)
        | (v.wrapping_sub(ONES * 0x20) & !v & HIGH)
        | has_zero(v ^ (ONES * u64::from(b'"')))
        | has_zero(v ^ (ONES * u64::from(b'\\')))
        | has_zero(v ^ (ONES * u64::from(b'<')))
        | has_zero(v ^ (ONES * u64::from(b'>')))
        | has_zero(v ^ (ONES * u64::from(b'&')));
    flagged == 0
}

/// A JSON string as goccy/go-json writes it with its default options (HTML escaping and
/// UTF-8 normalisation, `appendNormalizedHTMLString`).
pub(super) fn write_go_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    let mut j = 0;
    while j < s.len() {
        // Most text is plain ASCII: skip it a word at a time.
        while j + 8 <= s.len() && plain_ascii_word(&s[j..j + 8]) {
            j += 8;
        }
        if j >= s.len() {
            break;
        }
        let c = s[j];
        if c < 0x80 {
            if !ascii_needs_escape(c) {
                j += 1;
                continue;
            }
            out.extend_from_slice(&s[start..j]);
            match c {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xF)],
                ]),
            }
            j += 1;
            start = j;
            continue;
        }
        match utf8_sequence_len(&s[j..]) {
            None => {
                out.extend_from_slice(&s[start..j]);
                out.extend_from_slice(b"\\ufffd");
                j += 1;
                start = j;
            }
            Some(3) if c == 0xE2 && s[j + 1] == 0x80 && matches!(s[j + 2], 0xA8 | 0xA9) => {
                out.extend_from_slice(&s[start..j]);
                out.extend_from_slice(if s[j + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                j += 3;
                start = j;
            }
            Some(len) => j += len,
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// A float64 as goccy/go-json writes it (`AppendFloat64`: `strconv.AppendFloat(v, 'f' or
/// 'e', -1, 64)`): the shortest digits that round-trip, exponent form outside
/// `[1e-6, 1e21)` with a sign and at least two exponent digits (`1e-07`, `1e+21`).
/// Callers handle NaN and infinities.
fn write_go_f64(out: &mut Vec<u8>, v: f64) {
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    let abs = v.abs();
    if abs < 1e15 && v.fract() == 0.0 {
        // Whole numbers below 1e15 are exact integers and print as such.
        let _ = write!(out, "{}", v as i64);
        return;
    }
    let (mut digits, mut last_exp) = shortest_digits(abs);
    while digits % 10 == 0 {
        digits /= 10;
        last_exp += 1;
    }
    let mut text = [0u8; 20];
    let mut n = 0;
    let mut rest = digits;
    while rest > 0 {
        text[19 - n] = b'0' + (rest % 10) as u8;
        rest /= 10;
        n += 1;
    }
    let digits = &text[20 - n..];
    // Exponent of the first digit.
    let exp = last_exp + n as i32 - 1;
    if v < 0.0 {
        out.push(b'-');
    }
    if !(1e-6..1e21).contains(&abs) {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        let _ = write!(out, "{e}");
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-exp - 1) as usize, b'0');
        out.extend_from_slice(digits);
    } else if exp as usize + 1 >= n {
        out.extend_from_slice(digits);
        out.resize(out.len() + (exp as usize + 1 - n), b'0');
    } else {
        let point = exp as usize + 1;
        out.extend_from_slice(&digits[..point]);
        out.push(b'.');
        out.extend_from_slice(&digits[point..]);
    }
}

/// A fixed buffer for formatting a float without allocating.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl std::io::Write for StackText {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let end = self.len + bytes.len();
        let target = self
            .buf
            .get_mut(self.len..end)
            .ok_or(std::io::ErrorKind::WriteZero)?;
        target.copy_from_slice(bytes);
        self.len = end;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shortest round-trip decimal of a finite positive float as `digits × 10^exp`, the
/// nearest one to the value, ties to the even digit (as Go's strconv chooses).
///
/// The digits come from serde_json's float writer (`zmij`, shortest and ties-to-even; Rust's
/// own `{:e}`, the fallback, is several times slower and rounds ties up). The tie check
/// below makes either source agree with Go; ties need 16 or more digits.
fn shortest_digits(abs: f64) -> (u64, i32) {
    let mut text = StackText {
        buf: [0; 64],
        len: 0,
    };
    if serde_json::to_writer(&mut text, &abs).is_err() {
        text.len = 0;
        let _ = write!(text, "{abs:e}");
    }
    let (digits, n, exp) = parse_decimal(&text.buf[..text.len]);
    if n < 15 || digits.is_multiple_of(2) {
        return (digits, exp);
    }
    // 2·abs = m·2^p with m odd.
    let bits = abs.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, e2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros();
    let m = u128::from(mantissa >> zeros);
    let p = e2 + 1 + zeros as i32;
    let pow5 = |k: u32| (0..k).try_fold(1u128, |acc, _| acc.checked_mul(5));
    // Is abs exactly (u/2)·10^exp for odd u, i.e. m·2^p == u·10^exp?
    let is_midpoint = |u: u64| {
        let u = u128::from(u);
        p == exp
            && if exp >= 0 {
                pow5(exp as u32).and_then(|f| f.checked_mul(u)) == Some(m)
            } else {
                pow5(exp.unsigned_abs()).and_then(|f| f.checked_mul(m)) == Some(u)
            }
    };
    for (midpoint, other) in [(2 * digits - 1, digits - 1), (2 * digits + 1, digits + 1)] {
        if is_midpoint(midpoint) && format!("{other}e{exp}").parse::<f64>() == Ok(abs) {
            return (other, exp);
        }
    }
    (digits, exp)
}

/// A positive decimal such as `1.5e-7`, `100.0`, `1e+21` or `0.001` as
/// `(significant digits, their count, exponent of the last digit)`, without leading or
/// trailing zeros.
fn parse_decimal(text: &[u8]) -> (u64, i32, i32) {
    let e = text
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(text.len());
    let mut exp: i32 = std::str::from_utf8(text.get(e + 1..).unwrap_or_default())
        .ok()
        .and_then(|s| s.strip_prefix('+').unwrap_or(s).parse().ok())
        .unwrap_or(0);
    let mut digits = 0u64;
    let mut n = 0i32;
    let mut pending_zeros = 0i32;
    let mut after_point = false;
    for &c in &text[..e] {
        match c {
            b'.' => after_point = true,
            b'0' if n == 0 && after_point => exp -= 1,
            b'0' if n == 0 => {}
            b'0'..=b'9' => {
                if after_point {
                    exp -= 1;
                }
                if c == b'0' {
                    pending_zeros += 1;
                    continue;
                }
                for _ in 0..pending_zeros {
                    digits = digits.saturating_mul(10);
                }
                n += pending_zeros + 1;
                pending_zeros = 0;
                digits = digits
                    .saturating_mul(10)
                    .saturating_add(u64::from(c - b'0'));
            }
            _ => {}
        }
    }
    // Trailing zeros were left out of the digits.
    (digits, n, exp + pending_zeros)
}

/// A structpb number after `AsInterface`: NaN and infinities are strings.
pub(super) fn write_number(out: &mut Vec<u8>, n: f64) {
    if n.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if n.is_infinite() {
        out.extend_from_slice(if n > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        write_go_f64(out, n);
    }
}

/// True when a key sorts the same raw as encoded: no escaped bytes and nothing that sorts
/// below the closing quote (0x22). 0xE2 may start U+2028/U+2029, which are escaped.
#[inline]
fn plain_key(key: &[u8]) -> bool {
    // A table: every record's metadata keys pass through here.
    key.iter().all(|&b| PLAIN_KEY_BYTE[usize::from(b)])
        && (key.is_ascii() || std::str::from_utf8(key).is_ok())
}

const PLAIN_KEY_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = b > b'"' as usize && !matches!(b as u8, b'\\' | b'<' | b'>' | b'&' | 0xE2);
        b += 1;
    }
    table
};

/// Sorts map entries in goccy's order (encoded keys compared bytewise). Stable.
pub(super) fn go_sort<T>(entries: &mut [T], key: impl Fn(&T) -> &[u8]) {
    if entries.iter().all(|e| plain_key(key(e))) {
        entries.sort_by(|a, b| key(a).cmp(key(b)));
    } else {
        entries.sort_by_cached_key(|e| {
            let mut encoded = Vec::with_capacity(key(e).len() + 8);
            write_go_string(&mut encoded, key(e));
            encoded
        });
    }
}

/// Calls `f` for each field of `s` in goccy's key order.
pub(super) fn for_each_field<'a>(
    s: &'a prost_types::Struct,
    mut f: impl FnMut(&'a str, &'a prost_types::Value),
) {
    // prost keeps fields in a BTreeMap: already in raw key order.
    if s.fields.keys().all(|k| plain_key(k.as_bytes())) {
        for (k, v) in &s.fields {
            f(k, v);
        }
    } else {
        let mut fields: Vec<(&str, &prost_types::Value)> =
            s.fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
        go_sort(&mut fields, |e| e.0.as_bytes());
        for (k, v) in fields {
            f(k, v);
        }
    }
}

pub(super) fn write_struct(out: &mut Vec<u8>, s: &prost_types::Struct) {
    out.push(b'{');
    write_struct_fields(out, s, &[], true);
    out.push(b'}');
}

/// The `"k":v` members of `s`, skipping `skip`; `first` says whether no member precedes.
pub(super) fn write_struct_fields(
    out: &mut Vec<u8>,
    s: &prost_types::Struct,
    skip: &[&str],
    first: bool,
) {
    let mut first = first;
    for_each_field(s, |k, v| {
        if skip.contains(&k) {
            return;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_go_string(out, k.as_bytes());
        out.push(b':');
        write_value(out, v);
    });
}

pub(super) fn write_value(out: &mut Vec<u8>, v: &prost_types::Value) {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => out.extend_from_slice(b"null"),
        Some(Kind::NumberValue(n)) => write_number(out, *n),
        Some(Kind::StringValue(s)) => match crate::destination::exact::exact_integer(s) {
            Some(digits) => out.extend_from_slice(digits.as_bytes()),
            None => write_go_string(out, s.as_bytes()),
        },
        Some(Kind::BoolValue(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Kind::StructValue(s)) => write_struct(out, s),
        Some(Kind::ListValue(list)) => {
            out.push(b'[');
            for (i, item) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
    }
}

/// A JSON object of string values, in the order given.
pub(super) fn write_string_object<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a str, &'a str)>,
) {
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_go_string(out, k.as_bytes());
        out.push(b':');
        write_go_string(out, v.as_bytes());
    }
    out.push(b'}');
}

/// Record metadata, ordered by raw key.
pub(super) type Metadata = crate::plugin::Metadata;

/// Whether the metadata's own order is goccy's: no key sorts differently once encoded (the
/// usual `opencdc.*` / `conduit.*` keys never do).
pub(super) fn in_go_order(metadata: &Metadata) -> bool {
    metadata.keys().all(|k| plain_key(k.as_bytes()))
}

/// Metadata entries in goccy's order.
pub(super) fn sorted_metadata(metadata: &Metadata) -> Vec<(&str, &str)> {
    let mut entries: Vec<(&str, &str)> = metadata.iter().collect();
    go_sort(&mut entries, |e| e.0.as_bytes());
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::format::testing::*;

    /// The data of a one-field struct `{"v": value}` as opencdc/json writes it.
    fn json_of(value: prost_types::Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, &value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn go_float_formatting() {
        for (n, want) in [
            (1.5, "1.5"),
            (100.0, "100"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-07"),
            (-2.5e-10, "-2.5e-10"),
            (1e-6, "0.000001"),
            (123456789012.0, "123456789012"),
            (-42.25, "-42.25"),
            (9007199254740993.0, "9007199254740992"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1.234e100, "1.234e+100"),
            // An exact tie between two shortest candidates: Go rounds half to even, Rust's
            // own formatting would give ...793.3.
            (827_477_200_897_793.0 + 0.25, "827477200897793.2"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ] {
            assert_eq!(json_of(num(n)), want, "{n:e}");
        }
    }

    #[test]
    fn decimal_parsing() {
        for (text, want) in [
            ("1.37", (137, 3, -2)),
            ("100.0", (1, 1, 2)),
            ("120.5", (1205, 4, -1)),
            ("1e+21", (1, 1, 21)),
            ("1.5e-7", (15, 2, -8)),
            ("0.001", (1, 1, -3)),
            ("1.7976931348623157e308", (17976931348623157, 17, 292)),
            ("5e-324", (5, 1, -324)),
        ] {
            assert_eq!(parse_decimal(text.as_bytes()), want, "{text}");
        }
    }

    #[test]
    fn go_string_escaping() {
        for (s, want) in [
            (
                "<a href=\"x\">&</a>",
                r#""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#,
            ),
            ("back\\slash/slash", r#""back\\slash/slash""#),
            (
                "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
                r#""\n\r\t\u0008\u000c\u0000\u001f""#,
            ),
            ("é 漢字 😀 \u{fffd}", "\"é 漢字 😀 \u{fffd}\""),
            (
                "line\u{2028}para\u{2029}end",
                r#""line\u2028para\u2029end""#,
            ),
            ("", r#""""#),
        ] {
            // DEL (0x7f) passes through unescaped.
            let want = want.replace("\\u001f\"", "\\u001f\u{7f}\"");
            assert_eq!(json_of(text(s)), want, "{s:?}");
        }
    }

    #[test]
    fn go_string_replaces_each_invalid_utf8_byte() {
        for (bytes, want) in [
            (&b"a\xffb"[..], r#""a\ufffdb""#),
            // A truncated 3-byte sequence: each byte is replaced on its own (unlike Rust's
            // from_utf8_lossy, which replaces the maximal prefix once).
            (b"\xe2\x82a", r#""\ufffd\ufffda""#),
            // Surrogates and overlong forms are invalid.
            (b"\xed\xa0\x80", r#""\ufffd\ufffd\ufffd""#),
            (b"\xc0\xaf", r#""\ufffd\ufffd""#),
            (b"\xf4\x90\x80\x80", r#""\ufffd\ufffd\ufffd\ufffd""#),
            (b"ok\xf0\x9f\x98\x80", "\"ok\u{1F600}\""),
        ] {
            let mut out = Vec::new();
            write_go_string(&mut out, bytes);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{bytes:?}");
        }
    }

    /// The byte-at-a-time escaper before the word-at-a-time skip, kept as the reference.
    fn reference_write_go_string(out: &mut Vec<u8>, s: &[u8]) {
        out.push(b'"');
        let mut start = 0;
        let mut j = 0;
        while j < s.len() {
            let c = s[j];
            if c < 0x80 {
                if !ascii_needs_escape(c) {
                    j += 1;
                    continue;
                }
                out.extend_from_slice(&s[start..j]);
                match c {
                    b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(c >> 4)],
                        HEX[usize::from(c & 0xF)],
                    ]),
                }
                j += 1;
                start = j;
                continue;
            }
            match utf8_sequence_len(&s[j..]) {
                None => {
                    out.extend_from_slice(&s[start..j]);
                    out.extend_from_slice(b"\\ufffd");
                    j += 1;
                    start = j;
                }
                Some(3) if c == 0xE2 && s[j + 1] == 0x80 && matches!(s[j + 2], 0xA8 | 0xA9) => {
                    out.extend_from_slice(&s[start..j]);
                    out.extend_from_slice(if s[j + 2] == 0xA8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    j += 3;
                    start = j;
                }
                Some(len) => j += len,
            }
        }
        out.extend_from_slice(&s[start..]);
        out.push(b'"');
    }

    #[test]
    fn word_skipping_escapes_exactly_like_the_byte_loop() {
        use rand::{Rng, SeedableRng};
        let check = |input: &[u8]| {
            let (mut fast, mut reference) = (Vec::new(), Vec::new());
            write_go_string(&mut fast, input);
            reference_write_go_string(&mut reference, input);
            assert_eq!(fast, reference, "input {input:?}");
        };
        // Every byte value at every offset of a word, among plain text.
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut input = b"abcdefghijklmnopqrstuvwxyz".to_vec();
                input.insert(at, b);
                check(&input);
            }
        }
        // Multi-byte characters, U+2028/9 and invalid sequences across word boundaries.
        for piece in [
            "\u{e9}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{2028}",
            "\u{2029}",
            "<&>",
            "\"\\",
        ] {
            for at in 0..17 {
                let mut input = "0123456789abcdefghij".to_string();
                input.insert_str(at, piece);
                check(input.as_bytes());
                let mut broken = input.into_bytes();
                broken.truncate(at + 1);
                check(&broken);
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet: Vec<u8> = (0x20..0x7F)
            .chain([0x00, 0x1F, 0x80, 0xC3, 0xA9, 0xE2, 0xA8, 0xFF])
            .collect();
        for _ in 0..20_000 {
            let len = rng.random_range(0..64);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        alphabet[rng.random_range(0..95)]
                    } else {
                        alphabet[rng.random_range(0..alphabet.len())]
                    }
                })
                .collect();
            check(&input);
        }
    }
}
