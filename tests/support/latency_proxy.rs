//! A slow or stalled object store: a TCP proxy in front of a real S3 server that holds
//! every chunk a client sends for a fixed delay before passing it on (so every request
//! takes at least that long), and that can hold requests back altogether until released
//! (a request that left the client but lands on the server much later). Answers flow back
//! undelayed. It keeps the request line and header lines of every request it saw, and
//! whether the server has answered it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Its request line, e.g. `PUT /bucket/key?x-id=PutObject HTTP/1.1`.
    pub line: String,
    /// Its header lines as (lower-cased name, value), in the order sent.
    pub headers: Vec<(String, String)>,
    /// Sent while the proxy was holding requests back.
    pub held: bool,
    /// The server has started answering it.
    pub answered: bool,
}

/// The running proxy; it stops when dropped.
pub struct LatencyProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    hold: watch::Sender<bool>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl LatencyProxy {
    /// Starts a proxy to `upstream` (`host:port`) on its own thread and runtime, so that
    /// blocking calls in the test cannot stall it.
    pub fn start(upstream: &str, delay: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (hold, gate) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let relay = Relay { upstream: upstream.to_string(), delay, gate, seen: seen.clone() };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, relay) => {}
                }
            });
        });
        Self { port, stop: Some(stop), hold, seen }
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, requests are read from clients but not passed on until [`Self::release`].
    pub fn hold(&self) {
        self.hold.send_replace(true);
    }

    /// Passes on everything held back, and lets new requests through.
    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("proxy log").clone()
    }
}

impl SeenRequest {
    /// Its method, e.g. `PUT`.
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or_default()
    }

    /// The value of header `name` (lower case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone)]
struct Relay {
    upstream: String,
    delay: Duration,
    gate: watch::Receiver<bool>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

async fn accept_loop(listener: TcpListener, relay: Relay) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(relay.clone().run(client));
    }
}

/// The longest request head kept for its header lines; a longer one keeps none.
const MAX_HEAD: usize = 64 * 1024;

/// The header lines of a request head (everything before the blank line), names lower-cased.
fn header_lines(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect()
}

/// The request line if `chunk` starts a request (`METHOD /path HTTP/1.1`).
fn request_line(chunk: &[u8]) -> Option<String> {
    let line = chunk.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(line).trim_end().to_string();
    let method = line.split(' ').next()?;
    (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) && line.ends_with("HTTP/1.1"))
        .then_some(line)
}

impl Relay {
    async fn run(mut self, client: TcpStream) {
        let Ok(server) = TcpStream::connect(&self.upstream).await else { return };
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        // The request on this connection the next answer belongs to (HTTP/1.1, no pipelining).
        let pending: Arc<Mutex<Option<usize>>> = Arc::default();
        let seen = self.seen.clone();
        let answered = pending.clone();
        let requests = async {
            let mut buf = vec![0u8; 64 * 1024];
            // The head of the latest request until its blank line arrived (it may span reads).
            let mut head: Option<(usize, Vec<u8>)> = None;
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let held = *self.gate.borrow();
                if let Some(line) = request_line(&buf[..n]) {
                    let mut seen = seen.lock().expect("proxy log");
                    seen.push(SeenRequest { line, headers: Vec::new(), held, answered: false });
                    *pending.lock().expect("pending") = Some(seen.len() - 1);
                    head = Some((seen.len() - 1, Vec::new()));
                }
                if let Some((i, bytes)) = head.as_mut() {
                    bytes.extend_from_slice(&buf[..n]);
                    if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.lock().expect("proxy log")[*i].headers = header_lines(&bytes[..end]);
                        head = None;
                    } else if bytes.len() > MAX_HEAD {
                        head = None;
                    }
                }
                // Held chunks wait here, whatever the client does meanwhile.
                let _ = self.gate.wait_for(|holding| !holding).await;
                tokio::time::sleep(self.delay).await;
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        };
        let answers = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from_server.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(i) = answered.lock().expect("pending").take() {
                    self.seen.lock().expect("proxy log")[i].answered = true;
                }
                // A client that went away does not stop the server's answers being read.
                let _ = to_client.write_all(&buf[..n]).await;
            }
            let _ = to_client.shutdown().await;
        };
        tokio::join!(requests, answers);
    }
}
