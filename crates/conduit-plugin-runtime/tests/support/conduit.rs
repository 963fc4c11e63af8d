//! `conduit run` in a temporary home: `connectors/` holding the example binary,
//! `pipelines/`, JSON logs on stdout into a file, the HTTP API on a loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_ports, poll, TempDir};

/// A temp dir laid out for Conduit; it outlives the Conduit processes started in it.
pub struct Home {
    dir: TempDir,
    starts: u32,
}

impl Home {
    /// A home with the example connector in `connectors/` under `plugin_file`.
    pub fn new(plugin_file: &str) -> Home {
        let dir = TempDir::new("conduit-plugin-example");
        let home = Home { dir, starts: 0 };
        std::fs::create_dir_all(home.path().join("connectors")).unwrap();
        std::fs::create_dir_all(home.path().join("pipelines")).unwrap();
        std::fs::copy(
            super::example_binary(),
            home.path().join("connectors").join(plugin_file),
        )
        .expect("copy the example into connectors/");
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) `pipelines/<name>`.
    pub fn pipeline(&self, name: &str, yaml: &str) {
        std::fs::write(self.path().join("pipelines").join(name), yaml).unwrap();
    }
}

/// A running `conduit run`, SIGKILLed on drop unless [`Conduit::terminate`]d.
pub struct Conduit {
    child: Option<Child>,
    http: String,
    log: PathBuf,
}

impl Drop for Conduit {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Conduit {
    /// Starts Conduit in `home`; `badger` keeps pipelines and positions in `home/db` across
    /// starts, otherwise the database is in memory.
    pub fn start(binary: &Path, home: &mut Home, badger: bool) -> Conduit {
        home.starts += 1;
        let [http, grpc] = free_ports::<2>();
        let log = home.path().join(format!("conduit-{}.log", home.starts));
        let mut command = Command::new(binary);
        command
            .current_dir(home.path())
            .arg("run")
            .arg("--connectors.path")
            .arg(home.path().join("connectors"))
            .arg("--pipelines.path")
            .arg(home.path().join("pipelines"))
            .args(["--api.http.address", &format!("127.0.0.1:{http}")])
            .args(["--api.grpc.address", &format!("127.0.0.1:{grpc}")])
            .args(["--log.format", "json"]);
        if badger {
            command
                .args(["--db.type", "badger", "--db.badger.path"])
                .arg(home.path().join("db"));
        } else {
            command.args(["--db.type", "inmemory"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conduit");
        Conduit {
            child: Some(child),
            http: format!("127.0.0.1:{http}"),
            log,
        }
    }

    /// SIGTERM (Conduit drains every pipeline and stores positions) and waits for the exit.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("conduit running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for conduit") {
                return status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "conduit did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of Conduit's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("conduit log ({}), last lines:\n{tail}", self.log.display())
    }

    /// Every complete JSON line of the log so far.
    pub fn log_entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits until `count` log entries satisfy `check` and returns them.
    pub fn wait_for_logs(
        &self,
        what: &str,
        count: usize,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        poll(
            what,
            timeout,
            || {
                let found: Vec<Value> = self.log_entries().into_iter().filter(&check).collect();
                (found.len() >= count).then_some(found)
            },
            || self.log_tail(),
        )
    }

    /// GET `path` of the HTTP API as JSON; `None` when Conduit does not answer 200 (yet).
    pub fn get(&self, path: &str) -> Option<Value> {
        let mut stream = TcpStream::connect(&self.http).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        // HTTP/1.0: the body is neither chunked nor kept alive, it ends with the connection.
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.http).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let text = String::from_utf8(response).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?;
        if status != "200" {
            return None;
        }
        serde_json::from_str(body).ok()
    }

    /// Polls `path` until `check` accepts its JSON, and returns it.
    pub fn wait_for(&self, path: &str, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let last = std::cell::RefCell::new(None);
        poll(
            &format!("GET {path} matching"),
            timeout,
            || {
                let value = self.get(path)?;
                if check(&value) {
                    Some(value)
                } else {
                    *last.borrow_mut() = Some(value);
                    None
                }
            },
            || format!("last answer: {:?}\n{}", last.borrow(), self.log_tail()),
        )
    }

    /// Waits until pipeline `id` reports `status` (e.g. `STATUS_RUNNING`).
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("/v1/pipelines/{id}"), timeout, |v| {
            v["state"]["status"] == status
        })
    }
}

/// The records `builtin:file` wrote to `path` (one OpenCDC JSON object per line).
pub fn file_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}
