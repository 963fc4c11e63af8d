//! Hostile bytes never panic (issue #13 item 5): property tests for every decoder of bytes that
//! come from outside the process. Each gets arbitrary bytes and damaged valid encodings
//! (flipped, inserted, deleted, truncated bytes, huge length fields) and must answer with a
//! value or an error whose text names what was wrong, without asking for memory that only a
//! length field justifies; valid encodings round-trip. The inputs in `tests/corpus/<decoder>/`
//! are replayed on every run.

#[global_allocator]
static PROBE: common::Probe = common::Probe;

#[path = "hostile_bytes/aws_answers.rs"]
mod aws_answers;
#[path = "hostile_bytes/common.rs"]
mod common;
#[path = "hostile_bytes/deaggregate.rs"]
mod deaggregate;
#[path = "hostile_bytes/eventstream.rs"]
mod eventstream;
#[path = "hostile_bytes/input.rs"]
mod input;
#[path = "hostile_bytes/position.rs"]
mod position;
#[path = "hostile_bytes/schema.rs"]
mod schema;
#[path = "hostile_bytes/templates.rs"]
mod templates;
