//! A compact harness for running the example connector under the real hosts: Conduit
//! (`conduit.rs`) and go-plugin's client (`goplugin_host.rs`). Both are installed into the
//! workspace's `.tools/bin` by `test/setup.sh`; a test whose host is missing prints
//! `SKIPPED: ...` and passes.

pub mod conduit;
pub mod goplugin_host;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The example connector binary cargo built for these tests.
pub fn example_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conduit-plugin-example"))
}

/// `<workspace root>/.tools/bin/<name>`, or `None` after printing why the test is skipped.
pub fn tool(name: &str, what: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(".tools/bin").join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {what} not installed (run test/setup.sh)");
        None
    }
}

/// A directory under the system's temp dir, removed on drop unless the test failed (then
/// its path is printed, to look at the logs).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "{prefix}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `N` loopback ports that were free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Calls `probe` every 200 ms until it returns `Some`, or panics after `timeout` with
/// `what` and the text `context` gives at that point.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("{what}: not within {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &b)| word | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); panics on anything else.
pub fn b64_decode(text: &str) -> Vec<u8> {
    let digits: Vec<u32> = text
        .trim_end_matches('=')
        .bytes()
        .map(|c| {
            B64.iter()
                .position(|&d| d == c)
                .unwrap_or_else(|| panic!("not base64: {text:?}")) as u32
        })
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (i, &d)| word | d << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((word >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for text in ["", "a", "ab", "abc", "abcd", "n-20"] {
        let encoded = b64_encode(text.as_bytes());
        assert_eq!(encoded.len() % 4, 0);
        assert_eq!(b64_decode(&encoded), text.as_bytes(), "{encoded}");
    }
    assert_eq!(b64_encode(b"n-1"), "bi0x");
    assert_eq!(b64_decode("MQ=="), b"1");
}
