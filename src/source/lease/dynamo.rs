//! The lease table in DynamoDB, through the connector's own signed HTTP client
//! ([`crate::aws::signed`], AWS JSON 1.0 with `X-Amz-Target: DynamoDB_20120810.*`).
//!
//! Why not `aws-sdk-dynamodb`: the table needs seven calls with small JSON bodies, and the
//! SDK crate costs minutes of build time on every clean build (CI included) for that. The
//! signer, region and credential chain are the SDK's anyway, shared with Kinesis.
//!
//! # Items (KCL's lease schema, `DynamoDBLeaseSerializer`)
//!
//! | attribute                      | type | meaning                                          |
//! |--------------------------------|------|--------------------------------------------------|
//! | `leaseKey`                     | S    | shard id (hash key)                              |
//! | `leaseOwner`                   | S    | worker id; absent when released                  |
//! | `leaseCounter`                 | N    | raised by every renewal and take                 |
//! | `checkpointOwner`              | S    | previous owner finishing a handoff (KCL 3)       |
//! | `checkpoint`                   | S    | sequence number or `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END` |
//! | `checkpointSubSequenceNumber`  | N    | user record inside a KPL aggregate (0: whole)    |
//! | `checkpointTimestamp`          | N    | with `AT_TIMESTAMP`: read from this time (epoch ms); this connector's own, see below |
//! | `ownerSwitchesSinceCheckpoint` | N    | takes since the last checkpoint                  |
//! | `parentShardId`                | SS   | parents (absent for none: sets cannot be empty)  |
//! | `childShardIds`                | SS   | children, written with `SHARD_END`               |
//! | `startingHashKey`, `endingHashKey` | S | the shard's hash key range                      |
//!
//! The table is created with `leaseKey` as its only key and on-demand capacity
//! (`PAY_PER_REQUEST`).
//!
//! `checkpointTimestamp` is not KCL's: a `LATEST` lease is pinned to `AT_TIMESTAMP` at the
//! time its first owner starts reading ([`super::decide::pin_latest`]), and the time has to
//! be kept somewhere. The sentinel stays KCL's, so KCL tooling reads the item (KCL itself
//! would start such a lease at its own configured timestamp and ignore the attribute). Every
//! checkpoint write sets the attribute or removes it, so it never outlives its `AT_TIMESTAMP`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::table::{Checkpoint, CheckpointWrite, Lease, LeaseError, LeaseTable};
use crate::aws::signed::{RequestFailure, ServiceEndpoint, SignedClient};

/// Every call must answer within this (a third of the shortest lease duration).
const CALL_TIMEOUT: Duration = Duration::from_millis(3000);
/// How long `ensure` waits for a new table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct DynamoLeaseTable {
    client: SignedClient,
    endpoint: ServiceEndpoint,
    table: String,
    call_timeout: Duration,
}

impl std::fmt::Debug for DynamoLeaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoLeaseTable")
            .field("table", &self.table)
            .field("endpoint", &self.endpoint.url())
            .finish_non_exhaustive()
    }
}

/// A failed call, before it is judged.
#[derive(Debug)]
struct CallError {
    code: Option<String>,
    message: String,
}

impl DynamoLeaseTable {
    /// `url`: `coordination.url`, else the region's DynamoDB endpoint. `lease_duration`
    /// bounds each call's wait.
    pub(crate) fn new(
        client: SignedClient,
        url: Option<&str>,
        table: String,
        lease_duration: Duration,
    ) -> Result<Self, String> {
        let region = client.region().to_string();
        let url = match url {
            Some(url) => url.to_string(),
            None if region.starts_with("cn-") => {
                format!("https://dynamodb.{region}.amazonaws.com.cn")
            }
            None => format!("https://dynamodb.{region}.amazonaws.com"),
        };
        let endpoint = ServiceEndpoint::new(&url, &region, "dynamodb")
            .map_err(|e| format!("coordination.url: {e}"))?;
        Ok(DynamoLeaseTable {
            client,
            endpoint,
            table,
            call_timeout: CALL_TIMEOUT
                .min(lease_duration / 3)
                .max(Duration::from_millis(500)),
        })
    }

