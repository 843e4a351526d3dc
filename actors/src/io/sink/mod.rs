//! Object stores the S3Writer writes to: S3-compatible storage, or a local directory
//! with the same key layout. Both write atomically: an object is either absent or whole.
//!
//! Every object remembers the record that wrote it ([`Origin`]: topic, partition, offset),
//! and a store never lets an older record of a partition replace a newer one's object
//! (DESIGN.md rule 10). Writes of one key are ordered inside a writer, but a write that
//! outlived its assignment (a zombie) or a replay after a crash can still arrive late;
//! without this fence it would roll the object back to an older version after the group
//! had committed past it.

mod config;
mod local;
mod s3;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

pub use config::{ReplacePolicy, SinkConfig, SinkKind};
pub use local::LocalDirSink;
pub use s3::{client as s3_client, S3Sink};

use crate::contract::key::ObjectKey;
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};

/// A failed store operation; the writer retries it with backoff (a refusal at start ends
/// the run instead: see [`SinkError::refusal`]).
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

impl SinkError {
    /// The refusal this failure is — the store answers, but will not serve the pipeline as
    /// configured — with the whole message (its hint names the setting to fix); None for
    /// an outage or anything else retrying may cure.
    pub fn refusal(&self) -> Option<Refusal> {
        self.kind.refusal().map(|kind| Refusal::store(kind, self.to_string()))
    }
}

/// What kind of failure a store reported. Writes retry every kind (a partition waits, it
/// never skips), but an operator acts differently on each: the metric
/// `egx_object_write_errors_total{class}` and the hint in the message tell them apart, and
/// the refusals among them end a run at start (see [`FailureKind::refusal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The store's TLS certificate is not trusted (unknown issuer, expired, another name).
    Tls,
    /// The access keys were refused: a wrong secret (403 SignatureDoesNotMatch), an
    /// unknown access key (403 InvalidAccessKeyId; versitygw: 404 XAdminUserNotFound), an
    /// expired session token.
    Authentication,
    /// Authenticated but not authorized: 403 AccessDenied and other 403s, KMS key denials,
    /// a local directory the process may not write. Its metric class keeps the name
    /// `forbidden`.
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
            Self::Tls => "tls",
            Self::Authentication => "authentication",
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
            Self::Tls => Some(
                "the store's certificate is not trusted: set sink.ca_bundle (or AWS_CA_BUNDLE) to the CA that signed it",
            ),
            Self::Authentication => Some(
                "the store refused the access keys: check sink.access_key_id and the secret (AWS_SECRET_ACCESS_KEY / EGX__SINK__SECRET_ACCESS_KEY)",
            ),
            Self::Forbidden => Some(
                "not authorized: the role needs s3:ListBucket and s3:PutObject on the bucket, s3:GetObject unless sink.replace = \"always\", s3:CreateBucket with sink.create_bucket, and kms:GenerateDataKey and kms:Decrypt on the key with aws:kms (README: S3 permissions); a local directory must be writable",
            ),
            Self::NotFound => Some("not found: check sink.bucket, or allow sink.create_bucket"),
            Self::Throttled => Some("the store asks to slow down: lower writer.max_concurrent_writes"),
            Self::Unreachable => Some("no answer: check sink.endpoint, the network and TLS"),
            Self::ServerError | Self::Other => None,
        }
    }

    /// The refusal this kind is: the store answered, and retrying cannot help until an
    /// operator changes a setting. None for outages (no answer, 5xx, throttling) and for
    /// a missing bucket, which the caller judges by `sink.create_bucket`.
    pub fn refusal(self) -> Option<RefusalKind> {
        match self {
            Self::Tls => Some(RefusalKind::Tls),
            Self::Authentication => Some(RefusalKind::Authentication),
            Self::Forbidden => Some(RefusalKind::Authorization),
            Self::NotFound | Self::Throttled | Self::ServerError | Self::Unreachable | Self::Other => None,
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
pub async fn build(cfg: &SinkConfig) -> Arc<dyn ObjectSink> {
    match cfg.kind {
        SinkKind::S3 => Arc::new(S3Sink::new(cfg).await),
        SinkKind::Local => Arc::new(LocalDirSink::new(cfg.local_dir.clone())),
    }
}

/// The dependency name of the object store in metrics and `/readyz`.
const STORE: &str = "store";

/// An object store whose refusals are noted in the metrics while they last, so that
/// `/readyz` says why the store takes no writes (a wrong key, an untrusted certificate, a
/// missing permission) instead of "not reachable". Any other answer clears the note: an
/// outage is then reported as one. A refusal of a write is only cleared by a write, as
/// the periodic check (HEAD bucket) may pass while writes are still refused.
pub(crate) struct WatchedSink {
    inner: Arc<dyn ObjectSink>,
    metrics: Arc<Metrics>,
    write_refused: Arc<AtomicBool>,
}

impl WatchedSink {
    /// Watches `inner`, noting its refusals in `metrics`.
    pub(crate) fn new(inner: Arc<dyn ObjectSink>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics, write_refused: Arc::default() }
    }

    /// `fut` with its refusal, or the absence of one, noted when it ends.
    fn noted<T: Send + 'static>(
        &self,
        write: bool,
        fut: BoxFuture<'static, Result<T, SinkError>>,
    ) -> BoxFuture<'static, Result<T, SinkError>> {
        let (metrics, write_refused) = (self.metrics.clone(), self.write_refused.clone());
        Box::pin(async move {
            let result = fut.await;
            match result.as_ref().err().and_then(SinkError::refusal) {
                Some(refusal) => {
                    metrics.refused(STORE, refusal);
                    if write {
                        write_refused.store(true, Ordering::Relaxed);
                    }
                }
                None if write => {
                    write_refused.store(false, Ordering::Relaxed);
                    metrics.accepted(STORE);
                }
                None if !write_refused.load(Ordering::Relaxed) => metrics.accepted(STORE),
                None => {}
            }
            result
        })
    }
}

