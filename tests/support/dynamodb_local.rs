//! A private DynamoDB-compatible server for one test: `dynalite` (npm, pinned in
//! test/dynamodb-local/package-lock.json, in memory) on a loopback port, killed on drop.
//! `raw_scan` reads the items as DynamoDB returns them (attribute names and types), signed
//! by the connector's own client.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct DynamoLocal {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub log_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

fn cli_js() -> PathBuf {
    let path = super::repo_root().join("test/dynamodb-local/node_modules/dynalite/cli.js");
    assert!(
        path.is_file(),
        "test/dynamodb-local/node_modules is missing: run test/setup.sh (or make test) first"
    );
    path
}

impl DynamoLocal {
    pub async fn start() -> DynamoLocal {
        let dir = tempfile::Builder::new()
            .prefix("dynalite-")
            .tempdir()
            .expect("create tempdir");
        let port = super::free_port();
        let log_path = dir.path().join("dynalite.log");
        let log = File::create(&log_path).expect("create log");
        let child = Command::new("node")
            .arg(cli_js())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // Tables become ACTIVE at once instead of after 500 ms.
            .args(["--createTableMs", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start node (dynalite)");
        let mut server = DynamoLocal {
            endpoint: format!("http://127.0.0.1:{port}"),
            log_path,
            child,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "dynalite exited during startup ({status}): {}",
                    server.log()
                );
            }
            if server.call("ListTables", json!({})).await.is_ok() {
                return server;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "dynalite not ready after {READY_TIMEOUT:?}: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server: while frozen, connections are
    /// accepted by the kernel but nothing is answered, as when DynamoDB is unreachable.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} dynalite");
    }

    pub fn log(&self) -> String {
        super::kinesis_local::file_tail(&self.log_path, 8 * 1024)
    }

    fn client() -> conduit_connector_kinesis::testing::SignedClient {
        let sdk = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new(super::kinesis_local::REGION))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("test", "test", None, None, "test"),
                ),
            )
            .build();
        conduit_connector_kinesis::testing::SignedClient::new(
            &sdk,
            None,
            conduit_connector_kinesis::testing::HttpVersions::Http1,
        )
        .expect("signed client")
    }

    /// One DynamoDB call (`operation` without the `DynamoDB_20120810.` prefix).
    pub async fn call(&self, operation: &str, body: Value) -> Result<Value, String> {
        use http_body_util::BodyExt;
        let endpoint = conduit_connector_kinesis::testing::ServiceEndpoint::new(
            &self.endpoint,
            super::kinesis_local::REGION,
            "dynamodb",
        )?;
        let target: &'static str =
            Box::leak(format!("DynamoDB_20120810.{operation}").into_boxed_str());
        let response = Self::client()
            .send_json10(&endpoint, target, serde_json::to_vec(&body).unwrap())
            .await
            .map_err(|e| e.message)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{operation}: {status}: {value}"))
        }
    }

    /// Every item of `table`, raw; `None` while the table does not exist.
    pub async fn try_raw_scan(&self, table: &str) -> Option<Vec<Value>> {
        let answer = self
            .call(
                "Scan",
                json!({ "TableName": table, "ConsistentRead": true }),
            )
            .await
            .ok()?;
        Some(answer["Items"].as_array().cloned().unwrap_or_default())
    }

    /// Every item of `table`, raw.
    pub async fn raw_scan(&self, table: &str) -> Vec<Value> {
        let answer = self
            .call(
                "Scan",
                json!({ "TableName": table, "ConsistentRead": true }),
            )
            .await
            .unwrap_or_else(|e| panic!("Scan {table}: {e}"));
        answer["Items"].as_array().cloned().unwrap_or_default()
    }

    /// Describes `table` (for its key schema and billing mode).
    pub async fn describe(&self, table: &str) -> Value {
        self.call("DescribeTable", json!({ "TableName": table }))
            .await
            .unwrap_or_else(|e| panic!("DescribeTable {table}: {e}"))
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