    async fn call(&self, operation: &'static str, body: Value) -> Result<Value, CallError> {
        let target = target(operation);
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let answer = tokio::time::timeout(self.call_timeout, async {
            let response = self
                .client
                .send_json10(&self.endpoint, target, body)
                .await
                .map_err(|e| CallError {
                    code: (e.failure == RequestFailure::Local).then(|| "Local".to_string()),
                    message: e.message,
                })?;
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| CallError {
                    code: None,
                    message: format!("{operation}: reading the answer failed: {e}"),
                })?
                .to_bytes();
            if !parts.status.is_success() {
                let error = self.client.service_error(&parts, &bytes);
                return Err(CallError {
                    code: error.code,
                    message: format!("{operation} on table {:?}: {}", self.table, error.message),
                });
            }
            serde_json::from_slice(&bytes).map_err(|e| CallError {
                code: None,
                message: format!("{operation}: the answer is not JSON: {e}"),
            })
        })
        .await;
        answer.unwrap_or_else(|_| {
            Err(CallError {
                code: None,
                message: format!(
                    "{operation} on table {:?} did not answer within {:?}",
                    self.table, self.call_timeout
                ),
            })
        })
    }

    /// A conditional update of `key`; a failed condition is a [`LeaseError::Conflict`].
    async fn update(&self, key: &str, body: Value) -> Result<(), LeaseError> {
        match self.call("UpdateItem", body).await {
            Ok(_) => Ok(()),
            Err(error) => Err(judge(error, key)),
        }
    }

    async fn table_status(&self) -> Result<Option<String>, CallError> {
        match self
            .call("DescribeTable", json!({ "TableName": self.table }))
            .await
        {
            Ok(answer) => Ok(answer["Table"]["TableStatus"].as_str().map(str::to_owned)),
            Err(error) if error.code.as_deref() == Some("ResourceNotFoundException") => Ok(None),
            Err(error) => Err(error),
        }
    }
}

fn target(operation: &'static str) -> &'static str {
    match operation {
        "DescribeTable" => "DynamoDB_20120810.DescribeTable",
        "CreateTable" => "DynamoDB_20120810.CreateTable",
        "Scan" => "DynamoDB_20120810.Scan",
        "PutItem" => "DynamoDB_20120810.PutItem",
        "UpdateItem" => "DynamoDB_20120810.UpdateItem",
        other => unreachable!("no DynamoDB operation {other} is used"),
    }
}

/// Failures that retrying will not fix name the parameters to look at.
fn judge(error: CallError, key: &str) -> LeaseError {
    match error.code.as_deref() {
        Some("ConditionalCheckFailedException") => LeaseError::Conflict { key: key.into() },
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "ValidationException"
            | "ResourceNotFoundException"
            | "Local",
        ) => LeaseError::Unusable(format!(
            "{} (check coordination.table, coordination.url, aws.region and the credentials' \
             DynamoDB permissions)",
            error.message
        )),
        _ => LeaseError::Unavailable(error.message),
    }
}

fn number(value: impl std::fmt::Display) -> Value {
    json!({ "N": value.to_string() })
}

fn text(value: &str) -> Value {
    json!({ "S": value })
}

/// The update expression of a write that ends any handover (`checkpointOwner` goes) and,
/// when given, moves the checkpoint (with `checkpointTimestamp` set or removed along with it)
/// and writes the children; the values it names are put in `values`.
fn checkpoint_expression(
    checkpoint: Option<&Checkpoint>,
    children: &[String],
    values: &mut Value,
) -> String {
    let mut set = Vec::new();
    let mut remove = vec!["checkpointOwner"];
    if let Some(checkpoint) = checkpoint {
        set.push(
            "checkpoint = :checkpoint, checkpointSubSequenceNumber = :sub, \
             ownerSwitchesSinceCheckpoint = :zero",
        );
        values[":checkpoint"] = text(checkpoint.text());
        values[":sub"] = number(checkpoint.sub_sequence());
        values[":zero"] = number(0);
        match checkpoint.timestamp() {
            Some(millis) => {
                set.push("checkpointTimestamp = :timestamp");
                values[":timestamp"] = number(millis);
            }
            None => remove.push("checkpointTimestamp"),
        }
    }
    if !children.is_empty() {
        set.push("childShardIds = :children");
        values[":children"] = json!({ "SS": children });
    }
    let remove = format!("REMOVE {}", remove.join(", "));
    if set.is_empty() {
        remove
    } else {
        format!("SET {} {remove}", set.join(", "))
    }
}

