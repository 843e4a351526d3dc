//! `[sink]`: the object store and the key layout.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError, Secret};
use crate::contract::key::{KeyError, KeyTemplate, DEFAULT_KEY_TEMPLATE};

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
    /// PEM file of CA certificates to trust for an `https://` endpoint, in addition to the
    /// system's (env `AWS_CA_BUNDLE`, as the AWS CLI reads it); empty = the system's only.
    /// For a store whose certificate comes from a private CA, e.g. MinIO inside a company.
    pub ca_bundle: PathBuf,
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
            ca_bundle: PathBuf::new(),
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
                self.ca_bundle_pem()?;
            }
            SinkKind::Local => {}
        }
        Ok(template)
    }

    /// The PEM text of `ca_bundle` (None when it is empty), once every certificate in it
    /// passed the checks the TLS library makes when it loads them: the PEM framing (the
    /// parser rustls and the AWS SDK use) and the certificate as a trust anchor (webpki,
    /// as rustls's root store does). The SDK checks nothing until its first connection and
    /// then panics on what it cannot load; here the error names `sink.ca_bundle`.
    pub fn ca_bundle_pem(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;

        if self.ca_bundle.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = self.ca_bundle.display();
        let pem = std::fs::read(&self.ca_bundle)
            .map_err(|e| invalid(CA_BUNDLE, format!("cannot read {path}: {e}")))?;
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            count += 1;
            let cert = cert.map_err(|e| {
                let why = match e {
                    rustls_pki_types::pem::Error::MissingSectionEnd { .. } => {
                        "no -----END CERTIFICATE----- line".into()
                    }
                    other => other.to_string(),
                };
                invalid(CA_BUNDLE, format!("{path}: certificate {count} is not valid PEM ({why})"))
            })?;
            webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
                invalid(
                    CA_BUNDLE,
                    format!("{path}: certificate {count} is not one the TLS library accepts ({e:?})"),
                )
            })?;
        }
        if count == 0 {
            return Err(invalid(
                CA_BUNDLE,
                format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        Ok(Some(pem))
    }
}

/// The key of the CA bundle, as errors name it.
const CA_BUNDLE: &str = "sink.ca_bundle";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A self-signed CA certificate (P-256, version 3, basic constraints critical).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIUO17HjuJ8Ymt97PU88nx52W2jXlEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZWd4LXVuaXQtdGVzdC1jYTAgFw0yNjEyMDEwNzM5NTFaGA8y
MTI2MTEwNzA3Mzk1MVowGzEZMBcGA1UEAwwQZWd4LXVuaXQtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABLI+xIBIX1drWZ3DMmBdSgPSPKX1cEMIwfJ4
RjaP9sKFpCgSaAIT1tvJKmjex11OYy1RjP/hp7FzCN20gvi+IvyjUzBRMB0GA1Ud
DgQWBBSvpVuCNZQFqKmg3TmfSXaZV6+WMzAfBgNVHSMEGDAWgBSvpVuCNZQFqKmg
3TmfSXaZV6+WMzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIBbG
PJRfRSpElTRXLEg2rZwBcIV+yJsQM5eJyQAUZO55AiBYB4DyQR/mFeOdtC2/Hwo/
Ivy0B2m9W8A7Udl4Bcomjg==
-----END CERTIFICATE-----
";

    fn s3_with_bundle(text: &str) -> (SinkConfig, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let cfg = SinkConfig { kind: SinkKind::S3, ca_bundle: f.path().into(), ..SinkConfig::default() };
        (cfg, f)
    }

    fn reason(text: &str) -> String {
        let (cfg, _f) = s3_with_bundle(text);
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.key, "sink.ca_bundle");
        e.reason
    }

    #[test]
    fn a_bundle_is_read_whole_with_text_and_other_blocks_around_its_certificates() {
        let (cfg, _f) = s3_with_bundle(CA);
        cfg.validate().unwrap();
        assert_eq!(cfg.ca_bundle_pem().unwrap().unwrap(), CA.as_bytes());
        let crlf = CA.replace('\n', "\r\n");
        let bundle = format!("# corporate CAs\n{crlf}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{CA}");
        let (cfg, _f) = s3_with_bundle(&bundle);
        assert_eq!(cfg.ca_bundle_pem().unwrap().unwrap(), bundle.as_bytes());
        assert_eq!(SinkConfig::default().ca_bundle_pem().unwrap(), None);
    }

    #[test]
    fn a_bad_bundle_is_refused_with_the_key_and_the_reason() {
        let missing = SinkConfig {
            kind: SinkKind::S3,
            ca_bundle: "/nonexistent/ca.pem".into(),
            ..SinkConfig::default()
        };
        assert!(missing.validate().unwrap_err().reason.contains("cannot read /nonexistent/ca.pem"));
        assert!(reason("").contains("holds no PEM certificate"));
        assert!(reason("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .contains("no PEM certificate"));
        assert!(reason(&CA.replace("MIIB", "M!IB")).contains("certificate 1 is not valid PEM"));
        assert!(
            reason(&CA.replace("-----END CERTIFICATE-----\n", "")).contains("certificate 1 is not valid PEM")
        );
        assert!(reason(&CA.replace("Ivy0B2m9W8A7Udl4Bcomjg==", "Ivy0B2m9W8A7Udl4"))
            .contains("certificate 1 is not one the TLS library accepts"));
        // A local sink does not read it.
        let local = SinkConfig { ca_bundle: "/nonexistent/ca.pem".into(), ..SinkConfig::default() };
        assert!(local.validate().is_ok());
    }

    #[test]
    fn truncated_or_altered_certificates_are_refused_without_panicking() {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(CA.as_bytes()).unwrap().to_vec();
        let encode = |der: &[u8]| {
            let body = base64_lines(der);
            format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
        };
        assert!(reason(&encode(&der[..der.len() - 1])).contains("certificate 1"));
        let mut altered = der.clone();
        for i in (0..altered.len()).step_by(7) {
            altered[i] ^= 0x80;
            // Whatever the verdict, checking never panics.
            let (cfg, _f) = s3_with_bundle(&encode(&altered));
            let _ = cfg.ca_bundle_pem();
            altered[i] ^= 0x80;
        }
    }

    /// Standard base64 in 64-character lines (test helper).
    fn base64_lines(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out.as_bytes().chunks(64).map(|l| format!("{}\n", String::from_utf8_lossy(l))).collect()
    }
}
