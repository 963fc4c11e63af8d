#!/usr/bin/env python3
"""De-aggregates Kinesis records with the aws-kinesis-agg package (an independent reader of the
KPL aggregation format) for tests/aggregation.rs, which checks what the destination wrote.

stdin:  one JSON object per Kinesis record, in shard order:
        {"shard": str, "sequence": str, "partition_key": str, "data_b64": base64 str}
stdout: one JSON object per user record, in order:
        {"shard": str, "sequence": str, "partition_key": str, "explicit_hash_key": str | null,
         "data_b64": base64 str, "sub_sequence": int | null}

The package reports the explicit hash key table's first entry for a user record that has no
explicit_hash_key_index when the table is not empty (it does not check HasField; the KCL does).
So the presence of the index is read from the package's own protobuf message for that record.
"""

import base64
import json
import sys

import aws_kinesis_agg
# The deaggregator puts the package's directory on sys.path, which its generated messages_pb2
# needs (it imports config_pb2 as a top-level module): import it first.
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from aws_kinesis_agg import messages_pb2


def has_hash_key_index(data):
    """Per user record of an aggregate: whether it carries an explicit_hash_key_index."""
    body = data[len(aws_kinesis_agg.MAGIC):-aws_kinesis_agg.DIGEST_SIZE]
    message = messages_pb2.AggregatedRecord()
    message.ParseFromString(body)
    return [record.HasField("explicit_hash_key_index") for record in message.records]


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        stored = json.loads(line)
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "sequenceNumber": stored["sequence"],
                "approximateArrivalTimestamp": 0,
                "partitionKey": stored["partition_key"],
                "data": stored["data_b64"],
            }
        }
        users = list(iter_deaggregate_records([record]))
        aggregated = [u for u in users if u["kinesis"].get("aggregated")]
        present = has_hash_key_index(base64.b64decode(stored["data_b64"])) if aggregated else []
        for index, user in enumerate(users):
            kinesis = user["kinesis"]
            data = kinesis["data"]
            if isinstance(data, bytes):
                data = data.decode("ascii")
            explicit = kinesis.get("explicitHashKey") if kinesis.get("aggregated") else None
            if kinesis.get("aggregated") and not present[index]:
                explicit = None
            json.dump(
                {
                    "shard": stored["shard"],
                    "sequence": stored["sequence"],
                    "partition_key": kinesis["partitionKey"],
                    "explicit_hash_key": explicit,
                    "data_b64": data,
                    "sub_sequence": kinesis.get("subSequenceNumber"),
                },
                sys.stdout,
            )
            sys.stdout.write("\n")


if __name__ == "__main__":
    main()
