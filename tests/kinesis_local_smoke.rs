//! Smoke test of the kinesis-local test fixture itself (needs `test/setup.sh`).

mod support;

use std::path::Path;

use aws_sdk_kinesis::primitives::Blob;
use support::kinesis_local::{unique_stream_name, KinesisLocal};

#[tokio::test]
async fn kinesis_local_serves_a_two_shard_stream() {
    let kl = KinesisLocal::start().await;
    assert!(
        kl.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        kl.endpoint
    );

    let stream = unique_stream_name("smoke");
    kl.create_stream(&stream, 2).await;
    let client = kl.client().await;

    let put = client
        .put_record()
        .stream_name(&stream)
        .partition_key("key-1")
        .data(Blob::new(b"hello kinesis-local".to_vec()))
        .send()
        .await
        .expect("PutRecord");
    assert!(put.shard_id().starts_with("shardId-"), "{put:?}");
    assert!(!put.sequence_number().is_empty());

    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .expect("ListShards");
    let shards = shards.shards();
    assert_eq!(shards.len(), 2, "{shards:?}");
    assert!(shards.iter().any(|s| s.shard_id() == put.shard_id()));
}

#[tokio::test]
async fn kinesis_local_process_is_gone_after_drop() {
    let kl = KinesisLocal::start().await;
    let pid = kl.pid();
    let proc_dir = format!("/proc/{pid}");
    assert!(
        Path::new(&proc_dir).exists(),
        "server pid {pid} not running"
    );
    let dir = kl.dir().to_path_buf();

    drop(kl);

    assert!(
        !Path::new(&proc_dir).exists(),
        "kinesis-local (pid {pid}) still exists after drop"
    );
    assert!(!dir.exists(), "tempdir {} not removed", dir.display());
}
