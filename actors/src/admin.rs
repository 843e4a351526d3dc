//! The admin endpoint: Prometheus metrics, liveness and readiness over plain HTTP/1.1.
//! Bound to localhost by default; it serves three read-only paths and nothing else.
//!
//! - `GET /metrics`: the Prometheus text exposition of [`Metrics`].
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 when Kafka answers, the object store answers and (for a pipeline
//!   that consumes) partitions are assigned; 503 with the reasons otherwise.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slog::{debug, Logger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ConfigError;
use crate::metrics::Metrics;

/// `[admin]`: the metrics and health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port` to serve `/metrics`, `/healthz` and `/readyz` on; empty disables it.
    /// Keep it on localhost unless a firewall or network policy protects it.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9898".into() }
    }
}

impl AdminConfig {
    /// Checks the address; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_empty() || self.listen.parse::<std::net::SocketAddr>().is_ok() {
            Ok(())
        } else {
            Err(ConfigError {
                key: "admin.listen".into(),
                reason: format!("{:?} is not host:port", self.listen),
            })
        }
    }
}

/// What readiness requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The pipeline consumes, so it must hold partitions and reach the store.
    pub consumes: bool,
    /// Not ready once the oldest unconfirmed write has waited this long
    /// (`writer.stall_timeout_secs`); None = never.
    pub stall_after: Option<Duration>,
}

impl Readiness {
    /// The reasons the pipeline is not ready (empty = ready).
    pub fn problems(&self, metrics: &Metrics) -> Vec<String> {
        let up = |dep: &str| metrics.up.with_label_values(&[dep]).get() == 1;
        let mut problems = Vec::new();
        // A refusal says why the dependency does not answer as it should.
        let down = |dep: &str, what: &str| match metrics.refusal(dep) {
            Some(refusal) => refusal.to_string(),
            None => format!("{what} is not reachable"),
        };
        if !up("kafka") {
            problems.push(down("kafka", "kafka"));
        }
        if self.consumes && !up("store") {
            problems.push(down("store", "the object store"));
        }
        if self.consumes && metrics.assigned_partitions.get() == 0 {
            problems.push("no partitions assigned".to_string());
        }
        let age = metrics.oldest_write_age.get();
        if let Some(limit) = self.stall_after.filter(|l| self.consumes && age >= l.as_secs_f64()) {
            problems.push(format!(
                "object writes stalled: the oldest has waited {age:.0} s (writer.stall_timeout_secs = {})",
                limit.as_secs()
            ));
        }
        problems
    }
}

/// Serves the admin endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, readiness: Readiness, log: Logger) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let (metrics, log) = (metrics.clone(), log.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &metrics, readiness).await {
                debug!(log, "Admin request failed."; "peer" => %peer, "error" => %e);
            }
        });
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics, readiness: Readiness) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read the request head (bounded in size and time); the body, if any, is ignored.
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[len..]))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, content_type, body) = route(method, path, metrics, readiness);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn route(
    method: &str,
    path: &str,
    metrics: &Metrics,
    readiness: Readiness,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => match readiness.problems(metrics).as_slice() {
            [] => ("200 OK", TEXT, "ready\n".into()),
            problems => ("503 Service Unavailable", TEXT, format!("not ready: {}\n", problems.join(", "))),
        },
        _ => ("404 Not Found", TEXT, "try /metrics, /healthz or /readyz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[actix_rt::test]
    async fn serves_metrics_health_and_readiness() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let log = Logger::root(slog::Discard, slog::o!());
        let readiness = Readiness { consumes: true, stall_after: Some(Duration::from_secs(60)) };
        actix::spawn(serve(listener, metrics.clone(), readiness, log));
        metrics.records_written.inc_by(7);
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200 OK") && m.contains("egx_records_written_total 7"), "{m}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("kafka is not reachable") && not_ready.contains("no partitions assigned"));
        let refusal = crate::refusal::Refusal::kafka(
            crate::refusal::RefusalKind::Authentication,
            "check kafka.sasl_username and kafka.sasl_password",
        );
        metrics.refused("kafka", refusal);
        let refused = get(addr, "/readyz").await;
        assert!(
            refused.contains("Kafka refused (authentication failed): check kafka.sasl_username"),
            "{refused}"
        );
        metrics.accepted("kafka");
        assert!(get(addr, "/readyz").await.contains("kafka is not reachable"));
        metrics.up.with_label_values(&["kafka"]).set(1);
        metrics.up.with_label_values(&["store"]).set(1);
        metrics.assigned_partitions.set(2);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200 OK"));
        metrics.oldest_write_age.set(61.0);
        let stalled = get(addr, "/readyz").await;
        assert!(
            stalled.starts_with("HTTP/1.1 503") && stalled.contains("object writes stalled"),
            "{stalled}"
        );
        metrics.oldest_write_age.set(0.0);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn listen_address_is_validated() {
        assert!(AdminConfig { listen: "localhost".into() }.validate().is_err());
        assert!(AdminConfig { listen: String::new() }.validate().is_ok());
        assert!(AdminConfig::default().validate().is_ok());
    }
}
