//! RFC 3339 text of UTC instants: the one writer of the destination's timestamps (`row/json`'s
//! operation time, Avro timestamps decoded to Go's `time.Time` JSON form).

/// The fraction of a second that is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fraction {
    /// Always six digits, truncated to microseconds: `2026-11-22T10:00:00.000000Z`.
    Micros,
    /// Go's `time.RFC3339Nano`: nanoseconds without trailing zeros, and no fraction at all
    /// for a whole second: `2024-05-01T10:11:12.5Z`, `1970-01-01T00:00:00Z`.
    TrimmedNanos,
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in unix seconds.
const FIRST_SECOND: i64 = -62_167_219_200;
const LAST_SECOND: i64 = 253_402_300_799;

/// Appends `unix_nanos` as `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC, proleptic Gregorian).
/// Returns false, and appends nothing, outside years 0–9999 (which have no four-digit year;
/// Go's JSON encoder refuses them). Every `i64` of nanoseconds (1677–2262) is within.
pub(crate) fn write_utc(out: &mut Vec<u8>, unix_nanos: i128, fraction: Fraction) -> bool {
    let seconds = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    let Some(seconds) = i64::try_from(seconds)
        .ok()
        .filter(|s| (FIRST_SECOND..=LAST_SECOND).contains(s))
    else {
        return false;
    };
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    push_digits(out, year as u32, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b'T');
    push_digits(out, second_of_day / 3600, 2);
    out.push(b':');
    push_digits(out, second_of_day / 60 % 60, 2);
    out.push(b':');
    push_digits(out, second_of_day % 60, 2);
    match fraction {
        Fraction::Micros => {
            out.push(b'.');
            push_digits(out, nanos / 1_000, 6);
        }
        Fraction::TrimmedNanos if nanos != 0 => {
            let (mut digits, mut width) = (nanos, 9);
            while digits % 10 == 0 {
                digits /= 10;
                width -= 1;
            }
            out.push(b'.');
            push_digits(out, digits, width);
        }
        Fraction::TrimmedNanos => {}
    }
    out.push(b'Z');
    true
}

/// [`write_utc`] as a string; `None` outside years 0–9999.
pub(crate) fn utc_string(unix_nanos: i128, fraction: Fraction) -> Option<String> {
    let mut out = Vec::with_capacity(30);
    write_utc(&mut out, unix_nanos, fraction)
        .then(|| String::from_utf8(out).expect("RFC 3339 text is ASCII"))
}

/// `value` in decimal, zero-padded to `width` digits (`value` has at most `width` digits).
fn push_digits(out: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    debug_assert_eq!(value, 0, "more than {width} digits");
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(nanos: i64) -> String {
        utc_string(i128::from(nanos), Fraction::Micros).unwrap()
    }

    fn rfc3339_nano(unix_nanos: i128) -> Option<String> {
        utc_string(unix_nanos, Fraction::TrimmedNanos)
    }

    #[test]
    fn rfc3339_micros() {
        for (nanos, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (999, "1970-01-01T00:00:00.000000Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000Z"),
            (1_795_341_600_123_456_789, "2026-11-22T10:00:00.123456Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224Z"),
        ] {
            assert_eq!(micros(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn go_time_layout() {
        assert_eq!(rfc3339_nano(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(-1).unwrap(), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_nano(1_000_000).unwrap(), "1970-01-01T00:00:00.001Z");
        assert!(rfc3339_nano(-62_167_219_200_000_000_001).is_none()); // before year 0
        assert_eq!(
            rfc3339_nano(-62_167_219_200_000_000_000).unwrap(),
            "0000-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339_nano(253_402_300_799_999_999_999).unwrap(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert!(rfc3339_nano(253_402_300_800_000_000_000).is_none()); // year 10000
        assert!(rfc3339_nano(i128::MAX).is_none());
        assert!(rfc3339_nano(i128::MIN).is_none());
        let mut out = b"x".to_vec();
        assert!(!write_utc(&mut out, i128::MIN, Fraction::Micros));
        assert_eq!(out, b"x", "nothing is written for an instant out of range");
    }

    /// Against the `time` crate's reading of the text, over the whole range.
    #[test]
    fn text_reads_back_as_the_same_instant() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3339);
        let first = i128::from(FIRST_SECOND) * 1_000_000_000;
        let last = i128::from(LAST_SECOND) * 1_000_000_000 + 999_999_999;
        for _ in 0..20_000 {
            let nanos = rng.random_range(first..=last);
            for (fraction, expected) in [
                (Fraction::TrimmedNanos, nanos),
                (Fraction::Micros, nanos.div_euclid(1_000) * 1_000),
            ] {
                let text = utc_string(nanos, fraction).unwrap();
                let parsed = time::OffsetDateTime::parse(
                    &text,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(parsed.unix_timestamp_nanos(), expected, "{text}");
            }
        }
    }
}
