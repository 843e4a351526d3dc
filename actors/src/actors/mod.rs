//! The actors: Fetchers, the Publisher, the KafkaReader, the S3Writer and the Supervisor
//! that starts, watches and restarts them. Each keeps its configuration beside it.

pub mod fetcher;
pub mod publisher;
pub mod reader;
pub mod supervisor;
pub mod writer;
