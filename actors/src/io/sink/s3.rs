//! S3-compatible storage through the official `aws-sdk-s3` (rusoto, which the original
//! plan named, is unmaintained: RUSTSEC-2022-0071).
//!
//! Every PUT is conditional, so a check and the write it decides can never race:
//! `If-None-Match: *` creates an object only when absent. When it exists, a HEAD reads the
//! origin stored with it (user metadata `egx-origin`, the record that wrote it) and its
//! ETag: a newer record of the same partition keeps its object, the same record is a
//! replay (nothing to write), an older one is replaced with `If-Match: <ETag>`. Objects
//! without an origin (the original consumer's) are compared by bytes. With
//! `sink.replace = "always"` (write-only roles) nothing is read and the object is replaced.
//!
//! Failures are classified by the store's answer (status and error code), so that a
//! refusal — an untrusted certificate, refused access keys, a missing permission — is told
//! apart from an outage (see [`FailureKind`]). Server-side encryption headers go on every
//! PUT, and only on PUTs (S3 rejects them on HEAD and GET).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Existing, FailureKind, ObjectSink, Origin, PutOutcome, SinkError};
use crate::contract::key::ObjectKey;
use crate::io::sink::{ReplacePolicy, SinkConfig};

/// Writes objects to one bucket.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    create_bucket: bool,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    replace: ReplacePolicy,
    endpoint: String,
    /// Why `sink.ca_bundle` could not be loaded when the client was built, added to TLS
    /// failures (validation catches it first; the file may have changed since).
    trust_problem: Option<String>,
}

/// User metadata key of the object's origin (`x-amz-meta-egx-origin`).
const ORIGIN_METADATA: &str = "egx-origin";

/// How often a write starts over because the object changed between its check and its
/// conditional PUT (concurrent writers of one key); past that it fails and is retried
/// with backoff like any failed write.
const MAX_RACES: usize = 8;

/// The condition of a PUT.
enum Precondition {
    /// Only if no object exists (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Unchanged(String),
    /// Whatever is there (`sink.replace = "always"`).
    Overwrite,
}

/// What a HEAD found.
struct Head {
    etag: String,
    origin: Option<Origin>,
}

/// Builds the S3 client of a sink config: the one place S3 credentials and the CA bundle
/// are read.
pub async fn client(cfg: &SinkConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(cfg.region.clone()));
    if !cfg.access_key_id.is_empty() {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            cfg.access_key_id.clone(),
            cfg.secret_access_key.expose().to_string(),
            None,
            None,
            "egx-pipeline-config",
        ));
    }
    if !cfg.endpoint.is_empty() {
        loader = loader.endpoint_url(&cfg.endpoint);
    }
    if let Some(http) = https_client(cfg) {
        loader = loader.http_client(http);
    }
    let shared = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(cfg.force_path_style).build();
    Client::from_conf(conf)
}

/// An HTTPS client trusting the system's roots and the certificates of `sink.ca_bundle`;
/// None without a bundle (the SDK's default client), and None when it cannot be loaded:
/// the client then trusts the system's roots only, never more than configured, and a
/// store signed by the bundle's CA fails as a TLS refusal that names `sink.ca_bundle`.
/// Only a bundle checked by [`SinkConfig::ca_bundle_pem`] reaches the TLS library.
fn https_client(cfg: &SinkConfig) -> Option<aws_sdk_s3::config::SharedHttpClient> {
    let pem = cfg.ca_bundle_pem().ok().flatten()?;
    let trust = TrustStore::default().with_pem_certificate(pem);
    let context = TlsContext::builder().with_trust_store(trust).build().ok()?;
    Some(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    )
}

fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(err).to_string()
}

/// The kind of an SDK failure: by the answer (status and error code) when the store
/// answered; when it did not, a TLS refusal if the handshake rejected its certificate,
/// otherwise "unreachable" (connection, DNS, time-out).
fn kind<E>(err: &SdkError<E, HttpResponse>) -> FailureKind
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err, status(err)) {
        (_, Some(code)) => answered(code, err.code()),
        (SdkError::DispatchFailure(_), None) if untrusted_certificate(err) => FailureKind::Tls,
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), None) => FailureKind::Unreachable,
        _ => FailureKind::Other,
    }
}

/// The kind of an answer, by its S3 error code first (a HEAD answer has none).
fn answered(status: u16, code: Option<&str>) -> FailureKind {
    match code {
        Some(
            "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "XAdminUserNotFound"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired",
        ) => FailureKind::Authentication,
        Some(code) if code == "AccessDenied" || code == "AllAccessDisabled" || code.starts_with("KMS.") => {
            FailureKind::Forbidden
        }
        // A clock off by more than 15 minutes: the SDK corrects its offset and retries.
        Some("RequestTimeTooSkewed") => FailureKind::Other,
        _ => FailureKind::of_status(status),
    }
}

/// True when the TLS handshake rejected the store's certificate. rustls says so in the
/// error chain (`invalid peer certificate: UnknownIssuer`); the SDK offers no typed error
/// for it.
fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("invalid peer certificate") {
            return true;
        }
        source = e.source();
    }
    false
}

