//! S3-compatible storage through the official `aws-sdk-s3` (rusoto, which the original
//! plan named, is unmaintained: RUSTSEC-2022-0071).
//!
//! Writes are conditional: `If-None-Match: *` creates an object only when absent. When
//! it exists, its bytes are compared: identical means a replay and nothing is written;
//! different means a newer version of the same bar, which replaces it.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{ObjectSink, PutOutcome, SinkError};
use crate::config::SinkConfig;
use crate::key::ObjectKey;

/// Writes objects to one bucket.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    create_bucket: bool,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    endpoint: String,
}

/// Builds the S3 client of a sink config: the one place S3 credentials are read.
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
    let shared = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(cfg.force_path_style).build();
    Client::from_conf(conf)
}

fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(err).to_string()
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
        Self::with_client(client(cfg).await, cfg)
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
            endpoint: if cfg.endpoint.is_empty() { "AWS".into() } else { cfg.endpoint.clone() },
        }
    }

    fn error(&self, operation: &'static str, key: &str, detail: String) -> SinkError {
        SinkError { operation, target: format!("s3://{}/{}", self.bucket, key), detail }
    }

    async fn ensure_bucket(self) -> Result<(), SinkError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(self.error("HEAD bucket", "", describe(&e))),
        }
        if !self.create_bucket {
            return Err(self.error(
                "HEAD bucket",
                "",
                "bucket does not exist and sink.create_bucket is false".into(),
            ));
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(self.error("create bucket", "", describe(&e))),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: &[u8],
        only_if_absent: bool,
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
            .body(ByteStream::from(body.to_vec()));
        if only_if_absent {
            req = req.if_none_match("*");
        }
        if let Some(sse) = &self.sse {
            req = req.server_side_encryption(sse.clone());
        }
        if let Some(kms) = &self.sse_kms_key_id {
            req = req.ssekms_key_id(kms);
        }
        req.send().await.map(|_| ())
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, SinkError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GET", key, describe(&e)))?;
        let bytes = out.body.collect().await.map_err(|e| self.error("GET", key, e.to_string()))?;
        Ok(bytes.into_bytes().to_vec())
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
                .map_err(|e| self.error("LIST", &prefix, describe(&e)))?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn put_conditional(self, key: ObjectKey, body: Vec<u8>) -> Result<PutOutcome, SinkError> {
        let key = key.as_str();
        match self.put_object(key, &body, true).await {
            Ok(()) => return Ok(PutOutcome::Created),
            Err(e) if status(&e) == Some(412) => {}
            Err(e) => return Err(self.error("PUT", key, describe(&e))),
        }
        if self.read(key).await? == body {
            return Ok(PutOutcome::Unchanged);
        }
        self.put_object(key, &body, false).await.map_err(|e| self.error("PUT", key, describe(&e)))?;
        Ok(PutOutcome::Replaced)
    }
}

impl ObjectSink for S3Sink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        self.clone().ensure_bucket().boxed()
    }

    fn put(&self, key: ObjectKey, body: Vec<u8>) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        self.clone().put_conditional(key, body).boxed()
    }

    fn check(&self) -> BoxFuture<'static, Result<String, SinkError>> {
        let sink = self.clone();
        async move {
            match sink.client.head_bucket().bucket(&sink.bucket).send().await {
                Ok(_) => Ok(format!("{}: bucket exists and is accessible", sink.location())),
                Err(e) if status(&e) == Some(404) && sink.create_bucket => {
                    Ok(format!("{}: bucket missing; it will be created at start", sink.location()))
                }
                Err(e) => Err(sink.error("HEAD bucket", "", describe(&e))),
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
