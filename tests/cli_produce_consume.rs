//! The `produce` and `consume` commands of the built binary against kinesis-local (loopback
//! only; `test/setup.sh` first).

mod support;

use support::destination::{read_all, Stored};

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use base64::Engine as _;
use serde_json::Value;
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What one run of the binary gave.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn command(kl: Option<&KinesisLocal>, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(support::plugin_binary());
    cmd.args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(kl) = kl {
        for (k, v) in kl.aws_env() {
            cmd.env(k, v);
        }
        cmd.arg("--endpoint-url").arg(&kl.endpoint);
    }
    cmd
}

async fn run(kl: Option<&KinesisLocal>, args: &[&str]) -> Run {
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(120), command(kl, args).output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not end within 120s"))
        .expect("run the binary");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn write_file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write input");
    path.to_str().unwrap().to_string()
}

/// Every record of every shard, read directly from the server.
async fn read_back(kl: &KinesisLocal, stream: &str) -> Vec<Stored> {
    read_all(&kl.client().await, stream).await
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
}

const CSV: &str = "id:integer,name,note,price:number,active:bool\n\
1,\"Smith, Jane\",\"line one\nline two\",9.99,true\n\
2,Bob,\"He said \"\"hi\"\", then left\",0,false\n\
3,Ünïcødé,,,1\n\
4,\"multi\nline\nname\",\"a,b,c\",1e3,f\n";

