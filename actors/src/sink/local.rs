//! A local directory as an object store: same keys as S3, atomic writes by writing a
//! temporary file in the target directory, syncing it, and renaming it into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{ObjectSink, PutOutcome, SinkError};
use crate::key::ObjectKey;

/// Writes objects as files below a directory.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
}

impl LocalDirSink {
    /// A sink writing below `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn put_blocking(root: &Path, key: &ObjectKey, body: &[u8]) -> Result<PutOutcome, SinkError> {
        // Keys are validated relative paths without `..` (see `KeyTemplate`), so joining
        // them cannot leave the root.
        let path = root.join(key.as_str());
        let err = |operation, e: std::io::Error| SinkError {
            operation,
            target: path.display().to_string(),
            detail: e.to_string(),
        };
        let existing = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err("read", e)),
        };
        if existing.as_deref() == Some(body) {
            return Ok(PutOutcome::Unchanged);
        }
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir).map_err(|e| err("create directory", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".egx-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| err("create temporary file", e))?;
        tmp.write_all(body).map_err(|e| err("write", e))?;
        tmp.as_file().sync_all().map_err(|e| err("sync", e))?;
        tmp.persist(&path).map_err(|e| err("rename", e.error))?;
        Ok(if existing.is_some() { PutOutcome::Replaced } else { PutOutcome::Created })
    }
}

/// Every file below `root` whose relative path starts with `prefix` (temporary files excluded).
fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<String>, SinkError> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SinkError {
                    operation: "LIST",
                    target: dir.display().to_string(),
                    detail: e.to_string(),
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let key = rel.to_string_lossy().replace('\\', "/");
                let temporary = rel.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".egx-"));
                if key.starts_with(prefix) && !temporary {
                    keys.push(key);
                }
            }
        }
    }
    keys.sort();
    Ok(keys)
}

impl ObjectSink for LocalDirSink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        let root = self.root.clone();
        async move {
            tokio::fs::create_dir_all(&root).await.map_err(|e| SinkError {
                operation: "create directory",
                target: root.display().to_string(),
                detail: e.to_string(),
            })
        }
        .boxed()
    }

    fn put(&self, key: ObjectKey, body: Vec<u8>) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        let root = self.root.clone();
        async move {
            let target = key.to_string();
            tokio::task::spawn_blocking(move || Self::put_blocking(&root, &key, &body))
                .await
                .unwrap_or_else(|e| Err(SinkError { operation: "PUT", target, detail: e.to_string() }))
        }
        .boxed()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, SinkError>> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        async move {
            let target = root.display().to_string();
            tokio::task::spawn_blocking(move || list_blocking(&root, &prefix))
                .await
                .unwrap_or_else(|e| Err(SinkError { operation: "LIST", target, detail: e.to_string() }))
        }
        .boxed()
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyTemplate;
    use crate::record::MarketRecord;

    fn key() -> ObjectKey {
        let r = MarketRecord::decode(
            Some(br#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":1,"high":1,"low":1,"close":1}"#),
            1024,
        )
        .unwrap();
        KeyTemplate::default().render(&r)
    }

    #[actix_rt::test]
    async fn writes_are_atomic_and_replays_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path().to_path_buf());
        sink.prepare().await.unwrap();
        assert_eq!(sink.put(key(), b"v1".to_vec()).await.unwrap(), PutOutcome::Created);
        assert_eq!(sink.put(key(), b"v1".to_vec()).await.unwrap(), PutOutcome::Unchanged);
        assert_eq!(sink.put(key(), b"v2".to_vec()).await.unwrap(), PutOutcome::Replaced);
        let path = dir.path().join(key().as_str());
        assert_eq!(std::fs::read(&path).unwrap(), b"v2");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, ["100000000000_1D_ohlcv.json"], "no temporary files left behind");
    }
}
