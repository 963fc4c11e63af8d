//! The AWS start-up path of both connector sides, through the real plugin binary over gRPC:
//! Configure → Open (client building + DescribeStreamSummary check) → Teardown, each
//! scenario in its own plugin process with exactly the environment it names.
//!
//! Everything stays on loopback: kinesis-local or capture servers on 127.0.0.1, STS pointed at
//! a capture server with `AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_DISABLED=true`, and a
//! private HOME with empty (or test-written) `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE`,
//! so neither the developer's `~/.aws` nor a real AWS endpoint is ever used. As a safety net
//! `AWS_ENDPOINT_URL` and the IMDS endpoint point at a loopback trap that must stay unused.
//!
//! Every plugin runs at log level trace, and every secret a scenario hands over (secret key,
//! session token, assumed-role secret and token) is checked against every stderr line and
//! every error message.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conduit_connector_kinesis::proto::connector::v2::{destination, source};
use support::capture_server::{
    describe_stream_summary_body, CannedResponse, CaptureServer, CapturedRequest,
};
use support::kinesis_local::{self, unique_stream_name, KinesisLocal};
use support::plugin::{config, pair, run_env, PluginProcess};

/// Upper bound for one Open; a hang is a failure, not a stuck test run.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
const KINESIS_TARGET: &str = "Kinesis_20131202.DescribeStreamSummary";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

const SIDES: [Side; 2] = [Side::Source, Side::Destination];

/// A private HOME holding the shared AWS files the plugin is pointed at (empty unless a
/// scenario writes them), and a loopback trap for any AWS request that has no endpoint of
/// its own in the scenario.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Set as `AWS_ENDPOINT_URL` and `AWS_EC2_METADATA_SERVICE_ENDPOINT`: should a code path
    /// ignore aws.url / `AWS_ENDPOINT_URL_STS`, its request lands here instead of on AWS, and
    /// [`Sandbox::finish`] fails the test.
    trap: CaptureServer,
}

impl Sandbox {
    async fn start() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("aws-startup-")
            .tempdir()
            .expect("create tempdir");
        let trap = CaptureServer::start(|_| {
            CannedResponse::new(
                500,
                &[("Content-Type", "text/plain")],
                "request reached the test's endpoint trap",
            )
        })
        .await;
        let sandbox = Sandbox { dir, trap };
        sandbox.write("config", "");
        sandbox.write("credentials", "");
        sandbox
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).expect("write sandbox file");
    }

    /// Conduit's run environment, trace logging, the private HOME and AWS files, then `extra`
    /// (later entries win).
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = run_env();
        env.push(pair("CONDUIT_CONNECTOR_LOG_LEVEL", "trace"));
        env.push(pair("AWS_EC2_METADATA_DISABLED", "true"));
        env.push(pair("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.trap.url));
        env.push(pair("AWS_ENDPOINT_URL", &self.trap.url));
        env.push(pair("HOME", self.dir.path().to_str().unwrap()));
        env.push(pair(
            "AWS_CONFIG_FILE",
            self.path("config").to_str().unwrap(),
        ));
        env.push(pair(
            "AWS_SHARED_CREDENTIALS_FILE",
            self.path("credentials").to_str().unwrap(),
        ));
        env.extend(extra.iter().map(|(k, v)| pair(k, v)));
        env
    }

    async fn start_plugin(&self, extra: &[(&str, &str)]) -> PluginProcess {
        let env = self.env(extra);
        for (key, value) in &env {
            if key.starts_with("AWS_ENDPOINT_URL") || key == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
                assert!(
                    value.starts_with("http://127.0.0.1:"),
                    "{key}={value} is not loopback"
                );
            }
        }
        PluginProcess::start(&env).await
    }
}

