//! Translations and renderings checked against what Go 1.26 and conduit-commons v0.4.0 print.

use super::super::{RecordTemplate, TemplateError};
use super::*;
use crate::proto::opencdc::v1::{data, Change, Data, Metadata, Operation, Record};
use prost_types::value::Kind;

fn kind_value(kind: Kind) -> prost_types::Value {
    prost_types::Value { kind: Some(kind) }
}

fn object(fields: Vec<(&str, Kind)>) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), kind_value(v)))
            .collect(),
    }
}

fn structured(fields: Vec<(&str, Kind)>) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::StructuredData(object(fields))),
    })
}

fn raw(bytes: &[u8]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.to_vec().into())),
    })
}

fn list(items: Vec<Kind>) -> Kind {
    Kind::ListValue(prost_types::ListValue {
        values: items.into_iter().map(kind_value).collect(),
    })
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    let mut m = Metadata::new();
    for (k, v) in pairs {
        m.insert(k, v);
    }
    m
}

/// The records the Go program executed the templates on (the same values through
/// `opencdc.Record.FromProto`).
fn records() -> Vec<Record> {
    use Kind::*;
    let after = structured(vec![
        ("id", NumberValue(1234567.0)),
        ("small", NumberValue(42.0)),
        ("frac", NumberValue(2.5)),
        ("neg", NumberValue(-0.000001)),
        ("tiny", NumberValue(1e-7)),
        ("big", NumberValue(1e21)),
        ("e20", NumberValue(1e20)),
        ("name", StringValue("Ann Lee".into())),
        ("flag", BoolValue(true)),
        ("nil", NullValue(0)),
        (
            "nested",
            StructValue(object(vec![
                ("z", NumberValue(1.0)),
                ("a", StringValue("q".into())),
                ("m", StructValue(object(vec![]))),
            ])),
        ),
        (
            "list",
            list(vec![
                NumberValue(1.0),
                StringValue("a".into()),
                BoolValue(true),
                NullValue(0),
                list(vec![]),
                StructValue(object(vec![("k", StringValue("v".into()))])),
            ]),
        ),
        ("empty", StringValue(String::new())),
        ("this", StringValue("t".into())),
        ("Bytes", StringValue("b".into())),
        ("é", StringValue("acc".into())),
        ("nan", NumberValue(f64::NAN)),
        ("inf", NumberValue(f64::NEG_INFINITY)),
    ]);
    vec![
        Record {
            position: b"pos-1".to_vec(),
            operation: Operation::Create as i32,
            metadata: metadata(&[("opencdc.collection", "orders"), ("b", "x y"), ("a", "")]),
            key: raw(b"abc"),
            payload: Some(Change {
                before: None,
                after,
            }),
        },
        Record {
            position: b"p2".to_vec(),
            operation: Operation::Update as i32,
            metadata: metadata(&[("opencdc.collection", "users")]),
            key: structured(vec![
                ("id", NumberValue(7.0)),
                ("tenant", StringValue("acme".into())),
            ]),
            payload: Some(Change {
                before: structured(vec![("id", NumberValue(7.0))]),
                after: raw(b"raw-after"),
            }),
        },
        Record {
            operation: Operation::Delete as i32,
            ..Default::default()
        },
        Record {
            position: vec![0xff, b'x'],
            operation: Operation::Snapshot as i32,
            key: raw(&[0xff, 0, b'a']),
            payload: Some(Change {
                before: raw(b""),
                after: raw(b""),
            }),
            ..Default::default()
        },
        Record {
            position: b"p5".to_vec(),
            operation: 0,
            key: raw(b"k"),
            ..Default::default()
        },
    ]
}

