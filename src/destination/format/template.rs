//! `template`: a Handlebars template ([`RecordTemplate`]) rendered per record.

use super::FormatError;
use crate::destination::template::RecordTemplate;
use crate::proto::opencdc::v1::Record;

pub(super) fn encode_template(
    template: &RecordTemplate,
    record: &Record,
) -> Result<Vec<u8>, FormatError> {
    template
        .render(record)
        .map(String::into_bytes)
        .map_err(FormatError::Template)
}

#[cfg(test)]
mod tests {
    use crate::destination::format::testing::*;

    #[test]
    fn template_renders_the_record() {
        let format = RecordFormat::from_settings(
            "template",
            "{{Operation}}:{{Key}}:{{Payload.After.id}}:{{lookup Metadata \"opencdc.collection\"}}",
        )
        .unwrap();
        let r = record(
            b"p",
            Operation::Create,
            &[("opencdc.collection", "orders")],
            raw(b"k-1"),
            None,
            structured(vec![("id", num(42.0))]),
        );
        assert_eq!(encode(&format, &r), "create:k-1:42:orders");
    }

    #[test]
    fn template_settings_errors() {
        let err = RecordFormat::from_settings("template", "{{ .Payload.After }}").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sdk.record.format.options"), "{message}");
        assert!(message.contains("try \"{{Payload.After}}\""), "{message}");
        let err = RecordFormat::from_settings("template", "  ").unwrap_err();
        assert!(
            err.to_string().contains("sdk.record.format.options"),
            "{err}"
        );
        let err = RecordFormat::from_settings("template", "{{#if}}").unwrap_err();
        assert!(err.to_string().contains("Handlebars"), "{err}");
    }
}
