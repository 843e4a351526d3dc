//! Input and output: Kafka clients and topics (`kafka`), object stores (`sink`) and market
//! data sources (`source`), each with its configuration beside it.

pub mod kafka;
pub mod sink;
pub mod source;