/// Configure (must succeed) → Open → Teardown (must succeed) on one side; the Open result.
async fn configure_and_open(
    plugin: &PluginProcess,
    side: Side,
    settings: &[(&str, &str)],
) -> Result<(), tonic::Status> {
    for (key, value) in settings {
        if *key == "aws.url" {
            assert!(value.starts_with("http://127.0.0.1:"), "aws.url {value}");
        }
    }
    let open = match side {
        Side::Source => {
            let mut client = plugin.source();
            // Polling: Open then only checks the stream, which is what these tests are about
            // (fan-out would also register a consumer, which the capture servers don't serve).
            let mut source_config = config(settings);
            source_config.insert("readMode".into(), "polling".into());
            client
                .configure(source::configure::Request {
                    config: source_config,
                })
                .await
                .unwrap_or_else(|e| panic!("source Configure failed: {}", e.message()));
            let open = tokio::time::timeout(
                OPEN_TIMEOUT,
                client.open(source::open::Request { position: vec![] }),
            )
            .await
            .unwrap_or_else(|_| panic!("source Open did not answer within {OPEN_TIMEOUT:?}"))
            .map(|_| ());
            client
                .teardown(source::teardown::Request {})
                .await
                .unwrap_or_else(|e| panic!("source Teardown failed: {}", e.message()));
            open
        }
        Side::Destination => {
            let mut client = plugin.destination();
            client
                .configure(destination::configure::Request {
                    config: config(settings),
                })
                .await
                .unwrap_or_else(|e| panic!("destination Configure failed: {}", e.message()));
            let open =
                tokio::time::timeout(OPEN_TIMEOUT, client.open(destination::open::Request {}))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("destination Open did not answer within {OPEN_TIMEOUT:?}")
                    })
                    .map(|_| ());
            client
                .teardown(destination::teardown::Request {})
                .await
                .unwrap_or_else(|e| panic!("destination Teardown failed: {}", e.message()));
            open
        }
    };
    open
}

/// The Open error message; panics when Open succeeded.
async fn open_error(plugin: &PluginProcess, side: Side, settings: &[(&str, &str)]) -> String {
    match configure_and_open(plugin, side, settings).await {
        Ok(()) => panic!("{side:?} Open succeeded but should have failed"),
        Err(status) => {
            eprintln!("{side:?} Open failed as expected: {}", status.message());
            status.message().to_string()
        }
    }
}

async fn open_ok(plugin: &PluginProcess, side: Side, settings: &[(&str, &str)]) {
    if let Err(status) = configure_and_open(plugin, side, settings).await {
        panic!(
            "{side:?} Open failed: {:?}: {}\nstderr:\n{}",
            status.code(),
            status.message(),
            plugin.stderr().join("\n")
        );
    }
}

impl Sandbox {
    /// Shuts the plugin down, checks that nothing reached the trap and returns the
    /// plugin's complete stderr.
    async fn finish(&self, plugin: PluginProcess) -> Vec<String> {
        let stderr = finish_plugin(plugin).await;
        let trapped = self.trap.requests();
        assert!(
            trapped.is_empty(),
            "requests reached the endpoint trap (they would have gone to AWS):\n{}",
            trapped
                .iter()
                .map(CapturedRequest::dump)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        stderr
    }
}

/// Shuts the plugin down and returns its complete stderr.
async fn finish_plugin(mut plugin: PluginProcess) -> Vec<String> {
    let _ = plugin
        .controller()
        .shutdown(conduit_connector_kinesis::proto::plugin::Empty {})
        .await;
    let started = Instant::now();
    while plugin.child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(5) {
            let _ = plugin.child.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The reader thread drains the pipe after exit: wait until the line count settles.
    let mut count = plugin.stderr().len();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = plugin.stderr().len();
        if now == count {
            break;
        }
        count = now;
    }
    let lines = plugin.stderr();
    eprintln!("plugin stderr: {} lines", lines.len());
    assert!(
        !lines.is_empty(),
        "the plugin logged nothing at trace level"
    );
    lines
}

/// No secret appears in any error message or stderr line.
fn assert_no_leak(secrets: &[&str], messages: &[String], stderr: &[String]) {
    for secret in secrets {
        assert!(secret.len() >= 8, "secret {secret:?} is too short to check");
        for message in messages {
            assert!(
                !message.contains(secret),
                "a secret leaked into an error message: {message}"
            );
        }
        for (n, line) in stderr.iter().enumerate() {
            assert!(
                !line.contains(secret),
                "a secret leaked into stderr line {n}: {line}"
            );
        }
    }
}

fn assert_contains(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            message.contains(needle),
            "expected {needle:?} in the message: {message}"
        );
    }
}