/// What Go 1.26's text/template printed for these templates on [`records`] with
/// conduit-commons v0.4.0 (`template.New("partitionKey").Parse(t)`, `Execute(&sb, rec)`, as
/// the Go connector's destination does). `Err` holds the end of Go's error message.
#[rustfmt::skip]
const GOLDEN: &[(&str, [Result<&str, &str>; 5])] = &[
    (
        "{{ .Key }}",
        [Ok("[97 98 99]"), Ok("map[id:7 tenant:acme]"), Ok("<nil>"), Ok("[255 0 97]"), Ok("[107]")],
    ),
    (
        "{{.Key}}",
        [Ok("[97 98 99]"), Ok("map[id:7 tenant:acme]"), Ok("<nil>"), Ok("[255 0 97]"), Ok("[107]")],
    ),
    (
        "{{ .Position }}",
        [Ok("pos-1"), Ok("p2"), Ok("<nil>"), Ok("�x"), Ok("p5")],
    ),
    (
        "{{ .Operation }}",
        [Ok("create"), Ok("update"), Ok("delete"), Ok("snapshot"), Ok("Operation(0)")],
    ),
    (
        "{{ .Metadata }}",
        [Ok("map[a: b:x y opencdc.collection:orders]"), Ok("map[opencdc.collection:users]"), Ok("map[]"), Ok("map[]"), Ok("map[]")],
    ),
    (
        "{{ .Metadata.b }}",
        [Ok("x y"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
    ),
    (
        "{{ .Metadata.missing }}",
        [Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
    ),
    (
        "{{ .Metadata.missing.deeper }}",
        [Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
    ),
    (
        "{{ .Metadata.b.c }}",
        [Err("can't evaluate field c in type string"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>"), Ok("<no value>")],
    ),
    (
        "{{ index .Metadata \"opencdc.collection\" }}",
        [Ok("orders"), Ok("users"), Ok(""), Ok(""), Ok("")],
    ),
    (
        "{{ index .Metadata \"missing\" }}",
        [Ok(""), Ok(""), Ok(""), Ok(""), Ok("")],
    ),
    (
        "{{ index .Metadata }}",
        [Ok("map[a: b:x y opencdc.collection:orders]"), Ok("map[opencdc.collection:users]"), Ok("map[]"), Ok("map[]"), Ok("map[]")],
    ),
    (
        "{{ .Payload.After.id }}",
        [Ok("1.234567e+06"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id")],
    ),
    (
        "{{ .Payload.After.small }}",
        [Ok("42"), Err("can't evaluate field small in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.small"), Err("can't evaluate field small in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.small")],
    ),
    (
        "{{ .Payload.After.frac }}",
        [Ok("2.5"), Err("can't evaluate field frac in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.frac"), Err("can't evaluate field frac in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.frac")],
    ),
    (
        "{{ .Payload.After.neg }}",
        [Ok("-1e-06"), Err("can't evaluate field neg in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.neg"), Err("can't evaluate field neg in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.neg")],
    ),
    (
        "{{ .Payload.After.tiny }}",
        [Ok("1e-07"), Err("can't evaluate field tiny in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.tiny"), Err("can't evaluate field tiny in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.tiny")],
    ),
    (
        "{{ .Payload.After.big }}",
        [Ok("1e+21"), Err("can't evaluate field big in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.big"), Err("can't evaluate field big in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.big")],
    ),
    (
        "{{ .Payload.After.e20 }}",
        [Ok("1e+20"), Err("can't evaluate field e20 in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.e20"), Err("can't evaluate field e20 in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.e20")],
    ),
    (
        "{{ .Payload.After.nan }}",
        [Ok("NaN"), Err("can't evaluate field nan in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nan"), Err("can't evaluate field nan in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nan")],
    ),
    (
        "{{ .Payload.After.inf }}",
        [Ok("-Infinity"), Err("can't evaluate field inf in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.inf"), Err("can't evaluate field inf in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.inf")],
    ),
    (
        "{{ .Payload.After.name }}",
        [Ok("Ann Lee"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name")],
    ),
    (
        "{{ .Payload.After.flag }}",
        [Ok("true"), Err("can't evaluate field flag in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.flag"), Err("can't evaluate field flag in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.flag")],
    ),
    (
        "{{ .Payload.After.nil }}",
        [Ok("<no value>"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil")],
    ),
    (
        "{{ .Payload.After.missing }}",
        [Ok("<no value>"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing")],
    ),
    (
        "{{ .Payload.After.missing.deeper }}",
        [Ok("<no value>"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing"), Err("can't evaluate field missing in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.missing")],
    ),
    (
        "{{ .Payload.After.nil.deeper }}",
        [Err("nil pointer evaluating interface {}.deeper"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil"), Err("can't evaluate field nil in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nil")],
    ),
    (
        "{{ .Payload.After.name.deeper }}",
        [Err("can't evaluate field deeper in type interface {}"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name"), Err("can't evaluate field name in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.name")],
    ),
    (
        "{{ .Payload.After.nested }}",
        [Ok("map[a:q m:map[] z:1]"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
    ),
    (
        "{{ .Payload.After.nested.a }}",
        [Ok("q"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
    ),
    (
        "{{ .Payload.After.list }}",
        [Ok("[1 a true <nil> [] map[k:v]]"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
    ),
    (
        "{{ .Payload.After.empty }}",
        [Ok(""), Err("can't evaluate field empty in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.empty"), Err("can't evaluate field empty in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.empty")],
    ),
    (
        "{{ .Payload.After.this }}",
        [Ok("t"), Err("can't evaluate field this in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.this"), Err("can't evaluate field this in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.this")],
    ),
    (
        "{{ .Payload.After.é }}",
        [Ok("acc"), Err("can't evaluate field é in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.é"), Err("can't evaluate field é in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.é")],
    ),
    (
        "{{ index .Payload.After \"id\" }}",
        [Ok("1.234567e+06"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.After \"missing\" }}",
        [Ok("<no value>"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.After \"nil\" }}",
        [Ok("<no value>"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.After \"nested\" \"a\" }}",
        [Ok("q"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.After \"list\" 1 }}",
        [Ok("a"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.After.list 3 }}",
        [Ok("<no value>"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
    ),
    (
        "{{ index .Payload.After.list 9 }}",
        [Err("error calling index: index out of range: 9"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list"), Err("can't evaluate field list in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.list")],
    ),
    (
        "{{ index .Payload.After \"name\" 0 }}",
        [Ok("65"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Key 0 }}",
        [Ok("97"), Err("error calling index: value has type int; should be string"), Err("error calling index: index of untyped nil"), Ok("255"), Ok("107")],
    ),
    (
        "{{ index .Key \"id\" }}",
        [Err("error calling index: cannot index slice/array with type string"), Ok("7"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: cannot index slice/array with type string")],
    ),
    (
        "{{ index .Payload.After \"missing\" \"x\" }}",
        [Err("error calling index: index of nil pointer"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ index .Payload.Before \"x\" }}",
        [Err("error calling index: index of untyped nil"), Ok("<no value>"), Err("error calling index: index of untyped nil"), Err("error calling index: cannot index slice/array with type string"), Err("error calling index: index of untyped nil")],
    ),
    (
        "{{ .Payload.After }}",
        [Ok("map[Bytes:b big:1e+21 e20:1e+20 empty: flag:true frac:2.5 id:1.234567e+06 inf:-Infinity list:[1 a true <nil> [] map[k:v]] name:Ann Lee nan:NaN neg:-1e-06 nested:map[a:q m:map[] z:1] nil:<nil> small:42 this:t tiny:1e-07 é:acc]"), Ok("[114 97 119 45 97 102 116 101 114]"), Ok("<nil>"), Ok("[]"), Ok("<nil>")],
    ),
    (
        "{{ .Payload.Before }}",
        [Ok("<nil>"), Ok("map[id:7]"), Ok("<nil>"), Ok("[]"), Ok("<nil>")],
    ),
    (
        "{{ .Payload }}",
        [Ok("{<nil> map[Bytes:b big:1e+21 e20:1e+20 empty: flag:true frac:2.5 id:1.234567e+06 inf:-Infinity list:[1 a true <nil> [] map[k:v]] name:Ann Lee nan:NaN neg:-1e-06 nested:map[a:q m:map[] z:1] nil:<nil> small:42 this:t tiny:1e-07 é:acc]}"), Ok("{map[id:7] [114 97 119 45 97 102 116 101 114]}"), Ok("{<nil> <nil>}"), Ok("{[] []}"), Ok("{<nil> <nil>}")],
    ),
    (
        "{{ .Key.id }}",
        [Err("can't evaluate field id in type opencdc.Data"), Ok("7"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("can't evaluate field id in type opencdc.Data")],
    ),
    (
        "{{ .Key.tenant }}",
        [Err("can't evaluate field tenant in type opencdc.Data"), Ok("acme"), Err("nil pointer evaluating opencdc.Data.tenant"), Err("can't evaluate field tenant in type opencdc.Data"), Err("can't evaluate field tenant in type opencdc.Data")],
    ),
    (
        "prefix-{{- .Key -}} -suffix",
        [Ok("prefix-[97 98 99]-suffix"), Ok("prefix-map[id:7 tenant:acme]-suffix"), Ok("prefix-<nil>-suffix"), Ok("prefix-[255 0 97]-suffix"), Ok("prefix-[107]-suffix")],
    ),
    (
        "a \n\t{{- .Operation }}  b",
        [Ok("acreate  b"), Ok("aupdate  b"), Ok("adelete  b"), Ok("asnapshot  b"), Ok("aOperation(0)  b")],
    ),
    (
        "{{ .Operation -}} \r\n x",
        [Ok("createx"), Ok("updatex"), Ok("deletex"), Ok("snapshotx"), Ok("Operation(0)x")],
    ),
    (
        "x{{/* comment */}}y",
        [Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy")],
    ),
    (
        "x {{- /* c */ -}} y",
        [Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy"), Ok("xy")],
    ),
    (
        "{{ .Payload.After.id }}/{{ index .Metadata \"opencdc.collection\" }}",
        [Ok("1.234567e+06/orders"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id"), Err("can't evaluate field id in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.id")],
    ),
    (
        "a\\{{ .Operation }}",
        [Ok("a\\create"), Ok("a\\update"), Ok("a\\delete"), Ok("a\\snapshot"), Ok("a\\Operation(0)")],
    ),
    (
        "{{ index .Metadata `opencdc.collection` }}",
        [Ok("orders"), Ok("users"), Ok(""), Ok(""), Ok("")],
    ),
    (
        "{{ index .Payload.After.nested \"m\" }}",
        [Ok("map[]"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested"), Err("can't evaluate field nested in type opencdc.Data"), Err("nil pointer evaluating opencdc.Data.nested")],
    ),
];

#[test]
fn translated_go_templates_render_what_go_renders() {
    let records = records();
    for (source, expected) in GOLDEN {
        let template = RecordTemplate::compile_go(source)
            .unwrap_or_else(|e| panic!("{source:?} refused: {e}"));
        assert_eq!(template.translated_from(), Some(*source));
        for (i, (record, expected)) in records.iter().zip(expected).enumerate() {
            let got = template.render(record);
            match (expected, &got) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(
                        got,
                        want,
                        "{source:?} on record {i} (as {:?})",
                        template.source()
                    )
                }
                (Err(reason), Err(error)) => assert!(
                    error
                        .to_string()
                        .contains(reason.trim_start_matches("error calling index: ")),
                    "{source:?} on record {i}: {error} does not say {reason:?}"
                ),
                _ => panic!(
                    "{source:?} on record {i} (as {:?}): got {got:?}, Go gave {expected:?}",
                    template.source()
                ),
            }
        }
    }
}

#[test]
fn the_handlebars_forms() {
    for (go, handlebars) in [
        ("{{ .Key }}", "{{go Key}}"),
        ("{{ .Payload.After.id }}", "{{go Payload.After.id}}"),
        (
            r#"{{ index .Metadata "opencdc.collection" }}"#,
            r#"{{go (index Metadata "opencdc.collection")}}"#,
        ),
        (
            r#"{{ index .Payload.After "list" 1 }}"#,
            r#"{{go (index Payload.After "list" 1)}}"#,
        ),
        ("k-{{- .Key -}} -{{/* c */}}x", "k-{{go Key}}-x"),
        (
            "{{ .Payload.After.this }}.{{ .Payload.After.é }}",
            "{{go Payload.After.[this]}}.{{go Payload.After.[é]}}",
        ),
        ("a\\{{ .Operation }}", "a\\\\{{go Operation}}"),
        (
            "{{ index .Metadata `a\"b` }}",
            r#"{{go (index Metadata "a\"b")}}"#,
        ),
    ] {
        let template = RecordTemplate::compile_go(go).unwrap();
        assert_eq!(template.source(), handlebars, "{go:?}");
    }
}

#[test]
fn the_handlebars_form_renders_the_same_when_written_by_hand() {
    let records = records();
    for (source, _) in GOLDEN {
        let translated = RecordTemplate::compile_go(source).unwrap();
        let by_hand = RecordTemplate::compile(translated.source()).unwrap();
        for record in &records {
            assert_eq!(
                by_hand.render(record).ok(),
                translated.render(record).ok(),
                "{source:?}"
            );
        }
    }
    // Next to ordinary Handlebars, which still prints the key as text.
    let mixed = RecordTemplate::compile("{{Key}}={{go Key}}").unwrap();
    assert_eq!(mixed.render(&records[0]).unwrap(), "abc=[97 98 99]");
}

#[test]
fn outside_the_subset_is_refused_with_the_suggestion() {
    for source in [
        "{{ .Key | printf \"%s\" }}",
        "{{ printf \"%s\" .Key }}",
        "{{ if .Key }}x{{ end }}",
        "{{ range .Payload.After.list }}x{{ end }}",
        "{{ with .Payload }}{{ .After }}{{ end }}",
        "{{ $x := .Key }}{{ $x }}",
        "{{ . }}",
        "{{ .Nope }}",
        "{{ .Position.x }}",
        "{{ .Payload.Middle }}",
        "{{ .Key.Bytes }}",
        "{{ .Payload.After.Bytes }}",
        "{{ .Metadata.GetCollection }}",
        "{{ index .Metadata .Key }}",
        "{{ index .Metadata \"a\\x41\" }}",
        "{{ .Key }}-{{Operation}}",
        "{{ .Key ",
        "{{ (index .Metadata \"a\") }}",
        "{{ .Payload.After.1x }}",
    ] {
        let err = RecordTemplate::compile_go(source)
            .err()
            .unwrap_or_else(|| panic!("{source:?} accepted"));
        let TemplateError::GoSyntax(message) = &err else {
            panic!("{source:?}: {err:?}");
        };
        assert!(message.contains("Go template"), "{message}");
        assert!(message.contains("try"), "{message}");
    }
}

#[test]
fn plain_handlebars_still_refuses_go_syntax() {
    assert!(matches!(
        RecordTemplate::compile("{{ .Key }}"),
        Err(TemplateError::GoSyntax(_))
    ));
    // And compile_go leaves Handlebars alone.
    let t = RecordTemplate::compile_go("{{Key}}").unwrap();
    assert_eq!(t.translated_from(), None);
    assert_eq!(t.render(&records()[0]).unwrap(), "abc");
}

#[test]
fn floats_print_like_go() {
    for (f, go) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (999999.0, "999999"),
        (1e6, "1e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.5e300, "1.5e+300"),
        (5e-324, "5e-324"),
        (-2.5, "-2.5"),
        (123456.789, "123456.789"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
    ] {
        assert_eq!(go_float(f), go, "{f}");
    }
}

#[test]
fn exact_integers_print_their_digits() {
    let record = Record {
        payload: Some(Change {
            before: None,
            after: structured(vec![(
                "id",
                crate::destination::exact::integer_kind(8_340_323_910_550_179_726),
            )]),
        }),
        ..Default::default()
    };
    let t = RecordTemplate::compile_go("{{ .Payload.After.id }}").unwrap();
    assert_eq!(t.render(&record).unwrap(), "8340323910550179726");
}

#[test]
fn the_view_carries_only_what_the_template_reads() {
    let t = translate("{{ .Key }}").unwrap();
    let view = view(&records()[0], t.fields);
    assert_eq!(
        view.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["Key"]
    );
}