/// The JSON each CSV row becomes, by id.
fn csv_expected() -> BTreeMap<String, String> {
    [
        (
            "1",
            r#"{"id":1,"name":"Smith, Jane","note":"line one\nline two","price":9.99,"active":true}"#,
        ),
        (
            "2",
            r#"{"id":2,"name":"Bob","note":"He said \"hi\", then left","price":0,"active":false}"#,
        ),
        (
            "3",
            r#"{"id":3,"name":"Ünïcødé","note":"","price":null,"active":true}"#,
        ),
        (
            "4",
            r#"{"id":4,"name":"multi\nline\nname","note":"a,b,c","price":1e3,"active":false}"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn csv_with_quotes_newlines_and_commas_round_trips() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-csv");
    kl.create_stream(&stream, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "rows.csv", CSV);

    let produced = run(
        Some(&kl),
        &[
            "produce",
            &stream,
            &file,
            "--partition-key",
            "id",
            "--region",
            "us-east-1",
        ],
    )
    .await;
    assert_ok(&produced);
    assert_eq!(produced.stdout, "", "produce prints nothing on stdout");
    assert!(
        produced.stderr.contains("sent 4 records"),
        "{}",
        produced.stderr
    );

    // Read back with the SDK: the JSON of each row, keyed by its id.
    let stored = read_back(&kl, &stream).await;
    let by_key: BTreeMap<String, String> = stored
        .iter()
        .map(|s| {
            (
                s.partition_key.clone(),
                String::from_utf8(s.data.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(stored.len(), 4);
    assert_eq!(by_key, csv_expected());

    // Read back with consume: the same records, shards and sequence numbers.
    let consumed = run(
        Some(&kl),
        &[
            "consume",
            &stream,
            "--mode",
            "polling",
            "--max-records",
            "4",
            "--duration",
            "60s",
        ],
    )
    .await;
    assert_ok(&consumed);
    assert!(
        consumed.stderr.contains("--max-records reached"),
        "{}",
        consumed.stderr
    );
    let lines = json_lines(&consumed.stdout);
    assert_eq!(lines.len(), 4, "{}", consumed.stdout);
    let mut seen = BTreeMap::new();
    for line in &lines {
        let key = line["partitionKey"].as_str().unwrap().to_string();
        let data = line["data"].as_str().unwrap().to_string();
        let s = stored.iter().find(|s| s.partition_key == key).unwrap();
        assert_eq!(line["shard"], s.shard.as_str());
        assert_eq!(line["sequence"], s.sequence.as_str());
        assert!(line.get("subSequence").is_none());
        let arrival = line["arrival"].as_str().unwrap();
        assert!(
            arrival.len() == 24 && arrival.ends_with('Z'),
            "arrival {arrival}"
        );
        seen.insert(key, data);
    }
    assert_eq!(seen, csv_expected());
}

#[tokio::test]
async fn malformed_rows_are_reported_with_their_line_and_the_rest_is_sent() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-bad");
    kl.create_stream(&stream, 1).await;
    let dir = tempfile::tempdir().unwrap();
    // Line 3 starts a row that spans lines 3-4 and has one field too many.
    let csv = write_file(
        dir.path(),
        "rows.csv",
        "id,name\n1,a\n2,\"b\nb\",extra\n3,c\n",
    );
    let produced = run(Some(&kl), &["produce", &stream, &csv]).await;
    assert_eq!(produced.code, Some(1), "{produced:#?}");
    assert!(
        produced.stderr.contains(&format!(
            "error: line 3 of {csv}: the row has 3 fields, the header has 2"
        )),
        "{}",
        produced.stderr
    );
    assert!(
        produced.stderr.contains("sent 2 records") && produced.stderr.contains("1 malformed row"),
        "{}",
        produced.stderr
    );

    let jsonl = write_file(
        dir.path(),
        "rows.jsonl",
        "{\"id\":4}\n{\"id\": 5,\n[6]\n{\"id\":7}\n",
    );
    let produced = run(Some(&kl), &["produce", &stream, &jsonl]).await;
    assert_eq!(produced.code, Some(1), "{produced:#?}");
    assert!(
        produced
            .stderr
            .contains(&format!("error: line 2 of {jsonl}: invalid JSON")),
        "{}",
        produced.stderr
    );
    assert!(
        produced.stderr.contains(&format!(
            "error: line 3 of {jsonl}: the line is JSON but not an object"
        )),
        "{}",
        produced.stderr
    );

    let mut data: Vec<String> = read_back(&kl, &stream)
        .await
        .into_iter()
        .map(|s| String::from_utf8(s.data).unwrap())
        .collect();
    data.sort();
    assert_eq!(
        data,
        [
            r#"{"id":"1","name":"a"}"#,
            r#"{"id":"3","name":"c"}"#,
            r#"{"id":4}"#,
            r#"{"id":7}"#
        ]
    );
}

#[tokio::test]
async fn dry_run_prints_the_records_and_sends_nothing() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-dry");
    kl.create_stream(&stream, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "rows.ndjson",
        "{\"user\": \"ann\", \"n\": 1.50}\n\n{\"user\": \"bob\", \"n\": 2}\n",
    );

    let dry = run(
        Some(&kl),
        &[
            "produce",
            &stream,
            &file,
            "--dry-run",
            "--partition-key",
            "user",
            "--op-type",
            "--operation",
            "update",
        ],
    )
    .await;
    assert_ok(&dry);
    assert!(dry.stderr.contains("nothing sent"), "{}", dry.stderr);
    let lines = json_lines(&dry.stdout);
    assert_eq!(lines.len(), 2, "{}", dry.stdout);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["stream"], stream.as_str());
    assert_eq!(lines[0]["partitionKey"], "ann");
    assert_eq!(
        lines[0]["data"],
        r#"{"op_type":"update","user":"ann","n":1.50}"#
    );
    assert_eq!(lines[1]["line"], 3);
    assert_eq!(lines[1]["partitionKey"], "bob");

    // Raw: the line as it is in the file.
    let raw = run(
        Some(&kl),
        &["produce", &stream, &file, "--dry-run", "--format", "raw"],
    )
    .await;
    assert_ok(&raw);
    let lines = json_lines(&raw.stdout);
    assert_eq!(lines[0]["data"], r#"{"user": "ann", "n": 1.50}"#);
    assert_eq!(lines[0]["partitionKey"].as_str().unwrap().len(), 32);

    // Nothing reached the server.
    assert_eq!(read_back(&kl, &stream).await, Vec::new());

    // A dry run needs no AWS at all: an endpoint where nothing listens is fine.
    let port = support::free_port();
    let offline = run(
        None,
        &[
            "produce",
            &stream,
            "-",
            "--input",
            "jsonl",
            "--dry-run",
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
        ],
    )
    .await;
    assert_ok(&offline);
    assert_eq!(offline.stdout, "");
    assert!(
        offline.stderr.contains("0 records encoded"),
        "{}",
        offline.stderr
    );
}

async fn open_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<aws_sdk_kinesis::types::Shard> {
    client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.sequence_number_range
                .as_ref()
                .and_then(|r| r.ending_sequence_number.as_ref())
                .is_none()
        })
        .collect()
}

/// Writes rows `{"key":"k<i % keys>","i":i}` for i in `range` with `produce`.
async fn produce_numbered(
    kl: &KinesisLocal,
    stream: &str,
    dir: &Path,
    range: std::ops::Range<usize>,
    keys: usize,
) {
    let rows: String = range
        .clone()
        .map(|i| format!("{{\"key\":\"k{}\",\"i\":{i}}}\n", i % keys))
        .collect();
    let file = write_file(dir, &format!("rows-{}.jsonl", range.start), &rows);
    let produced = run(
        Some(kl),
        &["produce", stream, &file, "--partition-key", "key"],
    )
    .await;
    assert_ok(&produced);
}

/// Lines a running `consume` printed so far.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<String>>>);

impl Collected {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize, timeout: Duration) {
        let started = Instant::now();
        while self.len() < n {
            assert!(
                started.elapsed() < timeout,
                "only {} of {n} records after {timeout:?}",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn consume_follows_a_split_and_prints_every_record_once_in_key_order() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-reshard");
    kl.create_stream(&stream, 2).await;
    let client = kl.client().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = 8;
    produce_numbered(&kl, &stream, dir.path(), 0..40, keys).await;

    let mut child = command(
        Some(&kl),
        &[
            "consume",
            &stream,
            "--discovery-interval",
            "2s",
            "--duration",
            "5m",
        ],
    )
    .spawn()
    .expect("start consume");
    let stdout = child.stdout.take().unwrap();
    let collected = Collected::default();
    let sink = collected.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.0.lock().unwrap().push(line);
        }
    });
    collected.wait_for(40, Duration::from_secs(60)).await;

    // Split the first open shard, then write more.
    let shards = open_shards(&client, &stream).await;
    kl.split_in_half(&stream, &shards[0]).await;
    produce_numbered(&kl, &stream, dir.path(), 40..80, keys).await;
    collected.wait_for(80, Duration::from_secs(90)).await;
    // Anything read twice would show up now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Ctrl-C stops it cleanly.
    let pid = child.id().expect("consume is running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("consume ends within 10s of SIGINT")
        .unwrap();
    reader.await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("stopped: interrupted"), "{stderr}");

    let lines: Vec<String> = collected.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 80, "{stderr}");
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut shards_seen = BTreeSet::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        let key = data["key"].as_str().unwrap().to_string();
        let i = data["i"].as_u64().unwrap();
        assert_eq!(v["partitionKey"], key.as_str());
        assert!(seen.insert(i), "record {i} printed twice");
        if let Some(previous) = last.insert(key.clone(), i) {
            assert!(previous < i, "key {key}: {i} after {previous}");
        }
        shards_seen.insert(v["shard"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 80);
    assert!(
        shards_seen.len() >= 3,
        "records came from the children too: {shards_seen:?}"
    );
}

#[tokio::test]
async fn consume_with_a_duration_ends_by_itself() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-duration");
    kl.create_stream(&stream, 1).await;
    let consumed = run(
        Some(&kl),
        &[
            "consume",
            &stream,
            "--duration",
            "3s",
            "--consumer-name",
            "cli-test",
            "--deregister",
        ],
    )
    .await;
    assert_ok(&consumed);
    assert_eq!(consumed.stdout, "");
    assert!(
        consumed.stderr.contains("0 records") && consumed.stderr.contains("the duration ended"),
        "{}",
        consumed.stderr
    );
    assert!(
        consumed.elapsed >= Duration::from_secs(3) && consumed.elapsed < Duration::from_secs(30),
        "{:?}",
        consumed.elapsed
    );
    // --deregister removed the consumer it registered.
    let client = kl.client().await;
    let arn = client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let consumers = client
        .list_stream_consumers()
        .stream_arn(arn)
        .send()
        .await
        .unwrap()
        .consumers
        .unwrap_or_default();
    let active: Vec<_> = consumers
        .iter()
        .filter(|c| c.consumer_status.as_str() != "DELETING")
        .collect();
    assert!(active.is_empty(), "{consumers:?}");
}

