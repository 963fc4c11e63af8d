//! The PutRecords requests the destination builds itself (not through the AWS SDK), checked
//! at a fake Kinesis on loopback: the signature verifies under an independent SigV4
//! implementation, the body is the PutRecords input in AWS CBOR (the default) or AWS JSON
//! (`protocol=json`), and AWS-style error answers in either protocol are judged as the SDK
//! would report them.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use support::capture_server::{
    describe_stream_summary_body, CannedResponse, CaptureServer, CapturedRequest,
};
use support::destination::{raw_record, RunningDestination};
use support::wire;

const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";
const DESCRIBE: &str = "Kinesis_20131202.DescribeStreamSummary";
const KEY_ID: &str = "AKIDPUTRECORDSTEST01";
const SECRET: &str = "put-records-secret-key-value-3a9c";
const TOKEN: &str = "put-records-session-token-value-b71e";

/// `answer` in the protocol `request` was sent in, as Kinesis answers.
fn answer_in_kind(
    request: &CapturedRequest,
    status: u16,
    headers: &[(&str, &str)],
    answer: serde_json::Value,
) -> CannedResponse {
    let (content_type, body) = if wire::is_cbor(request.header("content-type")) {
        (wire::CBOR_CONTENT_TYPE, wire::json_to_cbor(&answer))
    } else {
        (wire::JSON_CONTENT_TYPE, answer.to_string().into_bytes())
    };
    let mut all = vec![("Content-Type", content_type)];
    all.extend_from_slice(headers);
    CannedResponse::new(status, &all, body)
}

/// A PutRecords answer accepting every entry of `request`.
fn accept_all(request: &CapturedRequest) -> CannedResponse {
    let body = wire::put_records_body(request.header("content-type"), &request.body);
    let count = body["Records"].as_array().map_or(0, Vec::len);
    let records: Vec<serde_json::Value> = (0..count)
        .map(|n| serde_json::json!({"SequenceNumber": format!("{}", 1000 + n), "ShardId": "shardId-000000000000"}))
        .collect();
    answer_in_kind(
        request,
        200,
        &[],
        serde_json::json!({"FailedRecordCount": 0, "Records": records}),
    )
}

fn aws_error(request: &CapturedRequest, status: u16, code: &str, message: &str) -> CannedResponse {
    answer_in_kind(
        request,
        status,
        &[(
            "x-amzn-ErrorType",
            &format!("{code}:http://internal.amazon.com/coral/"),
        )],
        serde_json::json!({"__type": format!("com.amazonaws.kinesis.v20131202#{code}"), "message": message}),
    )
}

/// A fake Kinesis for `stream`: describe answers, PutRecords goes to `put`.
async fn fake_kinesis<F>(stream: &str, region: &str, put: F) -> CaptureServer
where
    F: Fn(&CapturedRequest) -> CannedResponse + Send + Sync + 'static,
{
    let describe = describe_stream_summary_body(stream, region);
    CaptureServer::start(move |request| match request.header("x-amz-target") {
        Some(DESCRIBE) => CannedResponse::aws_json(200, describe.clone()),
        Some(PUT_RECORDS) => put(request),
        _ => aws_error(request, 400, "UnknownOperationException", "not faked"),
    })
    .await
}

fn put_requests(server: &CaptureServer) -> Vec<CapturedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.header("x-amz-target") == Some(PUT_RECORDS))
        .collect()
}

fn settings<'a>(
    server: &'a CaptureServer,
    stream: (&'a str, &'a str),
    protocol: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        stream,
        ("protocol", protocol),
        ("aws.url", server.url.as_str()),
        ("aws.region", "ap-southeast-2"),
        ("aws.accessKeyId", KEY_ID),
        ("aws.secretAccessKey", SECRET),
        ("aws.sessionToken", TOKEN),
        ("sdk.record.format", "raw"),
        // One lane, so the three records of a run go out in one call.
        ("concurrency", "1"),
        ("sdk.schema.extract.payload.enabled", "false"),
        ("sdk.schema.extract.key.enabled", "false"),
    ]
}

#[tokio::test]
async fn put_records_is_signed_and_carries_the_entries_in_cbor() {
    put_records_is_signed_and_carries_the_entries("cbor", wire::CBOR_CONTENT_TYPE).await;
}

