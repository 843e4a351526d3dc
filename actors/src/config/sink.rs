//! `[sink]`: the object store and the key layout.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, Secret};
use crate::key::{KeyError, KeyTemplate, DEFAULT_KEY_TEMPLATE};

/// Which object store the writer targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// An S3-compatible store (AWS S3, MinIO, …).
    S3,
    /// A local directory with the same key layout (the embedded default).
    Local,
}

/// What a write does when its key already holds an object (a replay, or a newer version
/// of the same bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplacePolicy {
    /// Read the existing object's origin (S3: HEAD, so `s3:GetObject` is needed) and
    /// replace it only from a newer offset of the same partition, conditionally on its
    /// ETag: a late write of an older record can never roll the object back.
    NewerOffset,
    /// Replace without reading, for a role that may only write (`s3:PutObject`): an older
    /// replay or a write that outlived its assignment can then roll an object back.
    Always,
}

/// `[sink]`: where objects go and how they are named.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `s3` or `local`.
    pub kind: SinkKind,
    /// Key prefix, the original `streaming/`.
    pub prefix: String,
    /// File layout below the prefix; placeholders `{date}` (Cairo trading date),
    /// `{symbol}`, `{time}` (HHMMSSffffff, Cairo), `{interval}`, `{field}`, all required.
    pub key_template: String,
    /// Directory for `kind = "local"`.
    pub local_dir: PathBuf,
    /// Bucket for `kind = "s3"`.
    pub bucket: String,
    /// S3 endpoint URL (env `MINIO_ENDPOINT`); empty = AWS S3 for `region`.
    pub endpoint: String,
    /// Region (env `AWS_REGION`).
    pub region: String,
    /// Access key id (env `AWS_ACCESS_KEY_ID`); empty = the AWS default credential chain.
    pub access_key_id: String,
    /// Secret access key (env `AWS_SECRET_ACCESS_KEY`; never logged).
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO and most S3 servers.
    pub force_path_style: bool,
    /// Create the bucket when it is missing.
    pub create_bucket: bool,
    /// Server-side encryption for new objects: empty (the bucket's default), `AES256` or `aws:kms`.
    pub server_side_encryption: String,
    /// KMS key id when `server_side_encryption = "aws:kms"`; empty = the AWS managed key.
    pub sse_kms_key_id: String,
    /// When a key already holds an object: `newer_offset` (replace it only from a newer
    /// offset of the same partition; needs read access) or `always` (write-only roles).
    pub replace: ReplacePolicy,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            kind: SinkKind::Local,
            prefix: "streaming/".into(),
            key_template: DEFAULT_KEY_TEMPLATE.into(),
            local_dir: PathBuf::from("egx-data"),
            bucket: "egx-data-bucket".into(),
            endpoint: "http://localhost:9000".into(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            force_path_style: true,
            create_bucket: true,
            server_side_encryption: String::new(),
            sse_kms_key_id: String::new(),
            replace: ReplacePolicy::NewerOffset,
        }
    }
}

impl SinkConfig {
    /// Checks every field and builds the key template; the error names the key.
    pub fn validate(&self) -> Result<KeyTemplate, ConfigError> {
        let template = KeyTemplate::new(&self.prefix, &self.key_template).map_err(|e| {
            let key = match e {
                KeyError::Unsafe { what: "prefix", .. } => "sink.prefix",
                _ => "sink.key_template",
            };
            invalid(key, e.to_string())
        })?;
        match self.kind {
            SinkKind::Local if self.local_dir.as_os_str().is_empty() => {
                return Err(invalid("sink.local_dir", "must not be empty"));
            }
            SinkKind::S3 => {
                let b = &self.bucket;
                let ok = (3..=63).contains(&b.len())
                    && b.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
                    && !b.starts_with(['-', '.'])
                    && !b.ends_with(['-', '.']);
                if !ok {
                    return Err(invalid("sink.bucket", format!("{b:?} is not a valid S3 bucket name")));
                }
                if !self.endpoint.is_empty()
                    && !self.endpoint.starts_with("http://")
                    && !self.endpoint.starts_with("https://")
                {
                    return Err(invalid("sink.endpoint", "must start with http:// or https://"));
                }
                if self.region.is_empty() {
                    return Err(invalid("sink.region", "must not be empty"));
                }
                if !self.access_key_id.is_empty() && self.secret_access_key.is_empty() {
                    return Err(invalid("sink.secret_access_key", "is required when access_key_id is set"));
                }
                if !["", "AES256", "aws:kms"].contains(&self.server_side_encryption.as_str()) {
                    return Err(invalid("sink.server_side_encryption", "must be empty, AES256 or aws:kms"));
                }
            }
            SinkKind::Local => {}
        }
        Ok(template)
    }
}