/// Parses `Credential=KEY/DATE/REGION/SERVICE/aws4_request` out of a SigV4 Authorization
/// header and checks the date against X-Amz-Date.
fn credential_scope(request: &CapturedRequest) -> (String, String, String) {
    let auth = request
        .header("authorization")
        .unwrap_or_else(|| panic!("request is not signed:\n{}", request.dump()));
    assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
    let credential = auth
        .split(['\u{20}', ','])
        .find_map(|part| part.strip_prefix("Credential="))
        .unwrap_or_else(|| panic!("no Credential= in {auth}"));
    let parts: Vec<&str> = credential.split('/').collect();
    assert_eq!(parts.len(), 5, "{credential}");
    assert_eq!(parts[4], "aws4_request", "{credential}");
    let amz_date = request.header("x-amz-date").expect("X-Amz-Date header");
    assert_eq!(parts[1].len(), 8, "{credential}");
    assert!(parts[1].bytes().all(|b| b.is_ascii_digit()), "{credential}");
    assert_eq!(parts[1], &amz_date[..8], "credential date vs X-Amz-Date");
    (
        parts[0].to_string(),
        parts[2].to_string(),
        parts[3].to_string(),
    )
}

/// A fake Kinesis: DescribeStreamSummary answers for `stream` in `region`, anything else is
/// an UnknownOperationException.
async fn fake_kinesis(stream: &str, region: &str) -> CaptureServer {
    let body = describe_stream_summary_body(stream, region);
    CaptureServer::start(move |req| {
        if req.method == "POST" && req.header("x-amz-target") == Some(KINESIS_TARGET) {
            CannedResponse::aws_json(200, body.clone())
        } else {
            CannedResponse::new(
                400,
                &[
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("x-amzn-ErrorType", "UnknownOperationException"),
                ],
                r#"{"__type":"UnknownOperationException"}"#,
            )
        }
    })
    .await
}

/// The DescribeStreamSummary requests a fake Kinesis received. A started source may also
/// have listed shards before its Teardown; nothing else may arrive.
fn describe_requests(server: &CaptureServer) -> Vec<CapturedRequest> {
    let requests: Vec<CapturedRequest> = server
        .requests()
        .into_iter()
        .filter(|r| r.header("x-amz-target") != Some("Kinesis_20131202.ListShards"))
        .collect();
    for request in &requests {
        assert_eq!(
            request.header("x-amz-target"),
            Some(KINESIS_TARGET),
            "unexpected request at the Kinesis endpoint:\n{}",
            request.dump()
        );
    }
    requests
}

fn request_json(request: &CapturedRequest) -> serde_json::Value {
    serde_json::from_slice(&request.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}):\n{}", request.dump()))
}

// --- 1, 2: kinesis-local -------------------------------------------------------------------

/// Scenario 1: a stream at kinesis-local opens on both sides, by name with aws.region and
/// by ARN alone (region from the ARN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_local_stream_opens_by_name_and_by_arn() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("startup");
    kl.create_stream(&stream, 1).await;
    let arn = kl
        .client()
        .await
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .expect("DescribeStreamSummary at kinesis-local")
        .stream_description_summary
        .expect("summary")
        .stream_arn;
    assert!(
        arn.starts_with(&format!("arn:aws:kinesis:{}:", kinesis_local::REGION)),
        "{arn}"
    );

    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[]).await;
    let keys = [
        ("aws.url", kl.endpoint.as_str()),
        ("aws.accessKeyId", kinesis_local::ACCESS_KEY_ID),
        ("aws.secretAccessKey", kinesis_local::SECRET_ACCESS_KEY),
    ];
    for side in SIDES {
        let mut by_name = keys.to_vec();
        by_name.extend([
            ("streamName", stream.as_str()),
            ("aws.region", kinesis_local::REGION),
        ]);
        open_ok(&plugin, side, &by_name).await;

        let mut by_arn = keys.to_vec();
        by_arn.push(("streamARN", arn.as_str()));
        open_ok(&plugin, side, &by_arn).await;
    }
    sandbox.finish(plugin).await;
}

