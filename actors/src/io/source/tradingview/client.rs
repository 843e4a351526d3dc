//! Shared websocket connections. A [`Pool`] owns a fixed number of connection slots, each
//! a task holding at most one socket at a time, and multiplexes the chart sessions of all
//! symbols over them. A slot connects when a session is wanted, echoes heartbeats,
//! routes server messages to their sessions, and after a drop reconnects with backoff
//! and jitter; the sessions it held see their event channel end and start afresh (with
//! fresh session ids) on whatever connection the pool gives them next.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use slog::{debug, info, warn, Logger};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, ORIGIN, USER_AGENT};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::codec;
use super::config::TradingViewConfig;
use super::protocol::{self, ChartEvent, ServerPayload};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a chart session could not be had or a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The websocket handshake or a read/write failed.
    #[error("websocket: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A configured header is not a valid header value.
    #[error("invalid header value: {0}")]
    Header(#[from] tokio_tungstenite::tungstenite::http::header::InvalidHeaderValue),
    /// No connection or session came within the time-out.
    #[error("timed out waiting for a connection")]
    TimedOut,
    /// The connection task is gone (its runtime stopped).
    #[error("connection task ended")]
    TaskEnded,
    /// A session was asked for outside a Tokio runtime, where no connection task can run.
    #[error("no Tokio runtime to run the connection in")]
    NoRuntime,
}

/// A request to a connection slot.
enum Control {
    /// Create a chart session and reply with its id and event channel.
    Open(oneshot::Sender<(String, mpsc::UnboundedReceiver<ChartEvent>)>),
    /// Send a framed command for a session (dropped if the session is gone).
    Send(String, String),
    /// Delete a session.
    Close(String),
}

/// A chart session on one connection. Dropping it deletes the session on the server.
pub struct ChartSession {
    id: String,
    events: mpsc::UnboundedReceiver<ChartEvent>,
    control: mpsc::UnboundedSender<Control>,
}

impl ChartSession {
    /// The session id (`cs_` + 12 letters).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a framed command; a lost connection shows up as the end of the events.
    pub fn send(&self, frame: String) {
        let _ = self.control.send(Control::Send(self.id.clone(), frame));
    }

    /// The session's next server event; `None` once its connection is lost.
    pub async fn next_event(&mut self) -> Option<ChartEvent> {
        self.events.recv().await
    }
}

impl Drop for ChartSession {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Close(std::mem::take(&mut self.id)));
    }
}

/// Spaces chart-session starts across the whole pool.
struct RateLimiter {
    spacing: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// Waits for this caller's turn.
    async fn acquire(&self) {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let turn = (*next).max(Instant::now());
            *next = turn + self.spacing;
            turn
        };
        sleep_until(turn).await;
    }
}

/// The shared connections of one source.
pub struct Pool {
    config: Arc<TradingViewConfig>,
    slots: Vec<Mutex<Option<mpsc::UnboundedSender<Control>>>>,
    next: AtomicUsize,
    limiter: RateLimiter,
    log: Logger,
}

impl Pool {
    /// A pool of `config.connections` slots; nothing connects until a session is opened.
    pub fn new(config: Arc<TradingViewConfig>, log: Logger) -> Self {
        Self {
            slots: (0..config.connections).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            limiter: RateLimiter { spacing: config.session_spacing(), next: Mutex::new(Instant::now()) },
            config,
            log,
        }
    }

    /// Opens a chart session on the next slot, at the pool's session rate, waiting for a
    /// connection at most the request time-out. Must run inside a Tokio runtime.
    pub async fn open_session(&self) -> Result<ChartSession, ConnectionError> {
        self.limiter.acquire().await;
        let control = self.slot()?;
        let (reply, answer) = oneshot::channel();
        control.send(Control::Open(reply)).map_err(|_| ConnectionError::TaskEnded)?;
        let (id, events) = timeout(self.config.request_timeout(), answer)
            .await
            .map_err(|_| ConnectionError::TimedOut)?
            .map_err(|_| ConnectionError::TaskEnded)?;
        Ok(ChartSession { id, events, control })
    }

    /// The control channel of the next slot, starting its task if it is not running.
    fn slot(&self) -> Result<mpsc::UnboundedSender<Control>, ConnectionError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[index].lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(control) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(control.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConnectionError::NoRuntime)?;
        let (control, requests) = mpsc::unbounded_channel();
        let log = self.log.new(slog::o!("connection" => index));
        runtime.spawn(Connection::new(self.config.clone(), log).run(requests));
        *slot = Some(control.clone());
        Ok(control)
    }
}

/// Why a connected socket stopped being served.
enum Ended {
    /// The pool is gone: stop for good.
    PoolDropped,
    /// The socket was lost; `healthy` tells whether the server had greeted it.
    Lost { reason: String, healthy: bool },
}

/// One connection slot's task.
struct Connection {
    config: Arc<TradingViewConfig>,
    log: Logger,
    sessions: HashMap<String, mpsc::UnboundedSender<ChartEvent>>,
    failures: u32,
    greeted: bool,
}

impl Connection {
    fn new(config: Arc<TradingViewConfig>, log: Logger) -> Self {
        Self { config, log, sessions: HashMap::new(), failures: 0, greeted: false }
    }

