//! Object stores the S3Writer writes to: S3-compatible storage, or a local directory
//! with the same key layout. Both write atomically: an object is either absent or whole.
//!
//! Every object remembers the record that wrote it ([`Origin`]: topic, partition, offset),
//! and a store never lets an older record of a partition replace a newer one's object
//! (DESIGN.md rule 10). Writes of one key are ordered inside a writer, but a write that
//! outlived its assignment (a zombie) or a replay after a crash can still arrive late;
//! without this fence it would roll the object back to an older version after the group
//! had committed past it.

mod local;
mod s3;

use futures::future::BoxFuture;

pub use local::LocalDirSink;
pub use s3::{client as s3_client, S3Sink};

use crate::config::{SinkConfig, SinkKind};
use crate::key::ObjectKey;

/// A failed store operation; the writer retries it with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {target} failed: {detail}{}", kind.hint().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct SinkError {
    /// What was attempted (`PUT`, `create bucket`, …).
    pub operation: &'static str,
    /// The bucket/key or path.
    pub target: String,
    /// The store's answer.
    pub detail: String,
    /// What kind of failure it is (metrics, and the hint in the message).
    pub kind: FailureKind,
}

/// What kind of failure a store reported. Writes retry every kind (a partition waits, it
/// never skips), but an operator acts differently on each: the metric
/// `egx_object_write_errors_total{class}` and the hint in the message tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// 401/403: credentials, permissions or the KMS key.
    Forbidden,
    /// 404: the bucket (or directory) is missing.
    NotFound,
    /// 429, or 503 SlowDown: the store asks to slow down.
    Throttled,
    /// Another 5xx answer.
    ServerError,
    /// No answer: connection refused, DNS, TLS, time-out.
    Unreachable,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// The class's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Unreachable => "unreachable",
            Self::Other => "other",
        }
    }

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Forbidden,
            404 => Self::NotFound,
            429 | 503 => Self::Throttled,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }

    /// What to check, for the kinds an operator can fix.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            Self::Forbidden => Some(
                "forbidden: check the credentials (sink.access_key_id, AWS_*) and the role's S3 and KMS permissions",
            ),
            Self::NotFound => Some("not found: check sink.bucket, or allow sink.create_bucket"),
            Self::Throttled => Some("the store asks to slow down: lower writer.max_concurrent_writes"),
            Self::Unreachable => Some("no answer: check sink.endpoint, the network and TLS trust"),
            Self::ServerError | Self::Other => None,
        }
    }
}

/// What a successful put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist and was created.
    Created,
    /// The object was already written by this record (a replay); nothing changed.
    Unchanged,
    /// An object written by an older record was replaced (a newer version of the bar).
    Replaced,
    /// The object was written by a newer record of the same partition; nothing changed,
    /// and the record counts as written (its version is superseded).
    Superseded,
}

impl PutOutcome {
    /// The outcome's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Unchanged => "unchanged",
            Self::Replaced => "replaced",
            Self::Superseded => "superseded",
        }
    }
}

/// The Kafka record an object's bytes come from, stored with the object (S3 user metadata
/// `egx-origin`, an extended attribute on local files) as `topic/partition/offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
}

/// How the record being written relates to the one that wrote the existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Written by a later record of the same partition: keep it.
    Newer,
    /// Written by this very record: nothing to do.
    Same,
    /// Written by an earlier record of the same partition: replace it.
    Older,
    /// Not comparable (no origin stored, as with objects of the original consumer, or
    /// another topic or partition): compare the bytes; if they differ, replace it.
    Unknown,
}

impl Origin {
    /// The stored form, `topic/partition/offset` (topic names cannot contain `/`).
    pub fn encode(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    /// Parses the stored form; None when it is not one.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, '/');
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next().filter(|t| !t.is_empty())?.to_string();
        Some(Self { topic, partition, offset })
    }

    /// How this record relates to the one that wrote an existing object.
    pub fn against(&self, stored: Option<&Origin>) -> Existing {
        match stored {
            Some(s) if s.topic == self.topic && s.partition == self.partition => {
                match s.offset.cmp(&self.offset) {
                    std::cmp::Ordering::Greater => Existing::Newer,
                    std::cmp::Ordering::Equal => Existing::Same,
                    std::cmp::Ordering::Less => Existing::Older,
                }
            }
            _ => Existing::Unknown,
        }
    }
}

/// An object store.
pub trait ObjectSink: Send + Sync + 'static {
    /// Makes the store ready (creates the bucket or directory when allowed).
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>>;
    /// Stores `body` under `key`, atomically, unless the object there was written by a
    /// newer record of `origin`'s partition ([`PutOutcome::Superseded`]).
    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>>;
    /// Where objects go, for people (`s3://bucket`, a directory).
    fn location(&self) -> String;
    /// Checks that the store answers, without changing anything; a short description.
    fn check(&self) -> BoxFuture<'static, Result<String, SinkError>> {
        let (prepare, location) = (self.prepare(), self.location());
        Box::pin(async move { prepare.await.map(|()| location) })
    }
    /// Every key under `prefix`, sorted (operators' `stored` command). Stores that
    /// cannot list answer with an error.
    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, SinkError>> {
        let target = format!("{}/{prefix}", self.location());
        Box::pin(async move {
            Err(SinkError {
                operation: "LIST",
                target,
                detail: "not supported by this store".into(),
                kind: FailureKind::Other,
            })
        })
    }
}

/// Builds the sink a config asks for.
pub async fn build(cfg: &SinkConfig) -> std::sync::Arc<dyn ObjectSink> {
    match cfg.kind {
        SinkKind::S3 => std::sync::Arc::new(S3Sink::new(cfg).await),
        SinkKind::Local => std::sync::Arc::new(LocalDirSink::new(cfg.local_dir.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, partition: i32, offset: i64) -> Origin {
        Origin { topic: topic.into(), partition, offset }
    }

    #[test]
    fn an_older_offset_never_wins_and_only_the_same_partition_compares() {
        let ours = at("egx_market_data", 2, 10);
        assert_eq!(ours.against(Some(&at("egx_market_data", 2, 11))), Existing::Newer);
        assert_eq!(ours.against(Some(&at("egx_market_data", 2, 10))), Existing::Same);
        assert_eq!(ours.against(Some(&at("egx_market_data", 2, 9))), Existing::Older);
        assert_eq!(ours.against(Some(&at("egx_market_data", 1, 99))), Existing::Unknown);
        assert_eq!(ours.against(Some(&at("other", 2, 99))), Existing::Unknown);
        assert_eq!(ours.against(None), Existing::Unknown);
    }

    #[test]
    fn origins_round_trip_and_garbage_is_not_one() {
        let o = at("egx.market_data-1", 0, 1_234_567);
        assert_eq!(o.encode(), "egx.market_data-1/0/1234567");
        assert_eq!(Origin::decode(&o.encode()), Some(o));
        for bad in ["", "x", "t/1", "/1/2", "t/x/2", "t/1/y"] {
            assert_eq!(Origin::decode(bad), None, "{bad:?}");
        }
    }
}
