//! What every configuration section shares: the error that names a bad key, and
//! [`Secret`]. The sections live beside what they configure (`io::kafka::KafkaConfig`,
//! `io::sink::SinkConfig`, `actors::writer::WriterConfig`, …). Every field has a default,
//! unknown fields are refused, and `validate()` runs before any client is built, naming
//! the key of a bad value. Field docs are the user docs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A configuration error naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `kafka.partitions`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), reason: reason.into() }
}

/// A secret value (password, secret key). Never printed: `Debug` and `Display` show
/// `<redacted>`, and serializing it writes `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    /// Accepts only a string, and never repeats a wrongly typed value in the error.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted string (the value given is not shown)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(not_text())
            }
        }
        d.deserialize_string(Text)
    }
}

/// The error for a secret of the wrong type; it never contains the value.
fn not_text<E: serde::de::Error>() -> E {
    E::custom("a secret must be a quoted string (the value given is not shown)")
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for handing to a client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::writer::WriterConfig;
    use crate::io::kafka::{KafkaConfig, SecurityProtocol};
    use crate::io::sink::{SinkConfig, SinkKind};

    #[test]
    fn secrets_never_print() {
        let cfg = KafkaConfig { sasl_password: Secret::new("hunter2-sentinel"), ..KafkaConfig::default() };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&cfg).unwrap().contains("hunter2"));
        assert_eq!(cfg.sasl_password.expose(), "hunter2-sentinel");
    }

    #[test]
    fn validation_names_the_key() {
        let bad = KafkaConfig { partitions: 0, ..KafkaConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "kafka.partitions");
        let bad = SinkConfig { kind: SinkKind::S3, bucket: "Bad_Bucket".into(), ..SinkConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "sink.bucket");
        let bad = SinkConfig { prefix: "../up".into(), ..SinkConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "sink.prefix");
        let bad = WriterConfig { retry_max_ms: 1, ..WriterConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "writer.retry_max_ms");
        let bad = KafkaConfig { security_protocol: SecurityProtocol::SaslSsl, ..KafkaConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "kafka.sasl_username");
    }

    #[test]
    fn the_dead_letter_topic_follows_the_topic_unless_named() {
        let mut cfg = KafkaConfig { topic: "bars".into(), ..KafkaConfig::default() };
        assert_eq!(cfg.dlq_topic(), "bars.dlq");
        cfg.dead_letter_topic = "refused".into();
        assert_eq!(cfg.dlq_topic(), "refused");
        cfg.dead_letter_topic = "bars".into();
        assert_eq!(cfg.validate().unwrap_err().key, "kafka.dead_letter_topic");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<KafkaConfig>(r#"{"bootstrap_server":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `bootstrap_server`"), "{err}");
    }
}