/// Scenario 2: a stream kinesis-local does not have fails Open with "was not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stream_is_reported_as_not_found() {
    let kl = KinesisLocal::start().await;
    let missing = unique_stream_name("missing");
    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[]).await;
    for side in SIDES {
        let message = open_error(
            &plugin,
            side,
            &[
                ("streamName", &missing),
                ("aws.url", &kl.endpoint),
                ("aws.region", kinesis_local::REGION),
                ("aws.accessKeyId", kinesis_local::ACCESS_KEY_ID),
                ("aws.secretAccessKey", kinesis_local::SECRET_ACCESS_KEY),
            ],
        )
        .await;
        assert_contains(&message, &["was not found", &missing]);
    }
    sandbox.finish(plugin).await;
}

// --- 3: unreachable -------------------------------------------------------------------------

/// Scenario 3: nothing listens at aws.url → "could not reach the Kinesis endpoint <url>",
/// quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_named_and_fails_fast() {
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[]).await;
    for side in SIDES {
        let started = Instant::now();
        let message = open_error(
            &plugin,
            side,
            &[
                ("streamName", "orders"),
                ("aws.url", &url),
                ("aws.region", "us-east-1"),
                ("aws.accessKeyId", "AKIDUNREACHABLE"),
                ("aws.secretAccessKey", "unreachable-secret-value-2718"),
            ],
        )
        .await;
        let took = started.elapsed();
        assert_contains(&message, &["could not reach the Kinesis endpoint", &url]);
        assert!(
            took < Duration::from_secs(10),
            "{side:?} Open took {took:?}"
        );
    }
    let stderr = sandbox.finish(plugin).await;
    assert_no_leak(&["unreachable-secret-value-2718"], &[], &stderr);
}

/// Scenario 3b: the endpoint comes from `AWS_ENDPOINT_URL_KINESIS` (no aws.url): the message
/// names that endpoint, not AWS's regional one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_from_the_environment_is_named() {
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let sandbox = Sandbox::start().await;
    let plugin = sandbox
        .start_plugin(&[("AWS_ENDPOINT_URL_KINESIS", &url)])
        .await;
    for side in SIDES {
        let message = open_error(
            &plugin,
            side,
            &[
                ("streamName", "orders"),
                ("aws.region", "us-east-1"),
                ("aws.accessKeyId", "AKIDUNREACHABLEENV"),
                ("aws.secretAccessKey", "unreachable-env-secret-value-3141"),
            ],
        )
        .await;
        assert_contains(&message, &["could not reach the Kinesis endpoint", &url]);
        assert!(!message.contains("amazonaws.com"), "{message}");
    }
    let stderr = sandbox.finish(plugin).await;
    assert_no_leak(&["unreachable-env-secret-value-3141"], &[], &stderr);
}

// --- 4: rejected credentials ----------------------------------------------------------------

/// Scenario 4 (+11): AWS answers UnrecognizedClientException → "AWS rejected the
/// credentials", pointing at aws.accessKeyId; the secret appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_reported_without_the_secret() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY-rejected-31337";
    const TOKEN: &str = "FwoGZXIvYXdzEJr-rejected-session-token-8128";
    let server = CaptureServer::start(|_| {
        CannedResponse::new(
            400,
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", "UnrecognizedClientException"),
            ],
            r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
        )
    })
    .await;
    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[]).await;
    let mut messages = Vec::new();
    for side in SIDES {
        for token in [None, Some(TOKEN)] {
            let mut settings = vec![
                ("streamName", "orders"),
                ("aws.url", server.url.as_str()),
                ("aws.region", "us-east-1"),
                ("aws.accessKeyId", "AKIDREJECTED"),
                ("aws.secretAccessKey", SECRET),
            ];
            if let Some(token) = token {
                settings.push(("aws.sessionToken", token));
            }
            let message = open_error(&plugin, side, &settings).await;
            assert_contains(
                &message,
                &["AWS rejected the credentials", "aws.accessKeyId"],
            );
            messages.push(message);
        }
    }
    let stderr = sandbox.finish(plugin).await;
    assert_eq!(describe_requests(&server).len(), 4, "one request per Open");
    assert_no_leak(&[SECRET, TOKEN], &messages, &stderr);
}

