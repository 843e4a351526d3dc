//! A local directory as an object store: same keys as S3, atomic writes by writing a
//! temporary file in the target directory, syncing it, and renaming it into place; then
//! the directory (and every directory the write created) is synced too, so that an
//! acknowledged object survives a power loss — a rename is only durable once its
//! directory is.
//!
//! The record that wrote a file is kept in its extended attribute `user.egx.origin`; as
//! with S3, an older record of a partition never replaces a newer one's file. On a file
//! system without user extended attributes files are compared by bytes instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Existing, FailureKind, ObjectSink, Origin, PutOutcome, SinkError};
use crate::contract::key::ObjectKey;

/// A failed file operation, classified by the error's kind.
fn io_error(operation: &'static str, path: &Path, e: &std::io::Error) -> SinkError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => FailureKind::Forbidden,
        std::io::ErrorKind::NotFound => FailureKind::NotFound,
        _ => FailureKind::Other,
    };
    SinkError { operation, target: path.display().to_string(), detail: e.to_string(), kind }
}

/// A blocking task that panicked or was cancelled.
fn task_error(operation: &'static str, target: String, e: &tokio::task::JoinError) -> SinkError {
    SinkError { operation, target, detail: e.to_string(), kind: FailureKind::Other }
}

/// Extended attribute holding a file's origin.
const ORIGIN_XATTR: &str = "user.egx.origin";

/// Writes objects as files below a directory.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    root: PathBuf,
}

/// Makes a directory's entries durable (fsync of the directory).
type SyncDir<'a> = &'a dyn Fn(&Path) -> std::io::Result<()>;

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The origin stored with a file, if any (and if the file system keeps one).
#[cfg(unix)]
fn stored_origin(path: &Path) -> Option<Origin> {
    let mut buf = [0u8; 512];
    let n = rustix::fs::getxattr(path, ORIGIN_XATTR, &mut buf[..]).ok()?;
    Origin::decode(std::str::from_utf8(buf.get(..n)?).ok()?)
}

#[cfg(not(unix))]
fn stored_origin(_path: &Path) -> Option<Origin> {
    None
}

/// Stores the origin with a file; best effort (a file system without user extended
/// attributes leaves the byte comparison as the only check).
#[cfg(unix)]
fn keep_origin(file: &std::fs::File, origin: &Origin) {
    let _ = rustix::fs::fsetxattr(
        file,
        ORIGIN_XATTR,
        origin.encode().as_bytes(),
        rustix::fs::XattrFlags::empty(),
    );
}

#[cfg(not(unix))]
fn keep_origin(_file: &std::fs::File, _origin: &Origin) {}

