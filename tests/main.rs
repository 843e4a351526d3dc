//! Integration tests. Those marked `#[ignore]` need the real Kafka broker and S3 server
//! that `scripts/test.sh` starts; plain `cargo test` runs the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compose;
mod dead_letter;
mod delivery;
mod guarantees;
mod interop;
mod operations;
mod ops_files;
mod pipeline;
mod producer_window;
mod reliability;
mod secrets;
mod secure_kafka;
mod secure_services;
mod secure_store;
mod smoke;
mod sources;
mod store_fence;
mod support;
mod tradingview;
