//! End to end with the real Conduit binary (installed by test/setup.sh into .tools/bin).
//!
//! When Conduit v0.19.0 could not be installed (the Go module proxy of some environments
//! does not serve it), these tests print why and return without checking anything; setup
//! says so too. Everything else in the suite runs regardless.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::kinesis_local::{unique_stream_name, KinesisLocal};

fn conduit_binary() -> Option<PathBuf> {
    let path = support::repo_root().join(".tools/bin/conduit");
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is missing (test/setup.sh could not install Conduit v0.19.0 here)",
            path.display()
        );
        None
    }
}

struct Conduit {
    child: Child,
    http: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Drop for Conduit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Conduit {
    fn start(binary: &Path, pipelines: &[(&str, String)]) -> Conduit {
        let dir = tempfile::tempdir().unwrap();
        let connectors = dir.path().join("connectors");
        let pipelines_dir = dir.path().join("pipelines");
        std::fs::create_dir_all(&connectors).unwrap();
        std::fs::create_dir_all(&pipelines_dir).unwrap();
        std::fs::copy(
            support::plugin_binary(),
            connectors.join("conduit-connector-kinesis"),
        )
        .unwrap();
        for (name, body) in pipelines {
            std::fs::write(pipelines_dir.join(name), body).unwrap();
        }
        let [http_port, grpc_port] = support::free_ports::<2>();
        let log = dir.path().join("conduit.log");
        let child = Command::new(binary)
            .current_dir(dir.path())
            .args([
                "run",
                "--connectors.path",
                connectors.to_str().unwrap(),
                "--pipelines.path",
                pipelines_dir.to_str().unwrap(),
                "--db.type",
                "inmemory",
                "--api.http.address",
                &format!("127.0.0.1:{http_port}"),
                "--api.grpc.address",
                &format!("127.0.0.1:{grpc_port}"),
                "--log.format",
                "json",
            ])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conduit");
        Conduit {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            _dir: dir,
            log,
        }
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let output = Command::new("curl")
            .args(["-sf", "--max-time", "5", &format!("{}{path}", self.http)])
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Polls `path` until `check` accepts the JSON, or panics with the log after `timeout`.
    fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            if let Some(value) = self.get(path) {
                if check(&value) {
                    return value;
                }
                last = Some(value);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = log
            .chars()
            .rev()
            .take(6000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("{path} never matched within {timeout:?}; last answer: {last:?}\nconduit log tail:\n{tail}");
    }
}

fn pipeline(id: &str, stream: &str, endpoint: &str) -> String {
    format!(
        r#"version: "2.2"
pipelines:
  - id: {id}
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          format.options.name: string
          operations: create
          rate: "20"
          recordCount: "20"
      - id: kinesis
        type: destination
        plugin: standalone:kinesis
        settings:
          streamName: {stream}
          aws.url: {endpoint}
          aws.region: us-east-1
          aws.accessKeyId: test
          aws.secretAccessKey: test
"#
    )
}

#[tokio::test]
async fn conduit_lists_and_runs_the_plugin() {
    let Some(binary) = conduit_binary() else {
        return;
    };
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("e2e");
    kl.create_stream(&stream, 1).await;
    let good = pipeline("good", &stream, &kl.endpoint);
    let bad = pipeline("bad", "stream-that-does-not-exist", &kl.endpoint);
    let conduit = Conduit::start(&binary, &[("good.yaml", good), ("bad.yaml", bad)]);

    let expected = format!("standalone:kinesis@v{}", env!("CARGO_PKG_VERSION"));
    conduit.wait_for("/v1/connectors/plugins", Duration::from_secs(60), |v| {
        v.to_string().contains(&expected)
    });
    conduit.wait_for("/v1/pipelines/good", Duration::from_secs(60), |v| {
        v["state"]["status"] == "STATUS_RUNNING"
    });
    conduit.wait_for("/v1/pipelines/bad", Duration::from_secs(60), |v| {
        v["state"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("was not found")
    });
}
