//! Handlebars templates from settings (`destination::template`, `destination::key`), the
//! Go-template hint (`template::suggest_handlebars`) and Go value syntax (`config::gosyntax`).

use conduit_connector_kinesis::proto::opencdc::v1::{
    data, Change, Data, Metadata, Operation, Record,
};
use conduit_connector_kinesis::testing::{explicit_hash_key, KeyStrategy};
use conduit_connector_kinesis::testing::{
    format_duration, parse_bool, parse_duration, parse_float, parse_int,
};
use conduit_connector_kinesis::testing::{suggest_handlebars, RecordTemplate, TemplateError};
use proptest::prelude::*;

use super::common::*;

fn sample_record() -> Record {
    let mut metadata = Metadata::new();
    metadata.insert("opencdc.collection", "orders");
    let after = prost_types::Struct {
        fields: [(
            "id".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(7.0)),
            },
        )]
        .into(),
    };
    Record {
        position: b"p".to_vec(),
        operation: Operation::Update as i32,
        metadata,
        key: Some(Data {
            data: Some(data::Data::RawData(b"k-1".to_vec().into())),
        }),
        payload: Some(Change {
            before: None,
            after: Some(Data {
                data: Some(data::Data::StructuredData(after)),
            }),
        }),
    }
}

const VALID: &[&str] = &[
    "{{Payload.After.id}}-{{lookup Metadata \"opencdc.collection\"}}",
    "{{#if Key}}{{Key}}{{else}}none{{/if}}",
    "{{#each Payload.After}}{{@key}}={{this}};{{/each}}",
    "{{Metadata.[opencdc.collection]}}/{{Operation}}",
    "{{{Key}}} {{!comment}} {{#with Payload}}{{After.id}}{{/with}}",
    "{{ .Payload.After.id }}",
    "{{ index .Metadata \"opencdc.collection\" }}",
    "k-{{- index .Payload.After \"id\" 0 -}} {{/* c */}}{{ .Payload.After.id }}",
    "{{go (index Payload.After \"id\")}}{{go Key}}",
];

/// Compiles and renders `source`; errors name the template problem.
fn check(source: &str) {
    // The Go-template pattern is compiled on first use: not an allocation of this input's.
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| drop(RecordTemplate::compile("{{x}}")));
    let record = sample_record();
    // Settings that also take the Go connector's Go templates translate them first.
    let go = bounded("template", source.len(), || {
        RecordTemplate::compile_go(source)
    });
    match go {
        Ok(template) => {
            if let Err(e) = template.render(&record) {
                assert!(matches!(e, TemplateError::Render(_)), "{e:?}");
            }
        }
        Err(TemplateError::GoSyntax(message)) => names_one_of(&message, &["Go template"]),
        Err(e) => names_one_of(&e.to_string(), &["Handlebars template"]),
    }
    let compiled = bounded("template", source.len(), || RecordTemplate::compile(source));
    match compiled {
        Ok(template) => {
            if let Err(e) = template.render(&record) {
                assert!(matches!(e, TemplateError::Render(_)), "{e:?}");
                names_one_of(&e.to_string(), &["render"]);
            }
            let strategy = KeyStrategy::Template(Box::new(template.clone()));
            if let Err(e) = strategy.derive(&record) {
                names_one_of(&e.to_string(), &["partitionKeyTemplate"]);
            }
            if let Err(e) = explicit_hash_key(&template, &record) {
                names_one_of(&e.to_string(), &["explicitHashKeyTemplate"]);
            }
        }
        Err(TemplateError::GoSyntax(message)) => names_one_of(&message, &["Go template"]),
        Err(e) => names_one_of(&e.to_string(), &["Handlebars template"]),
    }
    let _ = suggest_handlebars(source);
}

fn char_edit() -> impl Strategy<Value = (proptest::sample::Index, u8, String)> {
    (
        any::<proptest::sample::Index>(),
        0u8..3,
        prop_oneof![
            Just("{{".to_string()),
            Just("}}".to_string()),
            Just("#".to_string()),
            Just("/".to_string()),
            Just("(".to_string()),
            Just(">".to_string()),
            Just("~".to_string()),
            Just("\"".to_string()),
            Just("[".to_string()),
            ".{0,3}",
        ],
    )
}

fn mutate_text(text: &str, edits: &[(proptest::sample::Index, u8, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, op, piece) in edits {
        let i = at.index(chars.len() + 1);
        match op {
            0 => {
                chars.splice(i..i, piece.chars());
            }
            1 if i < chars.len() => {
                chars.remove(i);
            }
            _ => chars.truncate(i),
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_templates(source in ".{0,60}") {
        check(&source);
    }

    #[test]
    fn template_shaped_noise(source in "(\\{\\{[#/>!~^&*@]?[a-zA-Z. \"()=\\[\\]]{0,10}\\}\\}|[a-z ]{0,4}){0,8}") {
        check(&source);
    }

    #[test]
    fn mutated_templates(which in 0..VALID.len(), edits in prop::collection::vec(char_edit(), 1..4)) {
        check(&mutate_text(VALID[which], &edits));
    }

    #[test]
    fn go_values_never_panic(text in ".{0,24}") {
        let _ = parse_bool(&text);
        let _ = parse_int(&text);
        let _ = parse_float(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn go_durations_round_trip(seconds in 0u64..10_000_000, millis in 0u32..1000) {
        let duration = std::time::Duration::from_secs(seconds) + std::time::Duration::from_millis(millis.into());
        let text = format_duration(duration);
        prop_assert_eq!(parse_duration(&text).and_then(|d| d.to_std()), Some(duration), "{}", text);
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("template") {
        println!("template corpus {name}");
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn deep_nesting_and_self_reference_do_not_overflow_the_stack() {
    for depth in [100, 1000] {
        check(&"{{#if Key}}".repeat(depth));
        check(&format!(
            "{}x{}",
            "{{#if Key}}".repeat(depth),
            "{{/if}}".repeat(depth)
        ));
        check(&format!(
            "{{{{lookup {}Key{} \"a\"}}}}",
            "(lookup ".repeat(depth),
            ")".repeat(depth)
        ));
    }
    for recursive in [r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#, "{{> t}}"] {
        check(recursive);
        let message = RecordTemplate::compile(recursive).unwrap_err().to_string();
        assert!(message.contains("partial"), "{message}");
    }
    let nested = format!("{}x{}", "{{#if Key}}".repeat(65), "{{/if}}".repeat(65));
    let message = RecordTemplate::compile(&nested).unwrap_err().to_string();
    assert!(message.contains("nests blocks"), "{message}");
}