    /// Connects when sessions are wanted, serves the socket, reconnects after drops.
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Control>) {
        let mut pending: VecDeque<Control> = VecDeque::new();
        loop {
            pending.retain(|c| matches!(c, Control::Open(reply) if !reply.is_closed()));
            if pending.is_empty() {
                match requests.recv().await {
                    Some(request) => pending.push_back(request),
                    None => return,
                }
                continue;
            }
            if self.failures > 0 {
                sleep(self.config.reconnect_backoff().delay(self.failures - 1)).await;
            }
            let socket = match timeout(self.config.request_timeout(), connect(&self.config)).await {
                Ok(Ok(socket)) => socket,
                Ok(Err(e)) => {
                    self.failures += 1;
                    warn!(self.log, "Connecting to the feed failed; retrying with backoff."; "error" => %e, "failures" => self.failures);
                    continue;
                }
                Err(_) => {
                    self.failures += 1;
                    warn!(self.log, "Connecting to the feed timed out; retrying with backoff."; "failures" => self.failures);
                    continue;
                }
            };
            self.greeted = false;
            let ended = self.serve(socket, &mut pending, &mut requests).await;
            self.sessions.clear();
            match ended {
                Ended::PoolDropped => return,
                Ended::Lost { reason, healthy } => {
                    self.failures = if healthy { 1 } else { self.failures + 1 };
                    info!(self.log, "Feed connection lost; its sessions start afresh."; "reason" => reason);
                }
            }
        }
    }

    /// Serves one socket until it is lost or the pool is dropped.
    async fn serve(
        &mut self,
        mut socket: Socket,
        pending: &mut VecDeque<Control>,
        requests: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Ended {
        debug!(self.log, "Feed connection open.");
        if let Err(reason) =
            send(&mut socket, protocol::set_auth_token(self.config.auth_token.expose())).await
        {
            return self.lost(reason);
        }
        while let Some(request) = pending.pop_front() {
            if let Err(reason) = self.control(&mut socket, request).await {
                return self.lost(reason);
            }
        }
        let idle = self.config.idle_timeout();
        let silence = sleep(idle);
        tokio::pin!(silence);
        loop {
            let step = tokio::select! {
                message = socket.next() => {
                    silence.as_mut().reset(Instant::now() + idle);
                    self.receive(&mut socket, message).await
                }
                request = requests.recv() => match request {
                    Some(request) => self.control(&mut socket, request).await,
                    None => {
                        let _ = socket.close(None).await;
                        return Ended::PoolDropped;
                    }
                },
                () = &mut silence => Err(format!("nothing received for {idle:?}")),
            };
            if let Err(reason) = step {
                return self.lost(reason);
            }
        }
    }

    fn lost(&self, reason: String) -> Ended {
        Ended::Lost { reason, healthy: self.greeted }
    }

    /// Carries out a request from a session.
    async fn control(&mut self, socket: &mut Socket, request: Control) -> Result<(), String> {
        match request {
            Control::Open(reply) => {
                if reply.is_closed() {
                    return Ok(());
                }
                let id = protocol::session_id("cs_");
                send(socket, protocol::chart_create_session(&id)).await?;
                let (events, receiver) = mpsc::unbounded_channel();
                self.sessions.insert(id.clone(), events);
                if let Err((id, _)) = reply.send((id, receiver)) {
                    self.sessions.remove(&id);
                    send(socket, protocol::chart_delete_session(&id)).await?;
                }
                Ok(())
            }
            Control::Send(id, frame) if self.sessions.contains_key(&id) => send(socket, frame).await,
            Control::Send(..) => Ok(()),
            Control::Close(id) => match self.sessions.remove(&id) {
                Some(_) => send(socket, protocol::chart_delete_session(&id)).await,
                None => Ok(()),
            },
        }
    }

    /// Handles one websocket message from the server.
    async fn receive(
        &mut self,
        socket: &mut Socket,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), String> {
        let text = match message {
            None => return Err("connection closed".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => return Ok(()),
        };
        let payloads = codec::decode(text.as_str()).map_err(|e| format!("bad frame: {e}"))?;
        for payload in payloads {
            match protocol::parse(payload) {
                Ok(ServerPayload::Heartbeat) => send(socket, codec::encode(payload)).await?,
                Ok(ServerPayload::Hello) => {
                    self.greeted = true;
                    self.failures = 0;
                }
                Ok(ServerPayload::Event(event)) => self.route(socket, event).await?,
                Err(e) => warn!(self.log, "Ignoring an unreadable payload from the feed."; "error" => %e),
            }
        }
        Ok(())
    }

    /// Passes an event to its session, or to every session for connection-wide errors.
    async fn route(&mut self, socket: &mut Socket, event: ChartEvent) -> Result<(), String> {
        match event.session().map(str::to_string) {
            Some(id) => {
                let delivered = self.sessions.get(&id).map(|events| events.send(event).is_ok());
                if delivered == Some(false) {
                    self.sessions.remove(&id);
                    send(socket, protocol::chart_delete_session(&id)).await?;
                }
            }
            None if matches!(event, ChartEvent::ProtocolError { .. } | ChartEvent::CriticalError { .. }) => {
                warn!(self.log, "The feed reported a connection-wide error."; "event" => ?event);
                for events in self.sessions.values() {
                    let _ = events.send(event.clone());
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// Sends one text message.
async fn send(socket: &mut Socket, frame: String) -> Result<(), String> {
    socket.send(Message::text(frame)).await.map_err(|e| format!("send failed: {e}"))
}

/// Opens a websocket with the configured Origin and User-Agent.
async fn connect(config: &TradingViewConfig) -> Result<Socket, ConnectionError> {
    let mut request = config.url.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(ORIGIN, HeaderValue::from_str(&config.origin)?);
    headers.insert(USER_AGENT, HeaderValue::from_str(&config.user_agent)?);
    let (socket, _response) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limiter_spaces_turns() {
        let limiter = RateLimiter { spacing: Duration::from_millis(20), next: Mutex::new(Instant::now()) };
        let start = Instant::now();
        for _ in 0..4 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(60), "{:?}", start.elapsed());
    }
}
