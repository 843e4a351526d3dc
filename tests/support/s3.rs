//! The test S3 servers: where they are, clients, listing and reading objects, and a private
//! server a test may stop and start.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use egx_actors::config::Secret;
use egx_actors::sink::{SinkConfig, SinkKind};

use super::*;

/// Endpoint of the test S3 server (`EGX_TEST_S3`, default http://127.0.0.1:9000).
pub fn s3_endpoint() -> String {
    std::env::var("EGX_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// S3 settings of the pipeline pointing at the test server.
pub fn sink_config(bucket: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::S3,
        bucket: bucket.into(),
        endpoint: s3_endpoint(),
        access_key_id: "minioadmin".into(),
        secret_access_key: Secret::new("minioadmin"),
        ..SinkConfig::default()
    }
}

/// An S3 client for the test server.
pub async fn s3() -> Client {
    s3_at(&s3_endpoint()).await
}

/// An S3 client for the server at `endpoint` (the test credentials).
pub async fn s3_at(endpoint: &str) -> Client {
    egx_actors::sink::s3_client(&SinkConfig { endpoint: endpoint.into(), ..sink_config("unused") }).await
}

/// Every key under `prefix`, following continuation tokens (none while the bucket does
/// not exist yet).
pub async fn list_keys(client: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await;
        let out = match out {
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => return keys,
            other => other.expect("ListObjectsV2"),
        };
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    keys.sort();
    keys
}

/// An object's bytes.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
    out.body.collect().await.expect("object body").into_bytes().to_vec()
}

/// A private S3 server (versitygw, as the test services use) that a test may stop and
/// start again without disturbing other tests.
pub struct PrivateS3 {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its root access key and secret key.
    keys: (String, String),
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateS3 {
    /// Starts one on a free port (needs `EGX_VERSITYGW`, set by scripts/test.sh).
    pub fn start() -> Self {
        Self::start_with_keys("minioadmin", "minioadmin")
    }

    /// [`PrivateS3::start`] with these root keys instead of the test ones.
    pub fn start_with_keys(access_key: &str, secret_key: &str) -> Self {
        let keys = (access_key.to_string(), secret_key.to_string());
        let mut s =
            Self { port: free_port(), keys, dir: tempfile::tempdir().expect("temp dir"), child: None };
        s.resume();
        s
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and data directory, and waits until it answers.
    pub fn resume(&mut self) {
        let bin = std::env::var("EGX_VERSITYGW")
            .expect("EGX_VERSITYGW must name the versitygw binary (scripts/test.sh sets it)");
        let child = std::process::Command::new(bin)
            .env("ROOT_ACCESS_KEY", &self.keys.0)
            .env("ROOT_SECRET_KEY", &self.keys.1)
            .args(["--port", &format!("127.0.0.1:{}", self.port), "--region", "us-east-1", "posix"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("versitygw starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "private S3 did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.stop();
    }
}
