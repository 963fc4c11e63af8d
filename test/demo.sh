#!/usr/bin/env bash
# make demo: a local Kinesis server, the connector, and (when it could be installed) Conduit
# running two pipelines: generator -> Kinesis, and Kinesis -> file. Everything runs on
# loopback with throw-away credentials, and everything started here is stopped on exit or
# Ctrl-C.
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
records="${DEMO_RECORDS:-200}"
stream=demo-orders

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

say() { printf 'demo: %s\n' "$*"; }

bash test/setup.sh
say "building the connector (release)"
cargo build --release --quiet
bin="$root/target/release/conduit-connector-kinesis"

read -r plain tls http grpc < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
python3 -c 'import json,sys; print(json.dumps({"server": {"key": open(sys.argv[1]).read(), "cert": open(sys.argv[2]).read()}}))' \
  "$work/key.pem" "$work/cert.pem" > "$work/server.json"

say "starting kinesis-local on 127.0.0.1:$plain with stream $stream (2 shards)"
KINESIS_MOCK_PLAIN_PORT=$plain KINESIS_MOCK_TLS_PORT=$tls KINESIS_MOCK_CERT_PATH="$work/server.json" \
  INITIALIZE_STREAMS="$stream:2" LOG_LEVEL=WARN \
  node test/kinesis-local/node_modules/kinesis-local/main.js > "$work/kinesis.log" 2>&1 &
pids+=($!)
endpoint="http://127.0.0.1:$plain"
for _ in $(seq 1 60); do
  if "$bin" consume "$stream" --endpoint-url "$endpoint" --mode polling --duration 1s >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done

show_records() {
  # A few records, shortened for the terminal.
  head -n 3 "$1" | cut -c1-160
}

if [[ -x .tools/bin/conduit ]]; then
  mkdir -p "$work/connectors" "$work/pipelines"
  cp "$bin" "$work/connectors/"
  cat > "$work/pipelines/demo.yaml" <<YAML
version: "2.2"
pipelines:
  - id: generator-to-kinesis
    status: running
    connectors:
      - id: generator
        type: source
        plugin: builtin:generator
        settings:
          format.type: structured
          format.options.id: int
          format.options.customer: string
          format.options.placed_at: time
          operations: create
          rate: "50"
          recordCount: "$records"
      - id: kinesis
        type: destination
        plugin: standalone:kinesis
        settings:
          streamName: $stream
          aws.url: $endpoint
          aws.region: us-east-1
          aws.accessKeyId: demo
          aws.secretAccessKey: demo
  - id: kinesis-to-file
    status: running
    connectors:
      - id: kinesis
        type: source
        plugin: standalone:kinesis
        settings:
          streamName: $stream
          aws.url: $endpoint
          aws.region: us-east-1
          aws.accessKeyId: demo
          aws.secretAccessKey: demo
          unwrapOpenCDC: "true"
      - id: file
        type: destination
        plugin: builtin:file
        settings:
          path: $work/out.jsonl
YAML
  say "starting Conduit (HTTP API on 127.0.0.1:$http)"
  (cd "$work" && exec "$root/.tools/bin/conduit" run --connectors.path "$work/connectors" \
     --pipelines.path "$work/pipelines" --db.type inmemory \
     --api.http.address "127.0.0.1:$http" --api.grpc.address "127.0.0.1:$grpc" \
     --log.format json > "$work/conduit.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 120); do
    sent=$("$bin" consume "$stream" --endpoint-url "$endpoint" --mode polling --duration 1s 2>/dev/null | wc -l || true)
    received=$(wc -l < "$work/out.jsonl" 2>/dev/null || echo 0)
    say "records in Kinesis: $sent / $records, written to the file by the second pipeline: $received"
    [[ "$received" -ge "$records" ]] && break
    sleep 2
  done
  if [[ "$received" -lt "$records" ]]; then
    say "only $received of $records records arrived; Conduit's errors:"
    grep -E '"level":"error"|ERR' "$work/conduit.log" | head -n 5 | cut -c1-400 >&2 || true
    exit 1
  fi
  say "first records in $work/out.jsonl:"
  show_records "$work/out.jsonl"
else
  say "Conduit v0.19.0 is not installed (see the setup line above); showing the same connector"
  say "code through its produce / consume commands instead"
  python3 - "$records" > "$work/orders.jsonl" <<'PY'
import json, random, sys
random.seed(7)
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": i, "customer": f"c{random.randint(1, 20)}", "total": round(random.random() * 100, 2)}))
PY
  "$bin" produce "$stream" "$work/orders.jsonl" --endpoint-url "$endpoint" --partition-key customer --op-type --op-timestamp
  say "produced $records records; reading them back from every shard"
  "$bin" consume "$stream" --endpoint-url "$endpoint" --mode polling --duration 5s --max-records "$records" > "$work/out.jsonl"
  say "consumed $(wc -l < "$work/out.jsonl") records; the first ones:"
  show_records "$work/out.jsonl"
fi
say "done; stopping everything"
