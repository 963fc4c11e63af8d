# Everything a fresh machine needs beyond the Rust, Go and Node toolchains is installed by
# test/setup.sh (kinesis-local from npm, the go-plugin host peer, Conduit when available).

CARGO ?= cargo
export AWS_EC2_METADATA_DISABLED := true

# demo: a local Kinesis server, the connector and Conduit (when installable), end to end
.PHONY: demo all build release setup test test-unit test-integration generate lint fmt clean bench soak

all: build

demo:
	bash test/demo.sh

build:
	$(CARGO) build

release:
	$(CARGO) build --release

setup:
	bash test/setup.sh

## test: unit tests, protocol harness, go-plugin host tests and integration tests
test: setup
	$(CARGO) test --workspace --lib --bins --tests --no-fail-fast

## test-unit: tests that need no server
test-unit:
	$(CARGO) test --workspace --lib --bins

## test-integration: tests that start kinesis-local, the go-plugin host or Conduit
test-integration: setup
	$(CARGO) test --workspace --tests

## generate: rewrite connector.yaml and the README parameter tables from src/spec.rs
generate:
	UPDATE_GENERATED=1 $(CARGO) test --test generated_files

## bench: destination and source benchmarks (release build): throughput, CPU per record and
## peak RSS of the plugin against an in-process bench endpoint, a direct AWS SDK baseline and
## kinesis-local; the source benchmark also checks flow control with a slow reader; the conduit
## benchmark runs generator → destination in the real Conduit with this and the Go connector
bench: setup
	$(CARGO) bench --bench destination
	$(CARGO) bench --bench source
	$(CARGO) bench --bench conduit

## soak: Kinesis → Kinesis through the connector in the real Conduit for SOAK_DURATION (15m)
## at SOAK_RATE records/s (30), with throttling, dropped connections and a reshard; fails
## when a record is lost. Not part of test or bench. The report is printed and written to
## target/soak/report.md. Every SOAK_* variable of the environment is passed through.
soak: setup
	$(CARGO) bench --bench soak

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
