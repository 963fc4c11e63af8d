//! `raw`: `payload.after` as it is; structured data as compact JSON.

use super::go_json::write_struct;
use super::{non_empty, FormatError};
use crate::proto::opencdc::v1::{data, Record};

pub(super) fn encode_raw(record: &Record) -> Result<Vec<u8>, FormatError> {
    match non_empty(record.payload.as_ref().and_then(|p| p.after.as_ref())) {
        Some(data::Data::RawData(bytes)) => Ok(bytes.to_vec()),
        Some(data::Data::StructuredData(s)) => {
            let mut out = Vec::with_capacity(256);
            write_struct(&mut out, s);
            Ok(out)
        }
        None => Err(FormatError::Missing {
            format: "raw",
            part: "payload.after",
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::destination::format::testing::*;

    #[test]
    fn raw_writes_payload_after() {
        let format = RecordFormat::from_settings("raw", "").unwrap();
        let r = record(
            b"p",
            Operation::Create,
            &[],
            None,
            None,
            raw(b"\x00\xffbytes"),
        );
        assert_eq!(format.encode(&r).unwrap(), b"\x00\xffbytes");
        let r = record(
            b"p",
            Operation::Create,
            &[],
            None,
            None,
            structured(vec![("b", num(1e-7)), ("a", text("<x>"))]),
        );
        assert_eq!(encode(&format, &r), r#"{"a":"\u003cx\u003e","b":1e-07}"#);
        for after in [None, raw(b""), Some(Data { data: None })] {
            let r = record(b"p", Operation::Delete, &[], None, raw(b"old"), after);
            let err = format.encode(&r).unwrap_err();
            assert!(matches!(err, FormatError::Missing { .. }), "{err:?}");
            assert!(err.to_string().contains("payload.after"), "{err}");
        }
    }
}
