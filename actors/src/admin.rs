//! The admin endpoint: Prometheus metrics, liveness and readiness over plain HTTP/1.1.
//! Bound to localhost by default; it serves three read-only paths and nothing else.
//!
//! - `GET /metrics`: the Prometheus text exposition of [`Metrics`].
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 when Kafka answers, the object store answers and (for a pipeline
//!   that consumes) partitions are assigned; 503 with the reasons otherwise.
//!
//! hyper parses the requests: a malformed head gets a 400, an oversized one a 431, and
//! neither reaches the routes. The endpoint runs inside the pipeline's process, so no
//! client may starve it: connections are bounded in number and in time (a few seconds to
//! send the request head, half a minute in all), and each serves one request and closes,
//! as scrapers and probes expect.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use slog::{debug, Logger};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

/// What one client may take of the endpoint.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Connections served at once; further clients wait in the listen backlog. A scraper
    /// and a few probes need a handful.
    connections: usize,
    /// Time from accepting a connection to its complete request head; a silent or slow
    /// client is disconnected after it instead of holding a connection slot.
    head_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; larger gets a 431.
    head_bytes: usize,
    /// Time from accepting a connection to having written the answer: a client that stops
    /// reading it would otherwise hold its slot for ever.
    connection_timeout: Duration,
}

/// The limits [`serve`] applies.
///
/// A scrape on localhost takes milliseconds; 30 s is above Prometheus's default scrape timeout
/// (10 s), so only a stuck client reaches it.
const LIMITS: Limits = Limits {
    connections: 32,
    head_timeout: Duration::from_secs(5),
    head_bytes: 8 * 1024,
    connection_timeout: Duration::from_secs(30),
};

/// How long to wait after a failed accept that is not the client's fault (typically out of
/// file descriptors), rather than retrying in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the admin endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, readiness: Readiness, log: Logger) {
    serve_with(listener, metrics, readiness, log, LIMITS).await;
}

async fn serve_with(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    log: Logger,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_header_size(limits.head_bytes)
        // One request per connection: the clients (and our tests) read the answer to EOF.
        .keep_alive(false)
        .title_case_headers(true);
    loop {
        // A slot is taken before accepting, so that excess clients queue in the kernel's
        // backlog rather than in this process (mini-redis does the same).
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // never happens: nothing closes the semaphore
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(log, "Admin endpoint could not accept a connection."; "error" => %e);
                if !is_client_error(&e) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let (metrics, log) = (metrics.clone(), log.clone());
        let service = service_fn(move |request: hyper::Request<_>| {
            let response = respond(request.method(), request.uri().path(), &metrics, readiness);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let deadline = limits.connection_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(deadline, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(log, "Admin request failed."; "peer" => %peer, "error" => %e),
                Err(_) => debug!(log, "Admin connection closed: too slow."; "peer" => %peer),
            }
            drop(slot);
        });
    }
}

/// An accept error that concerns one connection only (the next accept may succeed at once).
fn is_client_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

fn respond(method: &Method, path: &str, metrics: &Metrics, readiness: Readiness) -> Response<Full<Bytes>> {
    let (status, content_type, body) = route(method, path, metrics, readiness);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
    }
    response
}

