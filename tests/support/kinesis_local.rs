//! A private kinesis-local server (npm `kinesis-local` 0.6.2 = kinesis-mock compiled to
//! JavaScript) for one test. Loopback only; killed with SIGKILL on drop.
//!
//! ```ignore
//! let kl = support::kinesis_local::KinesisLocal::start().await;
//! kl.create_stream("orders", 2).await;
//! let client = kl.client().await;
//! ```
//!
//! Facts this relies on (shared/docs/kinesis-notes.md §5): ports come from
//! `KINESIS_MOCK_PLAIN_PORT` / `KINESIS_MOCK_TLS_PORT`; `KINESIS_MOCK_CERT_PATH` must be an
//! absolute path to `{"server":{"key":PEM,"cert":PEM}}` or the server dies; readiness is
//! probed with a *signed* ListStreams; SIGTERM is not enough to stop it.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sdk_kinesis::config::{BehaviorVersion, Region};
use aws_sdk_kinesis::types::StreamStatus;

/// How long `start` waits for the server to answer a signed ListStreams.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `create_stream` waits for the stream to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";
pub const REGION: &str = "us-east-1";

pub struct KinesisLocal {
    /// Plain HTTP endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// HTTPS (and HTTP/2) endpoint, `https://localhost:PORT`, served with the certificate in
    /// `cert_pem` (SAN `DNS:localhost, IP:127.0.0.1`). Trusting it needs a custom trust store.
    pub tls_endpoint: String,
    pub plain_port: u16,
    pub tls_port: u16,
    /// PEM of the self-signed server certificate.
    pub cert_pem: String,
    /// The `server.json` handed to the server (absolute).
    pub cert_path: PathBuf,
    /// Server stdout + stderr.
    pub log_path: PathBuf,
    child: Child,
    // Removed after Drop::drop has killed the server.
    dir: tempfile::TempDir,
}

/// The npm package directory, checked once per test binary.
fn kinesis_local_main_js() -> &'static Path {
    static MAIN_JS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = MAIN_JS.get_or_init(|| {
        let main_js =
            super::repo_root().join("test/kinesis-local/node_modules/kinesis-local/main.js");
        main_js.is_file().then_some(main_js)
    });
    match found {
        Some(p) => p.as_path(),
        None => panic!(
            "test/kinesis-local/node_modules is missing: run test/setup.sh (or make test) first"
        ),
    }
}

fn check_tool(name: &str, arg: &str, why: &str) {
    match Command::new(name)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`{name} {arg}` failed ({s}); {why}"),
        Err(e) => panic!("`{name}` not found or not runnable ({e}); {why}"),
    }
}

/// Writes a self-signed certificate for localhost/127.0.0.1 and returns (cert PEM, key PEM).
fn make_cert(dir: &Path) -> (String, String) {
    check_tool(
        "openssl",
        "version",
        "the openssl CLI is needed to make kinesis-local's certificate",
    );
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "3650", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        fs::read_to_string(&cert).expect("read cert.pem"),
        fs::read_to_string(&key).expect("read key.pem"),
    )
}

/// Last `max` bytes of a file, lossily decoded.
pub fn file_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("<cannot open {}>", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A stream name that is unique within this machine and run (kinesis-local gets slow as a
/// stream grows: use a fresh stream per test).
pub fn unique_stream_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

/// A Kinesis client for `endpoint` with static test credentials and no credential chain,
/// so nothing looks at `~/.aws`, the environment or the EC2 metadata service.
pub fn client_for(endpoint: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(client_builder(endpoint).build())
}

fn client_builder(endpoint: &str) -> aws_sdk_kinesis::config::Builder {
    aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "kinesis-local",
        ))
        .endpoint_url(endpoint)
}

impl KinesisLocal {
    /// Starts a server with the default settings (LOG_LEVEL=WARN).
    pub async fn start() -> KinesisLocal {
        Self::start_with_env(&[]).await
    }

