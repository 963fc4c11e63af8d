#!/usr/bin/env python3
"""Aggregates user records with the aws-kinesis-agg package (an independent implementation of
the KPL aggregation format) for tests/deaggregate_kpl.rs.

stdin:  one JSON object per line: {"partition_key": str, "explicit_hash_key": str | null,
        "data_b64": base64 str}
stdout: one JSON object per aggregated Kinesis record, in order:
        {"partition_key": str, "explicit_hash_key": str | null, "data_b64": base64 str,
         "user_records": int}

Options: --max-size N  limit of one aggregated record in bytes (default: the package's 1 MiB),
         so tests can make the aggregator start new records often.
"""

import argparse
import base64
import json
import sys

from aws_kinesis_agg.aggregator import RecordAggregator


def emit(agg_record):
    partition_key, explicit_hash_key, data = agg_record.get_contents()
    json.dump(
        {
            "partition_key": partition_key,
            "explicit_hash_key": explicit_hash_key,
            "data_b64": base64.b64encode(data).decode("ascii"),
            "user_records": agg_record.get_num_user_records(),
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=None)
    args = parser.parse_args()

    aggregator = (
        RecordAggregator(max_size=args.max_size)
        if args.max_size is not None
        else RecordAggregator()
    )
    given = 0
    emitted = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        record = json.loads(line)
        given += 1
        full = aggregator.add_user_record(
            record["partition_key"],
            base64.b64decode(record["data_b64"]),
            record.get("explicit_hash_key"),
        )
        if full is not None:
            # With a record that does not fit even into an empty aggregate, the package hands
            # back an empty aggregate and silently drops the record: refuse such input.
            if full.get_num_user_records() == 0:
                sys.exit("aggregate.py: user record %d does not fit into --max-size" % given)
            emitted += full.get_num_user_records()
            emit(full)
    rest = aggregator.clear_and_get()
    if rest is not None:
        emitted += rest.get_num_user_records()
        emit(rest)
    if emitted != given:
        sys.exit("aggregate.py: %d user records in, %d aggregated" % (given, emitted))


if __name__ == "__main__":
    main()