#[tokio::test]
async fn consume_splits_kpl_aggregates_into_user_records() {
    let python = support::repo_root().join(".tools/kpl-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run test/setup.sh first",
        python.display()
    );
    let mut input = String::new();
    for i in 0..5 {
        let data = base64::engine::general_purpose::STANDARD.encode(format!("user record {i}"));
        input.push_str(&format!(
            "{{\"partition_key\":\"pk{i}\",\"explicit_hash_key\":null,\"data_b64\":\"{data}\"}}\n"
        ));
    }
    let mut aggregate = std::process::Command::new(&python)
        .arg(support::repo_root().join("test/kpl/aggregate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("aggregate.py");
    std::io::Write::write_all(&mut aggregate.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = aggregate.wait_with_output().unwrap();
    assert!(output.status.success());
    let blobs = json_lines(std::str::from_utf8(&output.stdout).unwrap());
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0]["user_records"], 5);

    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-kpl");
    kl.create_stream(&stream, 1).await;
    let client = kl.client().await;
    client
        .put_record()
        .stream_name(&stream)
        .partition_key(blobs[0]["partition_key"].as_str().unwrap())
        .data(Blob::new(
            base64::engine::general_purpose::STANDARD
                .decode(blobs[0]["data_b64"].as_str().unwrap())
                .unwrap(),
        ))
        .send()
        .await
        .expect("PutRecord");

    let consumed = run(
        Some(&kl),
        &[
            "consume",
            &stream,
            "--max-records",
            "5",
            "--duration",
            "60s",
        ],
    )
    .await;
    assert_ok(&consumed);
    let lines = json_lines(&consumed.stdout);
    assert_eq!(lines.len(), 5, "{consumed:#?}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["subSequence"], i as u64);
        assert_eq!(line["partitionKey"], format!("pk{i}").as_str());
        assert_eq!(line["data"], format!("user record {i}").as_str());
        assert_eq!(line["sequence"], lines[0]["sequence"]);
    }
}

#[tokio::test]
async fn rate_limits_and_reports_progress_on_stderr_only() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("cli-rate");
    kl.create_stream(&stream, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..10).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let file = write_file(dir.path(), "rows.jsonl", &rows);
    let produced = run(
        Some(&kl),
        &[
            "produce",
            &stream,
            &file,
            "--rate",
            "4",
            "--batch-size",
            "2",
            "--max-records",
            "9",
            "--progress",
        ],
    )
    .await;
    assert_ok(&produced);
    assert_eq!(produced.stdout, "");
    // 4 at once, then 5 more at 4 per second.
    assert!(
        produced.elapsed >= Duration::from_secs(1),
        "{:?}",
        produced.elapsed
    );
    assert!(
        produced.stderr.contains("records/s") && produced.stderr.contains("sent 9 records"),
        "{}",
        produced.stderr
    );
    let progress_lines = produced
        .stderr
        .lines()
        .filter(|l| l.starts_with("produce: ") && l.contains(" sent, "))
        .count();
    assert!(progress_lines >= 1, "{}", produced.stderr);
    assert_eq!(read_back(&kl, &stream).await.len(), 9);
}

