//! The real Conduit binary (`.tools/bin/conduit`, installed by `test/setup.sh`) running
//! pipeline files against this plugin, on loopback only.
//!
//! ```ignore
//! let Some(binary) = support::conduit::binary() else { return }; // SKIPPED when missing
//! let home = ConduitHome::new(&[("p.yaml", yaml)]);
//! let conduit = Conduit::start(&binary, &home, Db::InMemory, &[]);
//! conduit.wait_for_status("p", "STATUS_RUNNING", Duration::from_secs(60));
//! ```
//!
//! A [`ConduitHome`] (connectors, pipelines, database, logs, output files) outlives the
//! [`Conduit`] processes started in it, so a test can stop Conduit and start it again on the
//! same database.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::kinesis_local::file_tail;

/// `.tools/bin/conduit`, or `None` after printing `SKIPPED: ...` when it is missing (CI
/// machines where the Go module proxy does not serve Conduit v0.19.0).
pub fn binary() -> Option<PathBuf> {
    let path = super::repo_root().join(".tools/bin/conduit");
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

/// A temporary directory laid out for Conduit: `connectors/` (holding this plugin),
/// `pipelines/` (the pipeline files), `conduit.db` and one log file per start.
pub struct ConduitHome {
    dir: tempfile::TempDir,
    starts: Cell<u32>,
}

impl ConduitHome {
    pub fn new(pipelines: &[(&str, String)]) -> ConduitHome {
        let dir = tempfile::Builder::new()
            .prefix("conduit-home-")
            .tempdir()
            .expect("create tempdir");
        let home = ConduitHome {
            dir,
            starts: Cell::new(0),
        };
        std::fs::create_dir_all(home.connectors()).unwrap();
        std::fs::create_dir_all(home.pipelines()).unwrap();
        std::fs::copy(
            super::plugin_binary(),
            home.connectors().join("conduit-connector-kinesis"),
        )
        .expect("copy the plugin into connectors/");
        for (name, body) in pipelines {
            std::fs::write(home.pipelines().join(name), body).unwrap();
        }
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn connectors(&self) -> PathBuf {
        self.path().join("connectors")
    }

    pub fn pipelines(&self) -> PathBuf {
        self.path().join("pipelines")
    }

    /// The badger database directory used with [`Db::Badger`].
    pub fn db(&self) -> PathBuf {
        self.path().join("conduit.db")
    }
}

/// Conduit's `--db.type`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Db {
    /// Nothing survives Conduit.
    InMemory,
    /// Badger in [`ConduitHome::db`]: pipelines and positions survive a restart.
    Badger,
}

/// A running `conduit run`; killed (SIGKILL) on drop unless [`Conduit::terminate`]d.
pub struct Conduit {
    child: Option<Child>,
    pub http: String,
    /// Conduit's stdout: JSON log lines (`--log.format json`).
    pub log: PathBuf,
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
    /// `conduit run` in `home` with JSON logs on loopback ports; `extra_args` go last.
    pub fn start(binary: &Path, home: &ConduitHome, db: Db, extra_args: &[&str]) -> Conduit {
        Self::start_without(binary, home, db, extra_args, &[])
    }

    /// [`Conduit::start`] with the environment variables `unset` removed from what Conduit
    /// (and so every plugin) inherits, e.g. `AWS_CA_BUNDLE`, which the Go Kinesis connector
    /// v0.2.0 cannot take ("unable to add custom RootCAs HTTPClient").
    pub fn start_without(
        binary: &Path,
        home: &ConduitHome,
        db: Db,
        extra_args: &[&str],
        unset: &[&str],
    ) -> Conduit {
        let start = home.starts.get() + 1;
        home.starts.set(start);
        let [http_port, grpc_port] = super::free_ports::<2>();
        let log = home.path().join(format!("conduit-{start}.log"));
        let mut cmd = Command::new(binary);
        cmd.current_dir(home.path())
            .arg("run")
            .arg("--connectors.path")
            .arg(home.connectors())
            .arg("--pipelines.path")
            .arg(home.pipelines())
            .args(["--api.http.address", &format!("127.0.0.1:{http_port}")])
            .args(["--api.grpc.address", &format!("127.0.0.1:{grpc_port}")])
            .args(["--log.format", "json"]);
        match db {
            Db::InMemory => {
                cmd.args(["--db.type", "inmemory"]);
            }
            Db::Badger => {
                cmd.args(["--db.type", "badger", "--db.badger.path"])
                    .arg(home.db());
            }
        }
        for name in unset {
            cmd.env_remove(name);
        }
        let child = cmd
            .args(extra_args)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conduit");
        Conduit {
            child: Some(child),
            http: format!("http://127.0.0.1:{http_port}"),
            log,
        }
    }

    /// SIGTERM (Conduit stops every pipeline gracefully: drains, acks, stores positions)
    /// and waits for the exit. Panics with the log tail when it takes longer than `timeout`.
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
                    "conduit did not exit within {timeout:?} after SIGTERM; log tail:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pids of the plugin processes Conduit started from `binary_name` (its direct children).
    pub fn plugin_pids(&self, binary_name: &str) -> Vec<u32> {
        let conduit = self.child.as_ref().expect("conduit running").id();
        child_pids(conduit)
            .into_iter()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .ok()
                    .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .is_some_and(|name| name.starts_with(binary_name))
            })
            .collect()
    }

    /// SIGKILL, like a crash or the OOM killer: no pipeline is stopped, no position stored.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("conduit running");
        child.kill().expect("SIGKILL conduit");
        child.wait().expect("reap conduit");
    }

    pub fn log_tail(&self) -> String {
        file_tail(&self.log, 6000)
    }

    /// Every JSON line of the log so far (a partly written last line is skipped).
    pub fn log_entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Polls the log until an entry satisfies `check`; panics with the log tail after
    /// `timeout`.
    pub fn wait_for_log(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Some(entry) = self.log_entries().into_iter().find(&check) {
                return entry;
            }
            if started.elapsed() > timeout {
                panic!(
                    "no log entry with {what} within {timeout:?}; conduit log tail:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// GET `path` of the HTTP API as JSON; `None` when Conduit does not answer (yet) or
    /// answers with an error.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
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
    pub fn wait_for(
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
        panic!(
            "{path} never matched within {timeout:?}; last answer: {last:?}\nconduit log tail:\n{}",
            self.log_tail()
        );
    }

    /// Waits until `/v1/pipelines/{id}` reports `status` (e.g. `STATUS_RUNNING`).
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> serde_json::Value {
        self.wait_for(&format!("/v1/pipelines/{id}"), timeout, |v| {
            v["state"]["status"] == status
        })
    }
}

/// One connector of a pipeline file.
pub struct ConnectorYaml<'a> {
    pub id: &'a str,
    /// `source` or `destination`.
    pub kind: &'a str,
    /// e.g. `builtin:file`, `standalone:kinesis`.
    pub plugin: &'a str,
    pub settings: &'a [(&'a str, &'a str)],
}

pub fn source<'a>(
    id: &'a str,
    plugin: &'a str,
    settings: &'a [(&'a str, &'a str)],
) -> ConnectorYaml<'a> {
    ConnectorYaml {
        id,
        kind: "source",
        plugin,
        settings,
    }
}

pub fn destination<'a>(
    id: &'a str,
    plugin: &'a str,
    settings: &'a [(&'a str, &'a str)],
) -> ConnectorYaml<'a> {
    ConnectorYaml {
        id,
        kind: "destination",
        plugin,
        settings,
    }
}

/// A pipeline file (version 2.2) with one running pipeline `id` made of `connectors`.
/// Setting values are written as YAML double-quoted strings.
pub fn pipeline_yaml(id: &str, connectors: &[ConnectorYaml<'_>]) -> String {
    let mut out = format!(
        "version: \"2.2\"\npipelines:\n  - id: {id}\n    status: running\n    connectors:\n"
    );
    for c in connectors {
        out.push_str(&format!(
            "      - id: {}\n        type: {}\n        plugin: {}\n        settings:\n",
            c.id, c.kind, c.plugin
        ));
        for (name, value) in c.settings {
            // JSON strings are valid YAML double-quoted scalars.
            out.push_str(&format!(
                "          {name}: {}\n",
                serde_json::Value::String(value.to_string())
            ));
        }
    }
    out
}

/// Direct children of `parent`, from every thread's `/proc/<pid>/task/<tid>/children`.
pub fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .filter_map(|task| task.ok())
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}