fn route(
    method: &Method,
    path: &str,
    metrics: &Metrics,
    readiness: Readiness,
) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
        "/healthz" => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => match readiness.problems(metrics).as_slice() {
            [] => (StatusCode::OK, TEXT, "ready\n".into()),
            problems => {
                (StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("not ready: {}\n", problems.join(", ")))
            }
        },
        _ => (StatusCode::NOT_FOUND, TEXT, "try /metrics, /healthz or /readyz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Serves a fresh [`Metrics`] with `limits` on a free port.
    async fn start(limits: Limits) -> (SocketAddr, Arc<Metrics>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let log = Logger::root(slog::Discard, slog::o!());
        let readiness = Readiness { consumes: true, stall_after: Some(Duration::from_secs(60)) };
        actix::spawn(serve_with(listener, metrics.clone(), readiness, log, limits));
        (addr, metrics)
    }

    /// Reads until the server closes the connection. A server that closes with request
    /// bytes unread resets it instead; what arrived before the reset still counts.
    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends `request` as it is and returns the whole answer.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        read_all(&mut s).await
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await
    }

    #[actix_rt::test]
    async fn serves_metrics_health_and_readiness() {
        let (addr, metrics) = start(LIMITS).await;
        metrics.records_written.inc_by(7);
        let m = get(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200 OK") && m.contains("egx_records_written_total 7"), "{m}");
        assert!(m.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{m}");
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200 OK") && health.ends_with("\r\n\r\nok\n"), "{health}");
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("not ready: kafka is not reachable, the object store is not reachable, no partitions assigned\n"), "{not_ready}");
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
        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200 OK") && ready.ends_with("\r\n\r\nready\n"), "{ready}");
        metrics.oldest_write_age.set(61.0);
        let stalled = get(addr, "/readyz").await;
        assert!(
            stalled.starts_with("HTTP/1.1 503") && stalled.contains("object writes stalled"),
            "{stalled}"
        );
        metrics.oldest_write_age.set(0.0);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200 OK"));
        let missing = get(addr, "/nope").await;
        assert!(
            missing.starts_with("HTTP/1.1 404") && missing.ends_with("try /metrics, /healthz or /readyz\n")
        );
        // Routes match the path; a query string does not change the answer.
        assert!(get(addr, "/healthz?verbose=1").await.starts_with("HTTP/1.1 200 OK"));
    }

    #[actix_rt::test]
    async fn malformed_requests_are_refused_and_the_endpoint_keeps_serving() {
        let (addr, _) = start(LIMITS).await;
        for junk in [
            &b"garbage\r\n\r\n"[..],
            b"\x00\xff\xfe\r\n\r\n",
            b"GET /healthz HTTP/9.9\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            let answer = exchange(addr, junk).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{junk:?}: {answer}");
        }
        let padding = "a".repeat(LIMITS.head_bytes);
        let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {padding}\r\n\r\n");
        let answer = exchange(addr, huge.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        let post = exchange(addr, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405") && post.contains("\r\nAllow: GET\r\n"), "{post}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
    }

    #[actix_rt::test]
    async fn connections_beyond_the_bound_wait_for_a_free_slot() {
        let (addr, _) = start(Limits { connections: 2, ..LIMITS }).await;
        let first = TcpStream::connect(addr).await.unwrap();
        let _second = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        // No event says "not served": give the server ample time to answer wrongly.
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
        assert!(early.is_err(), "a third connection was served beyond the bound: {early:?}");
        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(5), read_all(&mut third)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok\n"), "{answer}");
    }

    #[actix_rt::test]
    async fn a_client_that_does_not_finish_its_request_head_is_disconnected() {
        let limits = Limits { connections: 1, head_timeout: Duration::from_millis(200), ..LIMITS };
        let (addr, _) = start(limits).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_all(&mut slow)).await.unwrap();
        assert_eq!(answer, "");
        // Its slot, the only one, is free again.
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
    }

    #[actix_rt::test]
    async fn a_client_that_does_not_read_its_answer_is_disconnected() {
        let limits = Limits { connections: 1, connection_timeout: Duration::from_millis(500), ..LIMITS };
        let (addr, metrics) = start(limits).await;
        // An answer far larger than the socket buffers of both ends.
        metrics.fetches.with_label_values(&[&"S".repeat(32 << 20), "ok"]).inc();
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        stuck.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        // The only slot is freed when the deadline closes the stuck connection.
        let answer = tokio::time::timeout(Duration::from_secs(5), get(addr, "/healthz")).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        drop(stuck);
    }

    #[test]
    fn listen_address_is_validated() {
        assert!(AdminConfig { listen: "localhost".into() }.validate().is_err());
        assert!(AdminConfig { listen: String::new() }.validate().is_ok());
        assert!(AdminConfig::default().validate().is_ok());
    }
}