impl LocalDirSink {
    /// A sink writing below `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn put_blocking(
        root: &Path,
        key: &ObjectKey,
        body: &[u8],
        origin: &Origin,
        sync: SyncDir<'_>,
    ) -> Result<PutOutcome, SinkError> {
        // Keys are validated relative paths without `..` (see `KeyTemplate`), so joining
        // them cannot leave the root.
        let path = root.join(key.as_str());
        let err = |operation, e: std::io::Error| io_error(operation, &path, &e);
        let existing = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err("read", e)),
        };
        if let Some(bytes) = &existing {
            match origin.against(stored_origin(&path).as_ref()) {
                Existing::Newer => return Ok(PutOutcome::Superseded),
                Existing::Same => return Ok(PutOutcome::Unchanged),
                Existing::Unknown if bytes.as_slice() == body => {
                    if let Ok(file) = std::fs::File::open(&path) {
                        keep_origin(&file, origin);
                    }
                    return Ok(PutOutcome::Unchanged);
                }
                Existing::Older | Existing::Unknown => {}
            }
        }
        let dir = path.parent().unwrap_or(root);
        let missing: Vec<PathBuf> =
            dir.ancestors().take_while(|d| *d != root && !d.exists()).map(Path::to_path_buf).collect();
        std::fs::create_dir_all(dir).map_err(|e| err("create directory", e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".egx-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| err("create temporary file", e))?;
        tmp.write_all(body).map_err(|e| err("write", e))?;
        keep_origin(tmp.as_file(), origin);
        tmp.as_file().sync_all().map_err(|e| err("sync", e))?;
        tmp.persist(&path).map_err(|e| err("rename", e.error))?;
        // The rename lives in `dir`, each created directory in its parent.
        let parents = missing.iter().filter_map(|d| d.parent());
        for d in std::iter::once(dir).chain(parents) {
            sync(d).map_err(|e| err("sync directory", e))?;
        }
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
            Err(e) => return Err(io_error("LIST", &dir, &e)),
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
            tokio::fs::create_dir_all(&root).await.map_err(|e| io_error("create directory", &root, &e))
        }
        .boxed()
    }

    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        let root = self.root.clone();
        async move {
            let target = key.to_string();
            tokio::task::spawn_blocking(move || Self::put_blocking(&root, &key, &body, &origin, &sync_dir))
                .await
                .unwrap_or_else(|e| Err(task_error("PUT", target, &e)))
        }
        .boxed()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, SinkError>> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        async move {
            let target = root.display().to_string();
            tokio::task::spawn_blocking(move || list_blocking(&root, &prefix))
                .await
                .unwrap_or_else(|e| Err(task_error("LIST", target, &e)))
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
    use crate::contract::key::KeyTemplate;
    use crate::contract::record::MarketRecord;

    fn key() -> ObjectKey {
        let r = MarketRecord::decode(
            Some(br#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":1,"high":1,"low":1,"close":1}"#),
            1024,
        )
        .unwrap();
        KeyTemplate::default().render(&r)
    }

    fn at(offset: i64) -> Origin {
        Origin { topic: "egx_market_data".into(), partition: 1, offset }
    }

    #[actix_rt::test]
    async fn writes_are_atomic_replays_change_nothing_and_older_records_never_win() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::new(dir.path().to_path_buf());
        sink.prepare().await.unwrap();
        assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.unwrap(), PutOutcome::Created);
        assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.unwrap(), PutOutcome::Unchanged);
        assert_eq!(sink.put(key(), b"v2".to_vec(), at(9)).await.unwrap(), PutOutcome::Replaced);
        // A late write of the older record (a replay, a zombie) leaves the newer version.
        assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.unwrap(), PutOutcome::Superseded);
        let path = dir.path().join(key().as_str());
        assert_eq!(std::fs::read(&path).unwrap(), b"v2");
        assert_eq!(stored_origin(&path), Some(at(9)));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, ["100000000000_1D_ohlcv.json"], "no temporary files left behind");
    }

    #[test]
    fn an_object_is_acknowledged_only_once_its_directories_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let synced = std::cell::RefCell::new(Vec::new());
        let record = |d: &Path| {
            synced.borrow_mut().push(d.to_path_buf());
            sync_dir(d)
        };
        let outcome = LocalDirSink::put_blocking(root, &key(), b"v1", &at(1), &record).unwrap();
        assert_eq!(outcome, PutOutcome::Created);
        // streaming/date=…/symbol=COMI/ was created: the file's directory holds the rename,
        // and each new directory's entry lives in its parent, up to the root.
        let file_dir = root.join(key().as_str()).parent().unwrap().to_path_buf();
        let mut expected: Vec<PathBuf> =
            file_dir.ancestors().take_while(|d| d.starts_with(root)).map(Path::to_path_buf).collect();
        expected.sort();
        let mut got = synced.borrow().clone();
        got.sort();
        got.dedup();
        assert_eq!(got, expected);
        // A second write into the same directory syncs just that directory.
        synced.borrow_mut().clear();
        LocalDirSink::put_blocking(root, &key(), b"v2", &at(2), &record).unwrap();
        assert_eq!(*synced.borrow(), vec![file_dir]);
    }
}
