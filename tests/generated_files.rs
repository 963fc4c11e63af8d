//! The committed `connector.yaml` and the README parameter tables are generated from the
//! parameter declarations in `src/spec.rs`. This test fails when they drift; run
//! `make generate` (UPDATE_GENERATED=1) to rewrite them.

use std::path::PathBuf;

use conduit_connector_kinesis::testing as spec;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn updating() -> bool {
    std::env::var("UPDATE_GENERATED").is_ok_and(|v| v == "1")
}

fn check(path: &str, expected: &str) {
    let file = root().join(path);
    let actual = std::fs::read_to_string(&file).unwrap_or_default();
    if actual == expected {
        return;
    }
    if updating() {
        std::fs::write(&file, expected).unwrap();
        return;
    }
    panic!("{path} is out of date with src/spec.rs: run `make generate` and commit the result");
}

/// Replaces the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`.
fn with_section(document: &str, name: &str, content: &str) -> String {
    let start = format!("<!-- generated:{name} -->\n");
    let end = format!("<!-- /generated:{name} -->");
    let Some(begin) = document.find(&start) else {
        panic!("README.md lacks the marker {start:?}");
    };
    let after = begin + start.len();
    let Some(finish) = document[after..].find(&end) else {
        panic!("README.md lacks the marker {end:?}");
    };
    format!(
        "{}{}{}",
        &document[..after],
        content,
        &document[after + finish..]
    )
}

#[test]
fn connector_yaml_matches_the_code() {
    check(
        "connector.yaml",
        &conduit_connector_kinesis::connector_yaml(),
    );
}

#[test]
fn specs_command_prints_connector_yaml() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_conduit-connector-kinesis"))
        .arg("specs")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        conduit_connector_kinesis::connector_yaml()
    );
}

#[test]
fn readme_parameter_tables_match_the_code() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let updated = with_section(
        &readme,
        "source-parameters",
        &spec::markdown_table(spec::source_params()),
    );
    let updated = with_section(
        &updated,
        "destination-parameters",
        &spec::markdown_table(spec::destination_params()),
    );
    check("README.md", &updated);
}
