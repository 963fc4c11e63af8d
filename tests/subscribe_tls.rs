//! SubscribeToShard as AWS serves it: over TLS with HTTP/2 negotiated by ALPN (AWS answers
//! SubscribeToShard only over HTTP/2). A local TLS server with a certificate made for the
//! test (trusted through `SSL_CERT_FILE`, which the client's root store reads) speaks
//! HTTP/2 only; the connector's subscriber must negotiate it, sign the request so an
//! independent SigV4 check accepts it, and read the event stream it answers. A second call
//! is refused the way AWS refuses a subscription while another is active.

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use bytes::Bytes;
use conduit_connector_kinesis::testing::encode_message;
use conduit_connector_kinesis::testing::KinesisConnection;
use conduit_connector_kinesis::testing::{StartingPoint, Subscriber};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::capture_server::CapturedRequest;

const KEY_ID: &str = "AKIDSUBSCRIBETLSTEST";
const SECRET: &str = "subscribe-over-h2-secret-key-5d1e";
/// Subscriptions to this shard are refused as AWS refuses a second active subscription.
const REFUSED_SHARD: &str = "shardId-000000000009";
const CONSUMER: &str =
    "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/reader:1700000000";

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, made with
/// the openssl command line tool: (CA certificate, server certificate, server key).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed (Debian package openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(
        path("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ]
        .into_iter()
        .chain([
            "-subj",
            "/CN=subscribe-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ])
        .collect::<Vec<_>>(),
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ]
        .into_iter()
        .chain(["-keyout", "server.key", "-out", "server.csr"])
        .collect::<Vec<_>>(),
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
        ]
        .into_iter()
        .chain([
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ])
        .collect::<Vec<_>>(),
    );
    (path("ca.pem"), path("server.pem"), path("server.key"))
}

#[derive(Debug, Clone)]
struct Seen {
    version: http::Version,
    alpn: Option<Vec<u8>>,
    request: CapturedRequest,
}

fn events_body() -> Bytes {
    let mut body = encode_message(
        &[
            (":message-type", "event"),
            (":event-type", "initial-response"),
        ],
        b"{}",
    );
    let event = serde_json::json!({
        "ContinuationSequenceNumber": "49590000000000000000000000000000000000000000000000000002",
        "MillisBehindLatest": 0,
        "Records": [
            {"SequenceNumber": "49590000000000000000000000000000000000000000000000000001",
             "ApproximateArrivalTimestamp": 1_700_000_000.5, "Data": "aGVsbG8=",
             "PartitionKey": "k1", "EncryptionType": "NONE"},
            {"SequenceNumber": "49590000000000000000000000000000000000000000000000000002",
             "ApproximateArrivalTimestamp": 1_700_000_000.75, "Data": "d29ybGQ=",
             "PartitionKey": "k2", "EncryptionType": "NONE"},
        ],
    });
    body.extend(encode_message(
        &[
            (":message-type", "event"),
            (":event-type", "SubscribeToShardEvent"),
            (":content-type", "application/json"),
        ],
        event.to_string().as_bytes(),
    ));
    Bytes::from(body)
}

/// An HTTP/2-only TLS server: subscriptions get [`events_body`], except to [`REFUSED_SHARD`].
/// Returns the port, the requests seen and the count of TLS connections accepted.
async fn start_server(cert: &Path, key: &Path) -> (u16, Arc<Mutex<Vec<Seen>>>, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    let accepted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    let alpn = alpn.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        let mut headers: Vec<(String, String)> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                            .collect();
                        // HTTP/2 carries the host as :authority.
                        if !headers.iter().any(|(k, _)| k == "host") {
                            let authority = parts.uri.authority().unwrap().to_string();
                            headers.push(("host".into(), authority));
                        }
                        let seen = Seen {
                            version: parts.version,
                            alpn,
                            request: CapturedRequest {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                headers,
                                body,
                            },
                        };
                        let refuse = seen.request.body_text().contains(REFUSED_SHARD);
                        log.lock().unwrap().push(seen);
                        let response = if !refuse {
                            http::Response::builder()
                                .status(200)
                                .header("content-type", "application/vnd.amazon.eventstream")
                                .body(Full::new(events_body()))
                        } else {
                            http::Response::builder()
                                .status(400)
                                .header("content-type", "application/x-amz-json-1.1")
                                .header("x-amzn-errortype", "ResourceInUseException:http://internal.amazon.com/")
                                .body(Full::new(Bytes::from_static(
                                    br#"{"message":"Another active subscription exists for this consumer"}"#,
                                )))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen, connections)
}

