//! Value syntax exactly as Conduit's Go SDK accepts it (`strconv` and `time.ParseDuration`),
//! so a pipeline that a Go connector accepts is accepted here too.

use std::time::Duration;

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi` on a 64-bit platform: optional sign, decimal digits, fits in i64.
pub fn parse_int(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<i64>().ok()
}

/// Go's `strconv.ParseFloat(value, 64)` for the decimal forms people write in configs.
pub fn parse_float(value: &str) -> Option<f64> {
    if value.is_empty() || value.contains('_') {
        return None;
    }
    value.parse::<f64>().ok()
}

/// A Go `time.Duration`: signed nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// The duration as a std `Duration`; negative durations are `None`.
    pub fn to_std(self) -> Option<Duration> {
        u64::try_from(self.0).ok().map(Duration::from_nanos)
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`, with units
/// ns, us, µs, μs, ms, s, m, h.
pub fn parse_duration(value: &str) -> Option<GoDuration> {
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Some(GoDuration(0));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let amount: f64 = number.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_nanos: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += amount * unit_nanos;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let nanos = total.round() as i64;
    Some(GoDuration(if negative { -nanos } else { nanos }))
}

/// Renders a duration the way Go's `Duration.String()` does for whole units (`1m30s`, `500ms`),
/// used for defaults in the specification.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let secs = duration.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let sub = duration.subsec_nanos();
    if sub == 0 {
        out.push_str(&format!("{seconds}s"));
    } else {
        let frac = format!("{:09}", sub);
        out.push_str(&format!("{seconds}.{}s", frac.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_follow_strconv_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "tRUE", "", " true", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ints_follow_atoi() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-7"), Some(-7));
        assert_eq!(parse_int("+7"), Some(7));
        for bad in ["", "1.0", "0x10", "1e3", " 1", "9223372036854775808", "+"] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float("1.5"), Some(1.5));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("-2"), Some(-2.0));
        assert_eq!(parse_float("abc"), None);
        assert_eq!(parse_float(""), None);
    }

    #[test]
    fn durations_follow_time_parse_duration() {
        let cases = [
            ("0", 0),
            ("300ms", 300_000_000),
            ("1.5h", 5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("-1s", -1_000_000_000),
            ("+5s", 5_000_000_000),
            ("1us", 1_000),
            ("1\u{00b5}s", 1_000),
            ("1\u{03bc}s", 1_000),
            ("10ns", 10),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_duration(text), Some(GoDuration(nanos)), "{text}");
        }
        for bad in ["", "5", "1d", "s", "1.2.3s", "-", "1 s", "ms5", "."] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_durations_like_go() {
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(90),
            Duration::from_millis(1500),
        ] {
            let parsed = parse_duration(&format_duration(d)).unwrap();
            assert_eq!(parsed.to_std(), Some(d));
        }
    }
}
