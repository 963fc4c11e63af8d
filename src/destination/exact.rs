//! Exact 64-bit integers inside protobuf `Value`s.
//!
//! Avro `long` values decode to Go `int64` in Conduit's Go SDK, and Go's JSON encoder writes
//! them digit for digit. A protobuf `Value` number is a double, exact only up to 2^53, while
//! 64-bit identifiers (snowflake IDs, Conduit's own generator) are routinely larger. The
//! schema decoder therefore stores integers beyond 2^53 as a string with a private tag, and
//! every writer of decoded values in this crate (the JSON formats, the debezium schema,
//! templates and partition keys) turns it back into the exact number. Decoded records never
//! leave the process, so the tag is never seen outside it.

/// Starts the string form of an exact integer. Control characters no record text would
/// begin with; the digits after it are validated before they are written as a number.
const TAG: &str = "\u{0}\u{1}exact-integer:";

/// Largest magnitude a double holds exactly with every smaller integer.
const EXACT_IN_DOUBLE: u64 = 1 << 53;

/// The protobuf value kind for an integer: a number when a double holds it exactly, else the
/// tagged string.
pub(crate) fn integer_kind(value: i64) -> prost_types::value::Kind {
    use prost_types::value::Kind;
    if value.unsigned_abs() <= EXACT_IN_DOUBLE {
        Kind::NumberValue(value as f64)
    } else {
        Kind::StringValue(format!("{TAG}{value}"))
    }
}

/// The decimal digits of `text` when it is a tagged exact integer.
pub(crate) fn exact_integer(text: &str) -> Option<&str> {
    let digits = text.strip_prefix(TAG)?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    (!unsigned.is_empty() && unsigned.len() <= 19 && unsigned.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    #[test]
    fn integers_a_double_cannot_hold_keep_their_digits() {
        assert_eq!(integer_kind(42), Kind::NumberValue(42.0));
        assert_eq!(
            integer_kind(9_007_199_254_740_992),
            Kind::NumberValue(9_007_199_254_740_992.0)
        );
        for value in [
            9_007_199_254_740_993,
            8_340_323_910_550_179_726,
            i64::MIN,
            i64::MAX,
        ] {
            let Kind::StringValue(text) = integer_kind(value) else {
                panic!("{value} as a double")
            };
            assert_eq!(exact_integer(&text), Some(value.to_string().as_str()));
        }
    }

    #[test]
    fn only_tagged_digits_are_exact_integers() {
        assert_eq!(exact_integer("12345"), None);
        assert_eq!(exact_integer(TAG), None);
        assert_eq!(exact_integer(&format!("{TAG}-")), None);
        assert_eq!(exact_integer(&format!("{TAG}1,\"admin\":true")), None);
        assert_eq!(
            exact_integer(&format!("{TAG}12345678901234567890123")),
            None
        );
        assert_eq!(exact_integer(&format!("{TAG}-12")), Some("-12"));
    }
}
