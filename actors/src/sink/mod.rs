//! Object stores the S3Writer writes to: S3-compatible storage, or a local directory
//! with the same key layout. Both write atomically: an object is either absent or whole.

mod local;
mod s3;

use futures::future::BoxFuture;

pub use local::LocalDirSink;
pub use s3::{client as s3_client, S3Sink};

use crate::config::{SinkConfig, SinkKind};
use crate::key::ObjectKey;

/// A failed store operation; the writer retries it with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {target} failed: {detail}")]
pub struct SinkError {
    /// What was attempted (`PUT`, `create bucket`, …).
    pub operation: &'static str,
    /// The bucket/key or path.
    pub target: String,
    /// The store's answer.
    pub detail: String,
}

/// What a successful put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist and was created.
    Created,
    /// An identical object was already there (a replay); nothing changed.
    Unchanged,
    /// An object with other bytes was replaced (a newer version of the same bar).
    Replaced,
}

/// An object store.
pub trait ObjectSink: Send + Sync + 'static {
    /// Makes the store ready (creates the bucket or directory when allowed).
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>>;
    /// Stores `body` under `key`, atomically.
    fn put(&self, key: ObjectKey, body: Vec<u8>) -> BoxFuture<'static, Result<PutOutcome, SinkError>>;
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
            Err(SinkError { operation: "LIST", target, detail: "not supported by this store".into() })
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