fn status<E, R>(err: &SdkError<E, R>) -> Option<u16>
where
    R: HttpStatus,
{
    err.raw_response().map(HttpStatus::status_code)
}

/// Reads the HTTP status of a raw response.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Sink {
    /// A sink for the config's bucket.
    pub async fn new(cfg: &SinkConfig) -> Self {
        let trust_problem = cfg.ca_bundle_pem().err().map(|e| e.to_string());
        Self { trust_problem, ..Self::with_client(client(cfg).await, cfg) }
    }

    /// A sink using an existing client (embedding apps, tests).
    pub fn with_client(client: Client, cfg: &SinkConfig) -> Self {
        let sse = match cfg.server_side_encryption.as_str() {
            "" => None,
            other => Some(ServerSideEncryption::from(other)),
        };
        let kms = (!cfg.sse_kms_key_id.is_empty()).then(|| cfg.sse_kms_key_id.clone());
        Self {
            client,
            bucket: cfg.bucket.clone(),
            create_bucket: cfg.create_bucket,
            sse,
            sse_kms_key_id: kms,
            replace: cfg.replace,
            endpoint: if cfg.endpoint.is_empty() { "AWS".into() } else { cfg.endpoint.clone() },
            trust_problem: None,
        }
    }

    fn error(&self, operation: &'static str, key: &str, detail: String, kind: FailureKind) -> SinkError {
        SinkError { operation, target: format!("s3://{}/{}", self.bucket, key), detail, kind }
    }

    /// The error of a failed SDK call.
    fn failed<E>(&self, operation: &'static str, key: &str, err: &SdkError<E, HttpResponse>) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (mut detail, kind) = (describe(err), kind(err));
        if let Some(problem) = self.trust_problem.as_ref().filter(|_| kind == FailureKind::Tls) {
            detail = format!("{detail}; and {problem}");
        }
        self.error(operation, key, detail, kind)
    }

    /// The error of a missing bucket that may not be created.
    fn missing_bucket(&self) -> SinkError {
        let detail = "bucket does not exist and sink.create_bucket is false".into();
        self.error("HEAD bucket", "", detail, FailureKind::NotFound)
    }

    /// Whether the bucket exists; an error when the store does not say.
    async fn bucket_exists(&self) -> Result<bool, SinkError> {
        let head = match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(true),
            Err(e) => e,
        };
        if !matches!(status(&head), Some(403 | 404)) {
            return Err(self.failed("HEAD bucket", "", &head));
        }
        // A HEAD answer has no body, so its 403 or 404 does not say why: a wrong secret, a
        // missing permission, an unknown access key (versitygw answers 404) or a missing
        // bucket. A listing of at most one key (the same s3:ListBucket permission) does.
        match self.client.list_objects_v2().bucket(&self.bucket).max_keys(1).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => Ok(false),
            Err(e) => Err(self.failed("LIST bucket", "", &e)),
        }
    }

    async fn ensure_bucket(self) -> Result<(), SinkError> {
        if self.bucket_exists().await? {
            return Ok(());
        }
        if !self.create_bucket {
            return Err(self.missing_bucket());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(self.failed("create bucket", "", &e)),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: &[u8],
        origin: &Origin,
        condition: Precondition,
    ) -> Result<
        (),
        SdkError<aws_sdk_s3::operation::put_object::PutObjectError, aws_sdk_s3::config::http::HttpResponse>,
    > {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .metadata(ORIGIN_METADATA, origin.encode())
            .body(ByteStream::from(body.to_vec()));
        req = match condition {
            Precondition::Absent => req.if_none_match("*"),
            Precondition::Unchanged(etag) => req.if_match(etag),
            Precondition::Overwrite => req,
        };
        if let Some(sse) = &self.sse {
            req = req.server_side_encryption(sse.clone());
        }
        if let Some(kms) = &self.sse_kms_key_id {
            req = req.ssekms_key_id(kms);
        }
        req.send().await.map(|_| ())
    }

    /// The existing object's ETag and origin; None when there is none (any more).
    async fn head(&self, key: &str) -> Result<Option<Head>, SinkError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let origin =
                    out.metadata().and_then(|m| m.get(ORIGIN_METADATA)).and_then(|o| Origin::decode(o));
                Ok(Some(Head { etag: out.e_tag().unwrap_or_default().to_string(), origin }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("HEAD", key, &e)),
        }
    }

    /// The existing object's bytes and ETag; None when there is none (any more).
    async fn read(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, SinkError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.failed("GET", key, &e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.error("GET", key, e.to_string(), FailureKind::Unreachable))?;
        Ok(Some((bytes.into_bytes().to_vec(), etag)))
    }

    async fn list_all(self, prefix: String) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.failed("LIST", &prefix, &e))?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// The PUT that follows a failed `If-None-Match`: what the existing object calls for.
    /// `Ok(None)` means the object vanished meanwhile: start over.
    async fn decide(&self, key: &str, body: &[u8], origin: &Origin) -> Result<Option<Decision>, SinkError> {
        if self.replace == ReplacePolicy::Always {
            return Ok(Some(Decision::Put(Precondition::Overwrite, PutOutcome::Replaced)));
        }
        let Some(head) = self.head(key).await? else { return Ok(None) };
        Ok(Some(match origin.against(head.origin.as_ref()) {
            Existing::Newer => Decision::Done(PutOutcome::Superseded),
            Existing::Same => Decision::Done(PutOutcome::Unchanged),
            Existing::Older => Decision::Put(Precondition::Unchanged(head.etag), PutOutcome::Replaced),
            Existing::Unknown => match self.read(key).await? {
                None => return Ok(None),
                // The same bytes without this partition's origin (the original consumer's
                // object, or the topic's partitions changed): stamped with it, so that an
                // older record of the partition cannot replace it from now on.
                Some((bytes, etag)) if bytes == body => {
                    Decision::Put(Precondition::Unchanged(etag), PutOutcome::Unchanged)
                }
                Some((_, etag)) => Decision::Put(Precondition::Unchanged(etag), PutOutcome::Replaced),
            },
        }))
    }

    async fn put_conditional(
        self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> Result<PutOutcome, SinkError> {
        let key = key.as_str();
        for _ in 0..MAX_RACES {
            match self.put_object(key, &body, &origin, Precondition::Absent).await {
                Ok(()) => return Ok(PutOutcome::Created),
                Err(e) if status(&e) == Some(412) => {}
                Err(e) => return Err(self.failed("PUT", key, &e)),
            }
            let (condition, outcome) = match self.decide(key, &body, &origin).await? {
                Some(Decision::Done(outcome)) => return Ok(outcome),
                Some(Decision::Put(condition, outcome)) => (condition, outcome),
                None => continue,
            };
            match self.put_object(key, &body, &origin, condition).await {
                Ok(()) => return Ok(outcome),
                // Another writer changed or removed the object since it was read: look again.
                Err(e) if matches!(status(&e), Some(412 | 404)) => {}
                Err(e) => return Err(self.failed("PUT", key, &e)),
            }
        }
        Err(self.error(
            "PUT",
            key,
            format!("the object changed under {MAX_RACES} attempts in a row (concurrent writers)"),
            FailureKind::Other,
        ))
    }
}