/// The DynamoDB item of a lease.
pub(crate) fn to_item(lease: &Lease) -> Value {
    let mut item = Map::new();
    item.insert("leaseKey".into(), text(&lease.key));
    if let Some(owner) = &lease.owner {
        item.insert("leaseOwner".into(), text(owner));
    }
    item.insert("leaseCounter".into(), number(lease.counter));
    if let Some(owner) = &lease.checkpoint_owner {
        item.insert("checkpointOwner".into(), text(owner));
    }
    item.insert("checkpoint".into(), text(lease.checkpoint.text()));
    item.insert(
        "checkpointSubSequenceNumber".into(),
        number(lease.checkpoint.sub_sequence()),
    );
    if let Some(millis) = lease.checkpoint.timestamp() {
        item.insert("checkpointTimestamp".into(), number(millis));
    }
    item.insert(
        "ownerSwitchesSinceCheckpoint".into(),
        number(lease.owner_switches),
    );
    if !lease.parents.is_empty() {
        item.insert("parentShardId".into(), json!({ "SS": lease.parents }));
    }
    if !lease.children.is_empty() {
        item.insert("childShardIds".into(), json!({ "SS": lease.children }));
    }
    if let Some((start, end)) = &lease.hash_range {
        item.insert("startingHashKey".into(), text(start));
        item.insert("endingHashKey".into(), text(end));
    }
    Value::Object(item)
}

/// A lease from its DynamoDB item.
pub(crate) fn from_item(item: &Value) -> Result<Lease, String> {
    let s = |name: &str| item[name]["S"].as_str().map(str::to_owned);
    let n = |name: &str| -> Result<u64, String> {
        match item[name]["N"].as_str() {
            None => Ok(0),
            Some(text) => text
                .parse()
                .map_err(|_| format!("attribute {name} is not a whole number: {text:?}")),
        }
    };
    let ss = |name: &str| -> Vec<String> {
        let mut values: Vec<String> = item[name]["SS"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        values.sort();
        values
    };
    let key = s("leaseKey").ok_or("an item has no leaseKey string")?;
    let timestamp = match item["checkpointTimestamp"]["N"].as_str() {
        None => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            format!("lease {key}: attribute checkpointTimestamp is not a whole number: {text:?}")
        })?),
    };
    let checkpoint_text = s("checkpoint").unwrap_or_else(|| "TRIM_HORIZON".into());
    let checkpoint = Checkpoint::parse(
        &checkpoint_text,
        n("checkpointSubSequenceNumber")?,
        timestamp,
    )
    .ok_or_else(|| {
        format!("lease {key}: checkpoint {checkpoint_text:?} is not a sequence number or sentinel")
    })?;
    Ok(Lease {
        owner: s("leaseOwner"),
        counter: n("leaseCounter")?,
        checkpoint_owner: s("checkpointOwner"),
        checkpoint,
        owner_switches: n("ownerSwitchesSinceCheckpoint")?,
        parents: ss("parentShardId"),
        children: ss("childShardIds"),
        hash_range: s("startingHashKey").zip(s("endingHashKey")),
        key,
    })
}

