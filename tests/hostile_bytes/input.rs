//! `produce`'s CSV and JSON-lines input (`cli::input::read_rows`).

use conduit_connector_kinesis::testing::{read_rows, InputKind, Item};
use proptest::prelude::*;

use super::common::*;

fn read(kind: InputKind, bytes: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    bounded("produce input", bytes.len(), || {
        read_rows(input, kind, None, |item| {
            items.push(item);
            true
        })
    });
    items
}

/// Every malformed row names its line and what is wrong; a fatal error names the input.
fn check(kind: InputKind, bytes: &[u8]) -> Vec<Item> {
    let items = read(kind, bytes);
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Row(row) => {
                assert!(
                    row.line >= 1 && row.line <= lines,
                    "line {} of {lines}",
                    row.line
                );
                let parsed: serde_json::Value = serde_json::from_str(&row.json).unwrap();
                assert_eq!(parsed, serde_json::Value::Object(row.fields.clone()));
            }
            Item::Malformed(error) => {
                assert!(error.line >= 1 && error.line <= lines, "{error:?}");
                assert!(!error.message.trim().is_empty());
            }
            Item::Fatal(message) => {
                assert_eq!(i, items.len() - 1, "a fatal error ends the input");
                names_one_of(message, &["CSV", "input"]);
            }
        }
    }
    items
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![".{0,10}", "[a-z ,\"\r\n]{0,10}"]
}

fn table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    prop::collection::btree_set("[a-z]{1,8}", 1..5).prop_flat_map(|names| {
        let names: Vec<String> = names.into_iter().collect();
        let width = names.len();
        (
            Just(names),
            prop::collection::vec(prop::collection::vec(cell(), width), 0..6),
        )
    })
}

fn csv_bytes(names: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(names).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

fn json_objects() -> impl Strategy<Value = Vec<serde_json::Map<String, serde_json::Value>>> {
    let value = prop_oneof![
        any::<i32>().prop_map(serde_json::Value::from),
        ".{0,10}".prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    prop::collection::vec(prop::collection::btree_map(".{1,6}", value, 0..4), 0..6).prop_map(
        |objects| {
            objects
                .into_iter()
                .map(|o| o.into_iter().collect())
                .collect()
        },
    )
}

fn json_lines(objects: &[serde_json::Map<String, serde_json::Value>]) -> Vec<u8> {
    let mut out = Vec::new();
    for object in objects {
        serde_json::to_writer(&mut out, object).unwrap();
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn csv_round_trip((names, rows) in table()) {
        let items = check(InputKind::Csv, &csv_bytes(&names, &rows));
        prop_assert_eq!(items.len(), rows.len());
        for (item, row) in items.iter().zip(&rows) {
            let Item::Row(got) = item else { panic!("{item:?}") };
            for (name, cell) in names.iter().zip(row) {
                prop_assert_eq!(got.fields[name].as_str(), Some(cell.as_str()));
            }
        }
    }

    #[test]
    fn json_lines_round_trip(objects in json_objects()) {
        let items = check(InputKind::JsonLines, &json_lines(&objects));
        prop_assert_eq!(items.len(), objects.len());
        for (item, object) in items.iter().zip(&objects) {
            let Item::Row(got) = item else { panic!("{item:?}") };
            prop_assert_eq!(&got.fields, object);
        }
    }

    #[test]
    fn arbitrary_bytes(bytes in junk()) {
        check(InputKind::Csv, &bytes);
        check(InputKind::JsonLines, &bytes);
    }

    #[test]
    fn mutated_csv((names, rows) in table(), typed in any::<bool>(), edits in edits()) {
        let mut names = names;
        if typed {
            for (name, kind) in names.iter_mut().zip([":number", ":integer", ":boolean", ":json"]) {
                name.push_str(kind);
            }
        }
        check(InputKind::Csv, &mutate(&csv_bytes(&names, &rows), &edits));
    }

    #[test]
    fn mutated_json_lines(objects in json_objects(), edits in edits()) {
        check(InputKind::JsonLines, &mutate(&json_lines(&objects), &edits));
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("produce_input") {
        println!("produce input corpus {name}");
        check(InputKind::Csv, &bytes);
        check(InputKind::JsonLines, &bytes);
    }
}
