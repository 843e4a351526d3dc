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
                self.ca_certificates()?;
            }
            SinkKind::Local => {}
        }
        Ok(template)
    }

    /// The certificates of `ca_bundle`, each as a PEM block of its own (none when it is
    /// empty); the error names `sink.ca_bundle`. Everything is checked here — the PEM
    /// framing, the base64, the certificate's DER structure — because the TLS library
    /// checks nothing until its first connection and then panics on what it cannot parse.
    pub fn ca_certificates(&self) -> Result<Vec<String>, ConfigError> {
        if self.ca_bundle.as_os_str().is_empty() {
            return Ok(Vec::new());
        }
        let path = self.ca_bundle.display();
        let bytes = std::fs::read(&self.ca_bundle)
            .map_err(|e| invalid(CA_BUNDLE, format!("cannot read {path}: {e}")))?;
        let ders = pem::certificates(&String::from_utf8_lossy(&bytes))
            .map_err(|e| invalid(CA_BUNDLE, format!("{path}: {e}")))?;
        if ders.is_empty() {
            return Err(invalid(CA_BUNDLE, format!("{path} holds no PEM certificate ({})", pem::BEGIN)));
        }
        Ok(ders.iter().map(|der| pem::encode(der)).collect())
    }
}

/// The key of the CA bundle, as errors name it.
const CA_BUNDLE: &str = "sink.ca_bundle";

/// PEM certificates, read strictly and written back canonically, so that the TLS library
/// (rustls through the AWS SDK) only ever sees blocks it parses: a malformed one would
/// panic inside the SDK on the first request instead of failing validation.
mod pem {
    pub(super) const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// The DER bytes of every certificate block; text around them and blocks of other
    /// kinds (keys, parameters) are ignored, as TLS libraries do.
    pub(super) fn certificates(text: &str) -> Result<Vec<Vec<u8>>, String> {
        let mut found = Vec::new();
        let mut block: Option<String> = None;
        for line in text.lines().map(str::trim) {
            let n = found.len() + 1;
            match block.as_mut() {
                None if line == BEGIN => block = Some(String::new()),
                None => {}
                Some(body) if line == END => {
                    let der = decode(body).ok_or(format!("certificate {n} is not valid base64"))?;
                    super::der::certificate(&der).map_err(|what| {
                        format!(
                            "certificate {n} is not an X.509 certificate the TLS library accepts ({what})"
                        )
                    })?;
                    found.push(der);
                    block = None;
                }
                Some(_) if line.starts_with("-----") => {
                    return Err(format!("certificate {n} has no {END} line"))
                }
                Some(body) => body.push_str(line),
            }
        }
        match block {
            Some(_) => Err(format!("certificate {} has no {END} line", found.len() + 1)),
            None => Ok(found),
        }
    }

    fn sextet(c: u8) -> Option<u32> {
        ALPHABET.iter().position(|a| *a == c).and_then(|i| u32::try_from(i).ok())
    }

    /// Standard base64 with padding; None for anything else.
    fn decode(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
            return None;
        }
        let quads = bytes.len() / 4;
        let mut out = Vec::with_capacity(quads * 3);
        for (i, quad) in bytes.chunks(4).enumerate() {
            let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
            if pad > 2 || (pad > 0 && i + 1 < quads) {
                return None;
            }
            let mut n = 0u32;
            for c in quad.iter().take(4 - pad) {
                n = n << 6 | sextet(*c)?;
            }
            n <<= 6 * pad;
            out.extend_from_slice(n.to_be_bytes().get(1..4 - pad)?);
        }
        Some(out)
    }

    /// One certificate as a PEM block with 64-character lines.
    pub(super) fn encode(der: &[u8]) -> String {
        let mut text = String::new();
        for chunk in der.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] } else { b'=' };
                text.push(char::from(c));
            }
        }
        let mut pem = format!("{BEGIN}\n");
        for (i, c) in text.chars().enumerate() {
            if i > 0 && i % 64 == 0 {
                pem.push('\n');
            }
            pem.push(c);
        }
        pem.push_str(&format!("\n{END}\n"));
        pem
    }
}