#[async_trait]
impl LeaseTable for DynamoLeaseTable {
    async fn ensure(&self) -> Result<(), LeaseError> {
        let status = self.table_status().await.map_err(|e| judge(e, ""))?;
        if status.is_none() {
            let create = json!({
                "TableName": self.table,
                "AttributeDefinitions": [{ "AttributeName": "leaseKey", "AttributeType": "S" }],
                "KeySchema": [{ "AttributeName": "leaseKey", "KeyType": "HASH" }],
                "BillingMode": "PAY_PER_REQUEST",
            });
            match self.call("CreateTable", create).await {
                Ok(_) => {
                    tracing::info!(table = %self.table, "lease table created (on-demand capacity)")
                }
                // Another instance created it at the same time.
                Err(error) if error.code.as_deref() == Some("ResourceInUseException") => {}
                Err(error) => return Err(judge(error, "")),
            }
        }
        let started = Instant::now();
        loop {
            match self.table_status().await.map_err(|e| judge(e, ""))? {
                Some(status) if status == "ACTIVE" => return Ok(()),
                _ if started.elapsed() > ACTIVE_TIMEOUT => {
                    return Err(LeaseError::Unavailable(format!(
                        "the lease table {:?} did not become ACTIVE within {ACTIVE_TIMEOUT:?}",
                        self.table
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        let mut leases = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({ "TableName": self.table, "ConsistentRead": true });
            if let Some(key) = start.take() {
                body["ExclusiveStartKey"] = key;
            }
            let page = self.call("Scan", body).await.map_err(|e| judge(e, ""))?;
            for item in page["Items"].as_array().into_iter().flatten() {
                leases.push(from_item(item).map_err(LeaseError::Unusable)?);
            }
            match page.get("LastEvaluatedKey") {
                Some(key) if key.is_object() => start = Some(key.clone()),
                _ => return Ok(leases),
            }
        }
    }

    async fn create(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let body = json!({
            "TableName": self.table,
            "Item": to_item(lease),
            "ConditionExpression": "attribute_not_exists(leaseKey)",
        });
        match self.call("PutItem", body).await {
            Ok(_) => Ok(true),
            Err(error) => match judge(error, &lease.key) {
                LeaseError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn take(&self, seen: &Lease, owner: &str, hand_off: bool) -> Result<u64, LeaseError> {
        let next = seen.counter + 1;
        let mut values = json!({
            ":owner": text(owner),
            ":next": number(next),
            ":seen": number(seen.counter),
            ":one": number(1),
        });
        let mut set = "SET leaseOwner = :owner, leaseCounter = :next".to_string();
        if let (Some(previous), true) = (&seen.owner, hand_off) {
            set.push_str(", checkpointOwner = :previous");
            values[":previous"] = text(previous);
        }
        self.update(
            &seen.key,
            json!({
                "TableName": self.table,
                "Key": { "leaseKey": text(&seen.key) },
                "UpdateExpression": format!("{set} ADD ownerSwitchesSinceCheckpoint :one"),
                "ConditionExpression": "leaseCounter = :seen",
                "ExpressionAttributeValues": values,
            }),
        )
        .await?;
        Ok(next)
    }

    async fn hand_off(
        &self,
        key: &str,
        from: &str,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), LeaseError> {
        let mut values = json!({ ":from": text(from) });
        let expression = checkpoint_expression(checkpoint, &[], &mut values);
        self.update(
            key,
            json!({
                "TableName": self.table,
                "Key": { "leaseKey": text(key) },
                "UpdateExpression": expression,
                "ConditionExpression": "checkpointOwner = :from",
                "ExpressionAttributeValues": values,
            }),
        )
        .await
    }

    async fn renew(&self, key: &str, owner: &str, counter: u64) -> Result<u64, LeaseError> {
        let next = counter + 1;
        self.update(
            key,
            json!({
                "TableName": self.table,
                "Key": { "leaseKey": text(key) },
                "UpdateExpression": "SET leaseCounter = :next",
                "ConditionExpression": "leaseOwner = :owner AND leaseCounter = :seen",
                "ExpressionAttributeValues": {
                    ":owner": text(owner),
                    ":next": number(next),
                    ":seen": number(counter),
                },
            }),
        )
        .await?;
        Ok(next)
    }

    async fn checkpoint(&self, write: CheckpointWrite<'_>) -> Result<(), LeaseError> {
        let CheckpointWrite {
            key,
            owner,
            counter,
            checkpoint,
            children,
        } = write;
        let mut values = json!({
            ":owner": text(owner),
            ":seen": number(counter),
        });
        let expression = checkpoint_expression(Some(checkpoint), children, &mut values);
        self.update(
            key,
            json!({
                "TableName": self.table,
                "Key": { "leaseKey": text(key) },
                "UpdateExpression": expression,
                "ConditionExpression": "leaseOwner = :owner AND leaseCounter = :seen",
                "ExpressionAttributeValues": values,
            }),
        )
        .await
    }

    async fn release(&self, key: &str, owner: &str, counter: u64) -> Result<(), LeaseError> {
        self.update(
            key,
            json!({
                "TableName": self.table,
                "Key": { "leaseKey": text(key) },
                "UpdateExpression": "SET leaseCounter = :next REMOVE leaseOwner",
                "ConditionExpression": "leaseOwner = :owner AND leaseCounter = :seen",
                "ExpressionAttributeValues": {
                    ":owner": text(owner),
                    ":next": number(counter + 1),
                    ":seen": number(counter),
                },
            }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_use_kcl_attribute_names_and_types_and_round_trip() {
        let lease = Lease {
            owner: Some("host-1a2b".into()),
            counter: 7,
            owner_switches: 2,
            children: vec!["shardId-000000000003".into()],
            ..Lease::new(
                "shardId-000000000002",
                Checkpoint::Sequence {
                    sequence: "49590338271490256608559692538361571095921575989136588898".into(),
                    sub_sequence: 3,
                },
                vec!["shardId-000000000000".into(), "shardId-000000000001".into()],
                Some(("0".into(), "170141183460469231731687303715884105727".into())),
            )
        };
        let item = to_item(&lease);
        assert_eq!(item["leaseKey"], json!({ "S": "shardId-000000000002" }));
        assert_eq!(item["leaseOwner"], json!({ "S": "host-1a2b" }));
        assert_eq!(item["leaseCounter"], json!({ "N": "7" }));
        assert_eq!(item["checkpointSubSequenceNumber"], json!({ "N": "3" }));
        assert_eq!(item["ownerSwitchesSinceCheckpoint"], json!({ "N": "2" }));
        assert!(item["parentShardId"]["SS"].is_array());
        assert!(item["childShardIds"]["SS"].is_array());
        assert!(item["startingHashKey"]["S"].is_string());
        assert!(item["endingHashKey"]["S"].is_string());
        assert_eq!(from_item(&item).unwrap(), lease);
        // Empty sets are left out (DynamoDB rejects them); a released lease has no owner.
        let bare = Lease::new("s", Checkpoint::ShardEnd, Vec::new(), None);
        let item = to_item(&bare);
        assert!(item.get("parentShardId").is_none() && item.get("leaseOwner").is_none());
        assert_eq!(item["checkpoint"], json!({ "S": "SHARD_END" }));
        assert_eq!(from_item(&item).unwrap(), bare);
    }

    #[test]
    fn a_pinned_latest_is_at_timestamp_with_checkpoint_timestamp() {
        let pinned = Lease::new(
            "shardId-000000000000",
            Checkpoint::AtTimestamp {
                millis: Some(1_800_000_000_123),
            },
            Vec::new(),
            None,
        );
        let item = to_item(&pinned);
        assert_eq!(item["checkpoint"], json!({ "S": "AT_TIMESTAMP" }));
        assert_eq!(item["checkpointTimestamp"], json!({ "N": "1800000000123" }));
        assert_eq!(from_item(&item).unwrap(), pinned);
        // KCL's AT_TIMESTAMP has no time beside it; LATEST neither.
        for bare in [Checkpoint::AtTimestamp { millis: None }, Checkpoint::Latest] {
            let lease = Lease::new("s", bare, Vec::new(), None);
            let item = to_item(&lease);
            assert!(item.get("checkpointTimestamp").is_none(), "{item}");
            assert_eq!(from_item(&item).unwrap(), lease);
        }
        let error = from_item(&json!({
            "leaseKey": { "S": "s" },
            "checkpoint": { "S": "AT_TIMESTAMP" },
            "checkpointTimestamp": { "N": "soon" },
        }))
        .unwrap_err();
        assert!(error.contains("checkpointTimestamp"), "{error}");
    }

    #[test]
    fn checkpoint_writes_set_the_timestamp_or_remove_it() {
        let mut values = json!({});
        let pinned = Checkpoint::AtTimestamp { millis: Some(42) };
        let expression = checkpoint_expression(Some(&pinned), &[], &mut values);
        assert!(
            expression.contains("checkpointTimestamp = :timestamp"),
            "{expression}"
        );
        assert!(
            expression.ends_with("REMOVE checkpointOwner"),
            "{expression}"
        );
        assert_eq!(values[":timestamp"], json!({ "N": "42" }));
        assert_eq!(values[":checkpoint"], json!({ "S": "AT_TIMESTAMP" }));
        let mut values = json!({});
        let sequence = Checkpoint::Sequence {
            sequence: "123".into(),
            sub_sequence: 0,
        };
        let expression = checkpoint_expression(Some(&sequence), &[], &mut values);
        assert!(
            !expression.contains("checkpointTimestamp ="),
            "{expression}"
        );
        assert!(
            expression.ends_with("REMOVE checkpointOwner, checkpointTimestamp"),
            "{expression}"
        );
        assert!(values.get(":timestamp").is_none());
        // A handover without a checkpoint only ends the handover.
        let expression = checkpoint_expression(None, &[], &mut json!({}));
        assert_eq!(expression, "REMOVE checkpointOwner");
    }

    #[test]
    fn bad_items_name_the_attribute() {
        let error = from_item(&json!({ "leaseKey": { "S": "s" }, "leaseCounter": { "N": "x" } }))
            .unwrap_err();
        assert!(error.contains("leaseCounter"), "{error}");
        let error = from_item(&json!({ "leaseKey": { "S": "s" }, "checkpoint": { "S": "soon" } }))
            .unwrap_err();
        assert!(error.contains("soon"), "{error}");
    }
}