#[tokio::test]
async fn put_records_is_signed_and_carries_the_entries_in_json() {
    put_records_is_signed_and_carries_the_entries("json", wire::JSON_CONTENT_TYPE).await;
}

async fn put_records_is_signed_and_carries_the_entries(protocol: &str, content_type: &str) {
    let region = "ap-southeast-2";
    let server = fake_kinesis("orders", region, accept_all).await;
    let arn = format!("arn:aws:kinesis:{region}:123456789012:stream/orders");
    for stream in [("streamName", "orders"), ("streamARN", arn.as_str())] {
        let mut destination = RunningDestination::start(&settings(&server, stream, protocol)).await;
        let records = vec![
            raw_record("p1", "key-1", b"first"),
            raw_record("p2", "clé \"2\"", &[0, 159, 255]),
            raw_record("p3", "key-3", b"third"),
        ];
        destination.send_batch(records).await;
        let acks = destination.acks(3).await;
        assert!(acks.iter().all(|a| a.error.is_empty()), "{acks:?}");
        destination.stop(b"p3").await;
        destination.teardown().await;
    }

    let requests = put_requests(&server);
    assert_eq!(requests.len(), 2, "one PutRecords call per run");
    for (request, by_arn) in requests.iter().zip([false, true]) {
        let signed = support::sigv4::verify(request, SECRET);
        // The check can fail: another secret or a changed body does not verify.
        assert!(
            std::panic::catch_unwind(|| support::sigv4::verify(request, "another-secret")).is_err()
        );
        let mut tampered = request.clone();
        tampered.body.push(b' ');
        assert!(std::panic::catch_unwind(|| support::sigv4::verify(&tampered, SECRET)).is_err());
        assert_eq!(signed.access_key_id, KEY_ID);
        assert_eq!(signed.region, region);
        assert_eq!(signed.service, "kinesis");
        assert_eq!(request.header("x-amz-security-token"), Some(TOKEN));
        assert!(
            signed
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-security-token"),
            "{:?}",
            signed.signed_headers
        );
        assert_eq!(request.header("content-type"), Some(content_type));
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/");
        let body = wire::put_records_body(Some(content_type), &request.body);
        let entries: Vec<(String, Vec<u8>)> = body["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(entry["Data"].as_str().unwrap())
                    .unwrap();
                (entry["PartitionKey"].as_str().unwrap().to_string(), data)
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("key-1".to_string(), b"first".to_vec()),
                ("clé \"2\"".to_string(), vec![0, 159, 255]),
                ("key-3".to_string(), b"third".to_vec()),
            ]
        );
        if by_arn {
            assert_eq!(body["StreamARN"], arn);
            assert!(body.get("StreamName").is_none());
        } else {
            assert_eq!(body["StreamName"], "orders");
        }
        assert!(!request.dump().contains(SECRET), "the secret was sent");
    }
}

#[tokio::test]
async fn aws_error_answers_are_retried_or_nacked_by_their_code_in_cbor() {
    aws_error_answers_are_retried_or_nacked_by_their_code("cbor").await;
}

#[tokio::test]
async fn aws_error_answers_are_retried_or_nacked_by_their_code_in_json() {
    aws_error_answers_are_retried_or_nacked_by_their_code("json").await;
}

async fn aws_error_answers_are_retried_or_nacked_by_their_code(protocol: &str) {
    // First call: 500 InternalFailure (retried); then the stream is gone.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let server = fake_kinesis("orders", "ap-southeast-2", move |request| {
        match counter.fetch_add(1, Ordering::SeqCst) {
            0 => aws_error(request, 500, "InternalFailure", "try again"),
            _ => aws_error(
                request,
                400,
                "ResourceNotFoundException",
                "Stream orders under account 123456789012 not found.",
            ),
        }
    })
    .await;
    let mut config = settings(&server, ("streamName", "orders"), protocol);
    config.push(("retry.initialBackoff", "10ms"));
    let mut destination = RunningDestination::start(&config).await;
    destination
        .send_batch(vec![raw_record("p1", "k", b"x")])
        .await;
    let acks = destination.acks(1).await;
    let error = &acks[0].error;
    assert!(
        error.contains("\"p1\"")
            && error.contains("does not exist")
            && error.contains("ResourceNotFoundException"),
        "{error}"
    );
    assert!(
        error.contains("not found."),
        "the service's message is kept: {error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the 500 was retried once");
    destination.stop(b"p1").await;
    destination.teardown().await;
}