/// What to do about an object that exists.
enum Decision {
    /// Nothing to write.
    Done(PutOutcome),
    /// Write under this condition; on success, report this outcome.
    Put(Precondition, PutOutcome),
}

impl ObjectSink for S3Sink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        self.clone().ensure_bucket().boxed()
    }

    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        self.clone().put_conditional(key, body, origin).boxed()
    }

    fn check(&self) -> BoxFuture<'static, Result<String, SinkError>> {
        let sink = self.clone();
        async move {
            match sink.bucket_exists().await? {
                true => Ok(format!("{}: bucket exists and is accessible", sink.location())),
                false if sink.create_bucket => {
                    Ok(format!("{}: bucket missing; it will be created at start", sink.location()))
                }
                false => Err(sink.missing_bucket()),
            }
        }
        .boxed()
    }

    fn list(&self, prefix: &str) -> BoxFuture<'static, Result<Vec<String>, SinkError>> {
        self.clone().list_all(prefix.to_string()).boxed()
    }

    fn location(&self) -> String {
        format!("s3://{} at {}", self.bucket, self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_code_then_status() {
        let auth = FailureKind::Authentication;
        assert_eq!(answered(403, Some("SignatureDoesNotMatch")), auth);
        assert_eq!(answered(403, Some("InvalidAccessKeyId")), auth);
        assert_eq!(answered(404, Some("XAdminUserNotFound")), auth, "versitygw's unknown access key");
        assert_eq!(answered(400, Some("ExpiredToken")), auth);
        assert_eq!(answered(403, Some("AccessDenied")), FailureKind::Forbidden);
        assert_eq!(answered(400, Some("KMS.NotFoundException")), FailureKind::Forbidden);
        assert_eq!(answered(403, None), FailureKind::Forbidden, "a HEAD's 403 says no more");
        assert_eq!(answered(403, Some("RequestTimeTooSkewed")), FailureKind::Other);
        assert_eq!(answered(404, Some("NoSuchBucket")), FailureKind::NotFound);
        assert_eq!(answered(503, Some("SlowDown")), FailureKind::Throttled);
        assert_eq!(answered(500, Some("InternalError")), FailureKind::ServerError);
    }

    #[test]
    fn a_rejected_certificate_is_found_anywhere_in_the_chain() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let tls = Layer("invalid peer certificate: UnknownIssuer", None);
        let chain = Layer("dispatch failure", Some(Box::new(Layer("io error", Some(Box::new(tls))))));
        assert!(untrusted_certificate(&chain));
        assert!(!untrusted_certificate(&Layer(
            "dispatch failure",
            Some(Box::new(Layer("connection refused", None)))
        )));
    }
}