#[tokio::test]
async fn subscribes_over_tls_with_http2_and_reads_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(dir.path());
    // The client's root store is the system's, which SSL_CERT_FILE replaces; only this
    // test runs in this process.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let (port, seen, connections) = start_server(&cert, &key).await;

    let sdk_config = aws_types::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            KEY_ID, SECRET, None, None, "test",
        )))
        .build();
    let connection = KinesisConnection {
        client: aws_sdk_kinesis::Client::new(&sdk_config),
        sdk_config,
        endpoint_override: Some(format!("https://localhost:{port}")),
    };
    let subscriber = Subscriber::new(&connection).unwrap();
    let start = StartingPoint::AfterSequence(
        "49590000000000000000000000000000000000000000000000000000".into(),
    );
    let subscribe = |shard: &'static str| {
        subscriber.subscribe(CONSUMER, shard, &start, Duration::from_secs(10))
    };
    // Three shards at once, as a source reads them.
    let shards = [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ];
    let subscriptions = futures::future::join_all(shards.map(subscribe)).await;
    for subscription in subscriptions {
        let mut subscription = subscription.expect("the subscription is accepted");
        let event = subscription.next_event().await.unwrap().expect("one event");
        let data: Vec<&[u8]> = event.records.iter().map(|r| r.data.as_slice()).collect();
        assert_eq!(data, vec![&b"hello"[..], &b"world"[..]]);
        assert_eq!(event.records[0].partition_key, "k1");
        assert_eq!(event.records[1].arrival_ms, Some(1_700_000_000_750));
        assert_eq!(
            event.continuation.as_deref(),
            Some("49590000000000000000000000000000000000000000000000000002")
        );
        assert_eq!(
            subscription.next_event().await.unwrap(),
            None,
            "the server ended the stream"
        );
    }

    // Started together, the three may each open a connection before ALPN says HTTP/2; a
    // later subscription reuses one of them.
    let opened = connections.load(Ordering::SeqCst);
    assert!((1..=shards.len()).contains(&opened), "{opened} connections");
    let refused = subscribe(REFUSED_SHARD)
        .await
        .err()
        .expect("the subscription is refused");
    assert_eq!(refused.code.as_deref(), Some("ResourceInUseException"));
    assert!(
        refused.message.contains("Another active subscription"),
        "{refused}"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        opened,
        "the last subscription reused a pooled HTTP/2 connection"
    );
    for request in &seen {
        assert_eq!(
            request.alpn.as_deref(),
            Some(&b"h2"[..]),
            "ALPN must pick h2"
        );
        assert_eq!(request.version, http::Version::HTTP_2);
    }
    let first = seen
        .iter()
        .find(|s| s.request.body_text().contains("shardId-000000000000"))
        .unwrap();
    assert_eq!(
        first.request.header("x-amz-target"),
        Some("Kinesis_20131202.SubscribeToShard")
    );
    assert_eq!(
        first.request.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    let body: serde_json::Value = serde_json::from_slice(&first.request.body).unwrap();
    assert_eq!(body["ConsumerARN"], CONSUMER);
    assert_eq!(body["ShardId"], "shardId-000000000000");
    assert_eq!(body["StartingPosition"]["Type"], "AFTER_SEQUENCE_NUMBER");
    let signed = support::sigv4::verify(&first.request, SECRET);
    assert_eq!(signed.access_key_id, KEY_ID);
    assert_eq!(signed.region, "us-east-1");
    assert_eq!(signed.service, "kinesis");
    assert!(signed.signed_headers.iter().any(|h| h == "host"));
}