/// The shape rustls (webpki) requires of a certificate it is asked to trust, checked
/// before it is: a version 3 certificate whose signature algorithm matches its body's,
/// with well-formed extensions and no duplicate of those webpki reads. Where simpler, this
/// is stricter than webpki: a certificate it would accept but this refuses fails
/// validation with a message, never the other way round.
mod der {
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OCTET_STRING: u8 = 0x04;
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    const EXTENSIONS: u8 = 0xa3;
    /// Signed certificate timestamps (1.3.6.1.4.1.11129.2.4.2), read by webpki.
    const SCT_LIST: [u8; 10] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

    type Checked<T> = Result<T, &'static str>;

    /// One element (low tag numbers, definite lengths below 64 KiB in their shortest
    /// form, as webpki reads them): its tag, its contents and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            0..=0x7f => (usize::from(first), rest),
            0x81 => {
                let (&len, rest) = rest.split_first()?;
                (len >= 0x80).then_some((usize::from(len), rest))?
            }
            0x82 => {
                let (len, rest) = rest.split_at_checked(2)?;
                let len = usize::from(*len.first()?) << 8 | usize::from(*len.get(1)?);
                (len > 0xff).then_some((len, rest))?
            }
            _ => return None,
        };
        let (contents, rest) = rest.split_at_checked(len)?;
        Some((tag, contents, rest))
    }

    /// The contents of an element with `tag`, and what follows it.
    fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Checked<(&'a [u8], &'a [u8])> {
        match element(input) {
            Some((t, contents, rest)) if t == tag => Ok((contents, rest)),
            _ => Err(what),
        }
    }

    /// The contents of an element with `tag` that must be the last one.
    fn last<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Checked<&'a [u8]> {
        match expect(input, tag, what)? {
            (contents, []) => Ok(contents),
            _ => Err(what),
        }
    }

    /// Checks a DER certificate; the error says which part is wrong.
    pub(super) fn certificate(der: &[u8]) -> Checked<()> {
        let signed = last(der, SEQUENCE, "not a DER SEQUENCE")?;
        let (tbs, rest) = expect(signed, SEQUENCE, "no certificate body")?;
        let (algorithm, rest) = expect(rest, SEQUENCE, "no signature algorithm")?;
        let signature = last(rest, BIT_STRING, "no signature")?;
        if signature.first() != Some(&0) {
            return Err("malformed signature");
        }
        let version = expect(tbs, VERSION, "not version 3");
        let rest = match version {
            Ok(([INTEGER, 1, 2], rest)) => rest,
            _ => return Err("not version 3"),
        };
        let (_, rest) = expect(rest, INTEGER, "no serial number")?;
        let (inner, mut rest) = expect(rest, SEQUENCE, "no signature algorithm")?;
        if inner != algorithm {
            return Err("signature algorithms differ");
        }
        for what in ["no issuer", "no validity", "no subject", "no public key"] {
            rest = expect(rest, SEQUENCE, what)?.1;
        }
        if rest.is_empty() {
            return Ok(());
        }
        let list = last(rest, EXTENSIONS, "unsupported fields (unique identifiers)")?;
        let mut list = last(list, SEQUENCE, "malformed extensions")?;
        let mut read: Vec<&[u8]> = Vec::new();
        while !list.is_empty() {
            let (ext, rest) = expect(list, SEQUENCE, "malformed extension")?;
            list = rest;
            if let Some(id) = extension(ext)? {
                if read.contains(&id) {
                    return Err("an extension appears twice");
                }
                read.push(id);
            }
        }
        Ok(())
    }

    /// Checks one extension; returns its id when webpki reads it (and so refuses a second one).
    fn extension(ext: &[u8]) -> Checked<Option<&[u8]>> {
        const BAD: &str = "malformed extension";
        let (id, mut rest) = expect(ext, OID, BAD)?;
        if rest.first() == Some(&BOOLEAN) {
            let (critical, after) = expect(rest, BOOLEAN, BAD)?;
            if critical != [0xff] && critical != [0] {
                return Err(BAD);
            }
            rest = after;
        }
        let value = last(rest, OCTET_STRING, BAD)?;
        match id {
            // Key usage: a bit string, read when used.
            [0x55, 0x1d, 15] => Ok(Some(id)),
            // Subject alternative names, basic and name constraints, CRL distribution
            // points, extended key usage: each one SEQUENCE.
            [0x55, 0x1d, 17 | 19 | 30 | 31 | 37] => last(value, SEQUENCE, BAD).map(|_| Some(id)),
            _ if id == SCT_LIST => last(value, OCTET_STRING, BAD).map(|_| Some(id)),
            _ => Ok(None),
        }
    }
}

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
    fn a_bundle_yields_each_certificate_as_a_canonical_block() {
        let (cfg, _f) = s3_with_bundle(CA);
        cfg.validate().unwrap();
        assert_eq!(cfg.ca_certificates().unwrap(), [CA]);
        // Text around the blocks, other kinds of block and CRLF line ends are ignored.
        let crlf = CA.replace('\n', "\r\n");
        let bundle = format!("# corporate CAs\n{crlf}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{CA}");
        let (cfg, _f) = s3_with_bundle(&bundle);
        assert_eq!(cfg.ca_certificates().unwrap(), [CA, CA]);
        assert!(SinkConfig::default().ca_certificates().unwrap().is_empty());
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
        assert!(reason(&CA.replace("MIIB", "M!IB")).contains("certificate 1 is not valid base64"));
        assert!(reason(&CA.replace("-----END CERTIFICATE-----\n", "")).contains("has no -----END"));
        let two_begins = CA.replace("MIIBjD", "-----BEGIN CERTIFICATE-----\nMIIBjD");
        assert!(reason(&two_begins).contains("has no -----END"));
        assert!(reason(&CA.replace("Ivy0B2m9W8A7Udl4Bcomjg==", "Ivy0B2m9W8A7Udl4"))
            .contains("certificate 1 is not an X.509"));
        // A local sink does not read it.
        let local = SinkConfig { ca_bundle: "/nonexistent/ca.pem".into(), ..SinkConfig::default() };
        assert!(local.validate().is_ok());
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_standard() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let pem = pem::encode(&bytes);
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            if len > 0 {
                assert_eq!(
                    pem::certificates(&pem).unwrap_err(),
                    "certificate 1 is not an X.509 certificate the TLS library accepts (not a DER SEQUENCE)",
                    "{len}"
                );
                assert!(body.len().is_multiple_of(4) && pem.lines().all(|l| l.len() <= 64));
            }
        }
        for bad in ["QQ", "Q===", "QQ==QQ==", "Q Q=", "QQ=\u{e9}"] {
            let text = format!("{}\n{bad}\n-----END CERTIFICATE-----\n", pem::BEGIN);
            assert!(pem::certificates(&text).unwrap_err().contains("base64"), "{bad}");
        }
    }

    #[test]
    fn truncated_or_altered_certificates_are_refused_without_panicking() {
        let der = &pem::certificates(CA).unwrap()[0];
        assert_eq!(der::certificate(der), Ok(()));
        for len in 0..der.len() {
            assert!(der::certificate(&der[..len]).is_err(), "a prefix of {len} bytes passed");
        }
        let mut altered = der.clone();
        for i in 0..altered.len() {
            for flip in [0x01, 0x80, 0xff] {
                altered[i] ^= flip;
                let _ = der::certificate(&altered);
                altered[i] ^= flip;
            }
        }
    }
}
