//! A slow object store: a TCP proxy in front of a real S3 server that holds every chunk a
//! client sends for a fixed delay before passing it on, so every request (and so every
//! object write) takes at least that long. Answers flow back undelayed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The running proxy; it stops when dropped.
pub struct LatencyProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LatencyProxy {
    /// Starts a proxy to `upstream` (`host:port`) on its own thread and runtime, so that
    /// blocking calls in the test cannot stall it.
    pub fn start(upstream: &str, delay: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, upstream, delay) => {}
                }
            });
        });
        Self { port, stop: Some(stop) }
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, delay: Duration) {
    while let Ok((client, _)) = listener.accept().await {
        tokio::spawn(relay(client, upstream.clone(), delay));
    }
}

async fn relay(client: TcpStream, upstream: String, delay: Duration) {
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let requests = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tokio::time::sleep(delay).await;
            if to_server.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let answers = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(requests, answers);
}