    /// Starts a server with extra environment (e.g. `("SHARD_LIMIT", "100")`,
    /// `("INITIALIZE_STREAMS", "a:2,b:1")`, `("CREATE_STREAM_DURATION", "0ms")`). Later
    /// entries override the defaults.
    pub async fn start_with_env(extra_env: &[(&str, &str)]) -> KinesisLocal {
        let main_js = kinesis_local_main_js();
        let dir = tempfile::Builder::new()
            .prefix("kinesis-local-")
            .tempdir()
            .expect("create tempdir");
        let dir_path = dir.path().canonicalize().expect("canonicalize tempdir");

        let (cert_pem, key_pem) = make_cert(&dir_path);
        let cert_path = dir_path.join("server.json");
        let server_json = serde_json::json!({ "server": { "key": key_pem, "cert": cert_pem } });
        fs::write(&cert_path, serde_json::to_vec(&server_json).unwrap())
            .expect("write server.json");
        assert!(cert_path.is_absolute());

        let [plain_port, tls_port] = super::free_ports::<2>();
        let log_path = dir_path.join("kinesis-local.log");
        let log = File::create(&log_path).expect("create log file");
        let log_err = log.try_clone().expect("clone log file handle");

        let mut cmd = Command::new("node");
        cmd.arg(main_js)
            .current_dir(&dir_path)
            .env("KINESIS_MOCK_PLAIN_PORT", plain_port.to_string())
            .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
            .env("KINESIS_MOCK_CERT_PATH", &cert_path)
            .env("LOG_LEVEL", "WARN")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("could not start `node {}`: {e}", main_js.display()),
        };

        let mut kl = KinesisLocal {
            endpoint: format!("http://127.0.0.1:{plain_port}"),
            tls_endpoint: format!("https://localhost:{tls_port}"),
            plain_port,
            tls_port,
            cert_pem,
            cert_path,
            log_path,
            child,
            dir,
        };
        kl.wait_ready().await;
        kl
    }

    async fn wait_ready(&mut self) {
        // No retries inside the SDK: this loop is the retry.
        let probe = aws_sdk_kinesis::Client::from_conf(
            client_builder(&self.endpoint)
                .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
                .build(),
        );
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "kinesis-local exited during startup ({status}); log {}:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            let last_err =
                match tokio::time::timeout(Duration::from_secs(2), probe.list_streams().send())
                    .await
                {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) => format!("{}", aws_sdk_kinesis::error::DisplayErrorContext(e)),
                    Err(_) => "ListStreams timed out after 2 s".to_string(),
                };
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "kinesis-local on {} not ready after {:?}: {last_err}; log {}:\n{}",
                    self.endpoint,
                    READY_TIMEOUT,
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// PID of the server process (`node`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Temporary directory holding the certificate and the log (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Last 8 KiB of the server's log.
    pub fn log_tail(&self) -> String {
        file_tail(&self.log_path, 8 * 1024)
    }

    /// A client for the plain HTTP endpoint with static test credentials.
    pub async fn client(&self) -> aws_sdk_kinesis::Client {
        client_for(&self.endpoint)
    }

    /// Environment for a process (e.g. the plugin) that uses the default AWS credential
    /// chain against this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Creates a stream with `shards` shards and waits until it is ACTIVE.
    pub async fn create_stream(&self, name: &str, shards: i32) {
        let client = self.client().await;
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "CreateStream {name}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            });
        self.wait_stream_active(name).await;
    }

    /// Splits `shard` in the middle of its hash key range and waits until the stream is ACTIVE.
    pub async fn split_in_half(&self, stream: &str, shard: &aws_sdk_kinesis::types::Shard) {
        let range = shard
            .hash_key_range
            .as_ref()
            .expect("a shard has a hash key range");
        let start: u128 = range.starting_hash_key.parse().unwrap();
        let end: u128 = range.ending_hash_key.parse().unwrap();
        self.client()
            .await
            .split_shard()
            .stream_name(stream)
            .shard_to_split(&shard.shard_id)
            .new_starting_hash_key((start + (end - start) / 2).to_string())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "SplitShard {stream}: {}",
                    aws_sdk_kinesis::error::DisplayErrorContext(e)
                )
            });
        self.wait_stream_active(stream).await;
    }

    /// Waits until the stream's status is ACTIVE (e.g. after resharding).
    pub async fn wait_stream_active(&self, name: &str) {
        let client = self.client().await;
        let started = Instant::now();
        loop {
            let status = client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .ok()
                .and_then(|o| o.stream_description_summary.map(|s| s.stream_status));
            if status == Some(StreamStatus::Active) {
                return;
            }
            if started.elapsed() > ACTIVE_TIMEOUT {
                panic!(
                    "stream {name} not ACTIVE after {ACTIVE_TIMEOUT:?} (last status {status:?}); log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for KinesisLocal {
    fn drop(&mut self) {
        // std's Child::kill is SIGKILL on Unix; SIGTERM leaves it lingering while
        // connections are open. wait() reaps it, so /proc/<pid> disappears.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