// --- 5, 6, 7: where the identity and region come from ---------------------------------------

/// Scenario 5 (+11): static keys (and the session token) sign the request, in the configured
/// region, even when the environment holds other keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_keys_sign_the_request() {
    const KEY_ID: &str = "AKIDSTATICPARAM0001";
    const SECRET: &str = "static-secret-key-value-5e1f9a";
    const TOKEN: &str = "static-session-token-value-77c0d2";
    const ENV_SECRET: &str = "environment-secret-not-to-use-91";
    let region = "ap-southeast-2";
    let server = fake_kinesis("orders", region).await;
    let sandbox = Sandbox::start().await;
    let plugin = sandbox
        .start_plugin(&[
            ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT"),
            ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
            ("AWS_REGION", "eu-north-1"),
        ])
        .await;
    for side in SIDES {
        let base = [
            ("streamName", "orders"),
            ("aws.url", server.url.as_str()),
            ("aws.region", region),
            ("aws.accessKeyId", KEY_ID),
            ("aws.secretAccessKey", SECRET),
        ];
        open_ok(&plugin, side, &base).await;
        let mut with_token = base.to_vec();
        with_token.push(("aws.sessionToken", TOKEN));
        open_ok(&plugin, side, &with_token).await;
    }
    let stderr = sandbox.finish(plugin).await;

    let requests = describe_requests(&server);
    assert_eq!(requests.len(), 4, "one DescribeStreamSummary per Open");
    for (n, request) in requests.iter().enumerate() {
        let (key_id, signed_region, service) = credential_scope(request);
        assert_eq!(key_id, KEY_ID, "request {n}");
        assert_eq!(signed_region, region, "request {n}");
        assert_eq!(service, "kinesis", "request {n}");
        assert_eq!(request_json(request)["StreamName"], "orders", "request {n}");
        let expected_token = (n % 2 == 1).then_some(TOKEN);
        assert_eq!(
            request.header("x-amz-security-token"),
            expected_token,
            "request {n}"
        );
    }
    assert_no_leak(&[SECRET, TOKEN, ENV_SECRET], &[], &stderr);
}

/// Scenario 6 (+11): without aws.* identity parameters the default chain takes the keys and
/// region from the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_uses_environment_keys_and_region() {
    const SECRET: &str = "env-chain-secret-key-value-4c2b";
    let region = "eu-west-3";
    let server = fake_kinesis("orders", region).await;
    let sandbox = Sandbox::start().await;
    let plugin = sandbox
        .start_plugin(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENVCHAIN0001"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", region),
        ])
        .await;
    for side in SIDES {
        open_ok(
            &plugin,
            side,
            &[("streamName", "orders"), ("aws.url", &server.url)],
        )
        .await;
    }
    let stderr = sandbox.finish(plugin).await;
    let requests = describe_requests(&server);
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let (key_id, signed_region, _) = credential_scope(request);
        assert_eq!(key_id, "AKIDENVCHAIN0001");
        assert_eq!(signed_region, region);
        assert_eq!(request.header("x-amz-security-token"), None);
    }
    assert_no_leak(&[SECRET], &[], &stderr);
}

