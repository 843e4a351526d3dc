//! Helpers shared by the integration tests: where the real services are, random names,
//! and small Kafka/S3 clients that check what the pipeline did.

#![allow(dead_code)]

pub mod bars;
mod bucket;
pub mod fake_tradingview;
mod kafka;
pub mod latency_proxy;
pub mod poison;
pub mod process;
mod runner;
mod s3;
pub mod secure;
pub mod sentinel;
pub mod topic;

pub use bucket::*;
pub use kafka::*;
pub use runner::*;
pub use s3::*;
pub use topic::read_topic_to_end;