#[tokio::test]
async fn help_usage_errors_and_missing_streams() {
    for command in ["produce", "consume"] {
        let help = run(None, &[command, "--help"]).await;
        assert_ok(&help);
        assert!(
            help.stdout
                .contains(&format!("Usage: conduit-connector-kinesis {command}")),
            "{}",
            help.stdout
        );
        assert!(help.stdout.contains("--endpoint-url"), "{}", help.stdout);
    }
    let usage = run(None, &["produce", "only-a-stream"]).await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");
    assert!(
        usage.stderr.starts_with("error: expected STREAM and FILE"),
        "{}",
        usage.stderr
    );
    let usage = run(None, &["consume", "s", "--mode", "push"]).await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");
    assert!(usage.stderr.contains("--mode \"push\""), "{}", usage.stderr);
    let missing = run(
        None,
        &["produce", "s", "/nonexistent/rows.csv", "--dry-run"],
    )
    .await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("cannot open"), "{}", missing.stderr);

    let kl = KinesisLocal::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "rows.jsonl", "{\"a\":1}\n");
    let produced = run(Some(&kl), &["produce", "no-such-stream", &file]).await;
    assert_eq!(produced.code, Some(1), "{produced:#?}");
    assert!(
        produced.stderr.contains("\"no-such-stream\" was not found")
            && produced.stderr.contains("--endpoint-url"),
        "{}",
        produced.stderr
    );
    let consumed = run(
        Some(&kl),
        &["consume", "no-such-stream", "--duration", "5s"],
    )
    .await;
    assert_eq!(consumed.code, Some(1), "{consumed:#?}");
    assert!(
        consumed.stderr.contains("was not found"),
        "{}",
        consumed.stderr
    );
}
