//! Listing shards, every page.

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::Client;

use super::lineage::ShardInfo;
use crate::aws::StreamRef;

pub async fn list(client: &Client, stream: &StreamRef) -> Result<Vec<ShardInfo>, String> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let mut request = client.list_shards();
        request = match &next_token {
            // With a token, the stream must not be named again.
            Some(token) => request.next_token(token),
            None => match &stream.arn {
                Some(arn) => request.stream_arn(arn),
                None => request.stream_name(&stream.name),
            },
        };
        let page = request.send().await.map_err(|e| {
            format!(
                "ListShards on stream {:?} failed: {}",
                stream.name,
                DisplayErrorContext(&e)
            )
        })?;
        for shard in page.shards.unwrap_or_default() {
            shards.push(ShardInfo {
                closed: shard
                    .sequence_number_range
                    .as_ref()
                    .and_then(|r| r.ending_sequence_number.as_ref())
                    .is_some(),
                id: shard.shard_id,
                parent: shard.parent_shard_id,
                adjacent_parent: shard.adjacent_parent_shard_id,
            });
        }
        match page.next_token {
            Some(token) if !token.is_empty() => next_token = Some(token),
            _ => return Ok(shards),
        }
    }
}