/// Scenario 7 (+11): aws.profile selects the profile's keys and region, not [default]'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_supplies_keys_and_region() {
    const SECRET: &str = "analytics-profile-secret-value-8d3e";
    const DEFAULT_SECRET: &str = "default-profile-secret-value-0a9f";
    let region = "eu-central-1";
    let server = fake_kinesis("orders", region).await;
    let sandbox = Sandbox::start().await;
    sandbox.write(
        "config",
        "[default]\nregion = us-west-1\n\n[profile analytics]\nregion = eu-central-1\n",
    );
    sandbox.write(
        "credentials",
        &format!(
            "[default]\naws_access_key_id = AKIDDEFAULTPROFILE\naws_secret_access_key = {DEFAULT_SECRET}\n\n\
             [analytics]\naws_access_key_id = AKIDANALYTICSPROFILE\naws_secret_access_key = {SECRET}\n"
        ),
    );
    let plugin = sandbox.start_plugin(&[]).await;
    for side in SIDES {
        open_ok(
            &plugin,
            side,
            &[
                ("streamName", "orders"),
                ("aws.url", &server.url),
                ("aws.profile", "analytics"),
            ],
        )
        .await;
    }
    let stderr = sandbox.finish(plugin).await;
    let requests = describe_requests(&server);
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let (key_id, signed_region, _) = credential_scope(request);
        assert_eq!(key_id, "AKIDANALYTICSPROFILE");
        assert_eq!(signed_region, region);
    }
    assert_no_leak(&[SECRET, DEFAULT_SECRET], &[], &stderr);
}

// --- 8, 9: nothing configured ---------------------------------------------------------------

/// Scenario 8: no region from any source → Open names aws.region; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_region_names_aws_region() {
    const SECRET: &str = "no-region-secret-key-value-3b7a";
    let server = fake_kinesis("orders", "us-east-1").await;
    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[]).await;
    let mut messages = Vec::new();
    for side in SIDES {
        let message = open_error(
            &plugin,
            side,
            &[
                ("streamName", "orders"),
                ("aws.url", &server.url),
                ("aws.accessKeyId", "AKIDNOREGION"),
                ("aws.secretAccessKey", SECRET),
            ],
        )
        .await;
        assert_contains(&message, &["aws.region"]);
        // Named as the missing region, not as some later failure that mentions aws.region.
        assert!(
            message.to_ascii_lowercase().contains("no aws region"),
            "{message}"
        );
        assert!(!message.contains("could not reach"), "{message}");
        messages.push(message);
    }
    let stderr = sandbox.finish(plugin).await;
    assert_eq!(server.requests().len(), 0, "nothing should have been sent");
    assert_no_leak(&[SECRET], &messages, &stderr);
}

/// Scenario 9: no credentials from any source → "no AWS credentials could be loaded";
/// nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_reported() {
    let server = fake_kinesis("orders", "us-east-1").await;
    let sandbox = Sandbox::start().await;
    let plugin = sandbox.start_plugin(&[("AWS_REGION", "us-east-1")]).await;
    for side in SIDES {
        let started = Instant::now();
        let message = open_error(
            &plugin,
            side,
            &[("streamName", "orders"), ("aws.url", &server.url)],
        )
        .await;
        assert_contains(&message, &["no AWS credentials could be loaded"]);
        // Why each provider of the default chain came up empty, not a cut-off "Attempted:".
        assert_contains(&message, &["Environment:", "Profile:"]);
        assert!(!message.contains('\n'), "one line: {message}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{side:?} Open took {took:?}"
        );
    }
    sandbox.finish(plugin).await;
    assert_eq!(server.requests().len(), 0, "nothing should have been sent");
}

// --- 10: assume role ------------------------------------------------------------------------

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/kinesis-reader";
const ASSUMED_KEY_ID: &str = "ASIAASSUMEDROLEKEY01";
const ASSUMED_SECRET: &str = "assumed-role-secret-value-6f1c2e";
const ASSUMED_TOKEN: &str = "assumed-role-session-token-value-b4d7a9";

fn assume_role_response(session_name: &str) -> String {
    let expiration = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap();
    format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>conduit</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/kinesis-reader/{session_name}</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session_name}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{ASSUMED_KEY_ID}</AccessKeyId>
      <SecretAccessKey>{ASSUMED_SECRET}</SecretAccessKey>
      <SessionToken>{ASSUMED_TOKEN}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
"#
    )
}