impl ObjectSink for WatchedSink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        self.noted(false, self.inner.prepare())
    }

    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        self.noted(true, self.inner.put(key, body, origin))
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn check(&self) -> BoxFuture<'static, Result<String, SinkError>> {
        self.inner.check()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, SinkError>> {
        self.inner.list(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::collections::VecDeque;
    use std::sync::Mutex;

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

    fn failure(kind: FailureKind) -> SinkError {
        SinkError { operation: "PUT", target: "s3://b/k".into(), detail: "answer".into(), kind }
    }

    #[test]
    fn refusals_name_the_setting_and_outages_are_none() {
        let tls = failure(FailureKind::Tls).refusal().unwrap();
        assert_eq!(tls.kind, RefusalKind::Tls);
        assert_eq!(
            tls.to_string(),
            "the object store refused (TLS failed): PUT s3://b/k failed: answer (the store's certificate is not trusted: set sink.ca_bundle (or AWS_CA_BUNDLE) to the CA that signed it)"
        );
        let keys = failure(FailureKind::Authentication).refusal().unwrap();
        assert!(keys.to_string().contains("refused the access keys: check sink.access_key_id"), "{keys}");
        let denied = failure(FailureKind::Forbidden).refusal().unwrap();
        assert_eq!(denied.kind, RefusalKind::Authorization);
        assert!(
            denied.to_string().contains("s3:PutObject") && denied.to_string().contains("kms:GenerateDataKey")
        );
        for outage in [
            FailureKind::Unreachable,
            FailureKind::ServerError,
            FailureKind::Throttled,
            FailureKind::NotFound,
            FailureKind::Other,
        ] {
            assert_eq!(failure(outage).refusal(), None, "{outage:?}");
        }
        assert_eq!(FailureKind::Forbidden.as_str(), "forbidden", "alert rules use this class");
    }

    /// A store answering with the results it is given, in order.
    #[derive(Default)]
    struct Scripted(Mutex<VecDeque<Result<(), FailureKind>>>);

    impl Scripted {
        fn next(&self) -> BoxFuture<'static, Result<(), SinkError>> {
            let next = self.0.lock().unwrap().pop_front().unwrap();
            async move { next.map_err(failure) }.boxed()
        }
    }

    impl ObjectSink for Scripted {
        fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
            self.next()
        }
        fn put(
            &self,
            _: ObjectKey,
            _: Vec<u8>,
            _: Origin,
        ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
            self.next().map(|r| r.map(|()| PutOutcome::Created)).boxed()
        }
        fn location(&self) -> String {
            "s3://b".into()
        }
    }

    #[tokio::test]
    async fn refusals_are_kept_for_readiness_while_they_last() {
        use FailureKind::{Authentication, Tls, Unreachable};
        let key = || {
            let bar = br#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#;
            crate::contract::key::KeyTemplate::default()
                .render(&crate::contract::record::MarketRecord::decode(Some(bar), 1024).unwrap())
        };
        let script =
            [Err(Tls), Ok(()), Err(Authentication), Ok(()), Err(Unreachable), Err(Authentication), Ok(())];
        let metrics = Arc::new(Metrics::new().unwrap());
        let sink = WatchedSink::new(Arc::new(Scripted(Mutex::new(script.into()))), metrics.clone());
        let refused = || metrics.refusal("store").map(|r| r.kind);
        let _ = sink.prepare().await;
        assert_eq!(refused(), Some(RefusalKind::Tls), "a refused check is noted");
        let _ = sink.prepare().await;
        assert_eq!(refused(), None, "and cleared by the next check that passes");
        let _ = sink.put(key(), Vec::new(), at("t", 0, 1)).await;
        assert_eq!(refused(), Some(RefusalKind::Authentication), "a refused write is noted");
        let _ = sink.prepare().await;
        assert_eq!(refused(), Some(RefusalKind::Authentication), "a passing check does not clear it");
        let _ = sink.put(key(), Vec::new(), at("t", 0, 1)).await;
        assert_eq!(refused(), None, "an outage is not a refusal");
        let _ = sink.put(key(), Vec::new(), at("t", 0, 1)).await;
        let _ = sink.put(key(), Vec::new(), at("t", 0, 1)).await;
        assert_eq!(refused(), None, "a write that succeeds clears it");
    }
}