/// Scenario 10 (+11): aws.assumeRoleArn calls STS (at AWS_ENDPOINT_URL_STS, never at aws.url)
/// signed with the source keys, passing RoleArn, RoleSessionName and ExternalId; Kinesis is
/// then called with the assumed credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role_uses_sts_then_the_assumed_credentials() {
    const SOURCE_KEY_ID: &str = "AKIDSOURCEIDENTITY01";
    const SOURCE_SECRET: &str = "source-identity-secret-value-1e8b";
    let region = "us-west-2";
    let sts_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let errors = sts_errors.clone();
    let sts = CaptureServer::start(move |req| {
        let form = req.form();
        if req.method == "POST" && form.get("Action").map(String::as_str) == Some("AssumeRole") {
            let session = form.get("RoleSessionName").cloned().unwrap_or_default();
            CannedResponse::xml(200, assume_role_response(&session))
        } else {
            errors.lock().unwrap().push(req.dump());
            CannedResponse::xml(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>\
                 <Message>unexpected request</Message></Error></ErrorResponse>",
            )
        }
    })
    .await;
    let kinesis = fake_kinesis("orders", region).await;
    let sts_url = sts.url.clone();

    let sandbox = Sandbox::start().await;
    let plugin = sandbox
        .start_plugin(&[("AWS_ENDPOINT_URL_STS", &sts_url)])
        .await;
    let base = [
        ("streamName", "orders"),
        ("aws.url", kinesis.url.as_str()),
        ("aws.region", region),
        ("aws.accessKeyId", SOURCE_KEY_ID),
        ("aws.secretAccessKey", SOURCE_SECRET),
        ("aws.assumeRoleArn", ROLE_ARN),
        ("aws.assumeRoleExternalId", "conduit-external-id-42"),
    ];
    // Source: default session name; destination: a custom one.
    open_ok(&plugin, Side::Source, &base).await;
    let mut custom = base.to_vec();
    custom.push(("aws.assumeRoleSessionName", "pipeline-orders@reader"));
    open_ok(&plugin, Side::Destination, &custom).await;
    let stderr = sandbox.finish(plugin).await;

    assert!(
        sts_errors.lock().unwrap().is_empty(),
        "unexpected STS requests: {:?}",
        sts_errors.lock().unwrap()
    );
    let sts_requests = sts.requests();
    assert_eq!(sts_requests.len(), 2, "one AssumeRole per Open");
    for (request, session_name) in sts_requests
        .iter()
        .zip(["conduit-connector-kinesis", "pipeline-orders@reader"])
    {
        let form = request.form();
        assert_eq!(form.get("Action").map(String::as_str), Some("AssumeRole"));
        assert_eq!(form.get("RoleArn").map(String::as_str), Some(ROLE_ARN));
        assert_eq!(
            form.get("RoleSessionName").map(String::as_str),
            Some(session_name),
            "{}",
            request.dump()
        );
        assert_eq!(
            form.get("ExternalId").map(String::as_str),
            Some("conduit-external-id-42")
        );
        let (key_id, signed_region, service) = credential_scope(request);
        assert_eq!(
            key_id, SOURCE_KEY_ID,
            "STS is signed with the source identity"
        );
        assert_eq!(signed_region, region);
        assert_eq!(service, "sts");
        assert_eq!(request.header("x-amz-security-token"), None);
    }

    // describe_requests also checks that no STS call reached aws.url.
    let kinesis_requests = describe_requests(&kinesis);
    assert_eq!(
        kinesis_requests.len(),
        2,
        "one DescribeStreamSummary per Open"
    );
    for request in &kinesis_requests {
        assert!(
            !request.body_text().contains("AssumeRole"),
            "{}",
            request.dump()
        );
        let (key_id, signed_region, service) = credential_scope(request);
        assert_eq!(
            key_id, ASSUMED_KEY_ID,
            "Kinesis is signed with the assumed role"
        );
        assert_eq!(signed_region, region);
        assert_eq!(service, "kinesis");
        assert_eq!(request.header("x-amz-security-token"), Some(ASSUMED_TOKEN));
    }
    assert_no_leak(
        &[SOURCE_SECRET, ASSUMED_SECRET, ASSUMED_TOKEN],
        &[],
        &stderr,
    );
}
