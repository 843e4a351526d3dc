//! A fake TradingView chart feed on `ws://127.0.0.1:<port>`, following the checklist of
//! the reference note: hello and heartbeats (clients that do not echo are dropped),
//! frame lengths in UTF-16 units with Arabic text and an emoji, several frames per
//! message, `symbol_resolved`/`symbol_error`, loading → update → completed for
//! `create_series` with 6 or 7 parameters, `request_more_data` paging from a history per
//! symbol, `du` pushes (5-element bars when volume is absent), `critical_error` and
//! `series_error` for refused resolutions, `t`/`t_ms` fields, connections cut at random
//! (seeded) or on demand, and `set_auth_token` recorded (and, when a token is required,
//! any other refused). Its framing is written independently of the client's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The symbol description sent with `symbol_resolved`: Arabic and an emoji, so that byte
/// and UTF-16 lengths differ.
pub const DESCRIPTION: &str = "البنك التجاري الدولي 🏦";

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Interval between heartbeats.
    pub heartbeat_every: Duration,
    /// A client that has not echoed a heartbeat this long after it was sent is dropped.
    pub heartbeat_grace: Duration,
    /// Most bars in one batch, whatever the client asks for.
    pub page_cap: usize,
    /// Delay before each batch is answered.
    pub batch_delay: Duration,
    /// Chance of cutting the connection before each answer (seeded by `seed`).
    pub cut_chance: f64,
    /// Most random cuts over the server's life.
    pub max_cuts: usize,
    /// Seed of the random cuts.
    pub seed: u64,
    /// Resolutions answered with `critical_error`.
    pub critical_resolutions: Vec<String>,
    /// Resolutions answered with `series_error`.
    pub series_error_resolutions: Vec<String>,
    /// The only token accepted by `set_auth_token` (another is refused with a
    /// `protocol_error`); `None` accepts any.
    pub auth_token: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            heartbeat_every: Duration::from_millis(200),
            heartbeat_grace: Duration::from_secs(2),
            page_cap: 100,
            batch_delay: Duration::ZERO,
            cut_chance: 0.0,
            max_cuts: 0,
            seed: 7,
            critical_resolutions: vec!["240".into()],
            series_error_resolutions: vec!["45".into()],
            auth_token: None,
        }
    }
}

/// One bar of the fake's history; `volume: None` is sent as a 5-element `v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FakeBar {
    /// Unix seconds UTC.
    pub time: i64,
    /// Prices: open, high, low, close.
    pub ohlc: [f64; 4],
    /// Volume.
    pub volume: Option<f64>,
}

impl FakeBar {
    fn v(&self) -> Value {
        let [o, h, l, c] = self.ohlc;
        match self.volume {
            Some(vol) => json!([self.time as f64, o, h, l, c, vol]),
            None => json!([self.time as f64, o, h, l, c]),
        }
    }
}

/// `n` daily bars stamped 10:00 Cairo (08:00 UTC in winter), from 2020-01-05 on.
pub fn daily_bars(n: usize) -> Vec<FakeBar> {
    (0..n as i64)
        .map(|i| {
            let base = 100.0 + i as f64;
            FakeBar {
                time: 1_578_211_200 + i * 86_400,
                ohlc: [base, base + 2.0, base - 1.0, base + 1.0],
                volume: Some(1e4 + i as f64),
            }
        })
        .collect()
}

/// Something every connection must act on.
#[derive(Debug, Clone)]
enum Push {
    Du(String, FakeBar),
    CutAll,
}

/// What the fake has seen.
#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    max_open: AtomicUsize,
    echoes: AtomicUsize,
    heartbeat_drops: AtomicUsize,
    cuts: AtomicUsize,
    more_requests: AtomicUsize,
    headers_ok: AtomicUsize,
}

struct State {
    config: FakeConfig,
    history: Mutex<HashMap<String, Vec<FakeBar>>>,
    /// Every token clients sent with `set_auth_token`, in order.
    auth_tokens: Mutex<Vec<String>>,
    counters: Counters,
    rng: Mutex<StdRng>,
    pushes: broadcast::Sender<Push>,
    accepted: watch::Sender<usize>,
}

/// A running fake feed; stops when dropped.
pub struct FakeTradingView {
    /// `ws://127.0.0.1:<port>/socket.io/websocket`.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTradingView {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.state.pushes.send(Push::CutAll);
    }
}

impl FakeTradingView {
    /// Starts the fake on a free port.
    pub async fn start(config: FakeConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url =
            format!("ws://{}/socket.io/websocket?from=chart&type=chart", listener.local_addr().unwrap());
        let state = Arc::new(State {
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            config,
            history: Mutex::default(),
            auth_tokens: Mutex::default(),
            counters: Counters::default(),
            pushes: broadcast::channel(1024).0,
            accepted: watch::channel(0).0,
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(accept_state.clone(), tcp));
            }
        });
        Self { url, state, task }
    }

    /// Sets the history of `EGX:<ticker>`, oldest first; other symbols are unknown.
    /// Client settings for this server: its address, fast sessions and reconnects.
    pub fn client_config(&self) -> egx_actors::source::TradingViewConfig {
        egx_actors::source::TradingViewConfig {
            url: self.url.clone(),
            sessions_per_second: 1_000.0,
            request_timeout_ms: 5_000,
            reconnect_initial_ms: 10,
            reconnect_max_ms: 100,
            ..egx_actors::source::TradingViewConfig::default()
        }
    }

    pub fn set_history(&self, ticker: &str, bars: Vec<FakeBar>) {
        self.state.history.lock().unwrap().insert(format!("EGX:{ticker}"), bars);
    }

    /// Upserts a bar into the history and pushes it as `du` to every live series of it.
    pub fn push_du(&self, ticker: &str, bar: FakeBar) {
        let ticker = format!("EGX:{ticker}");
        let mut history = self.state.history.lock().unwrap();
        let bars = history.entry(ticker.clone()).or_default();
        match bars.binary_search_by_key(&bar.time, |b| b.time) {
            Ok(i) => bars[i] = bar,
            Err(i) => bars.insert(i, bar),
        }
        let _ = self.state.pushes.send(Push::Du(ticker, bar));
    }

    /// Cuts every open connection without a close frame.
    pub fn cut_all(&self) {
        let _ = self.state.pushes.send(Push::CutAll);
    }

    /// Waits until at least `n` connections have been accepted.
    pub async fn wait_for_connections(&self, n: usize) {
        let mut accepted = self.state.accepted.subscribe();
        accepted.wait_for(|count| *count >= n).await.expect("server alive");
    }

    /// Every token clients sent with `set_auth_token` so far, in order.
    pub fn auth_tokens(&self) -> Vec<String> {
        self.state.auth_tokens.lock().unwrap().clone()
    }

    /// What the fake has seen so far.
    pub fn stats(&self) -> FakeStats {
        let c = &self.state.counters;
        FakeStats {
            connections: *self.state.accepted.borrow(),
            max_open: c.max_open.load(SeqCst),
            echoes: c.echoes.load(SeqCst),
            heartbeat_drops: c.heartbeat_drops.load(SeqCst),
            cuts: c.cuts.load(SeqCst),
            more_requests: c.more_requests.load(SeqCst),
            handshakes_with_headers: c.headers_ok.load(SeqCst),
        }
    }
}

/// What the fake has seen: connections accepted and most open at once, heartbeats echoed,
/// clients dropped for not echoing, random cuts, `request_more_data` commands, and
/// handshakes with the expected Origin and a browser-like User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeStats {
    pub connections: usize,
    pub max_open: usize,
    pub echoes: usize,
    pub heartbeat_drops: usize,
    pub cuts: usize,
    pub more_requests: usize,
    pub handshakes_with_headers: usize,
}

/// `~m~<UTF-16 length>~m~<payload>`, computed independently of the client's codec.
pub fn frame(payload: &str) -> String {
    format!("~m~{}~m~{payload}", payload.encode_utf16().count())
}

/// Splits a message into payloads by UTF-16 lengths; `None` when malformed.
pub fn unframe(message: &str) -> Option<Vec<String>> {
    let mut units: &[u16] = &message.encode_utf16().collect::<Vec<_>>();
    let marker: Vec<u16> = "~m~".encode_utf16().collect();
    let mut out = Vec::new();
    while !units.is_empty() {
        units = units.strip_prefix(marker.as_slice())?;
        let digits = units.iter().take_while(|u| (b'0' as u16..=b'9' as u16).contains(u)).count();
        let n: usize = String::from_utf16(&units[..digits]).ok()?.parse().ok()?;
        units = units[digits..].strip_prefix(marker.as_slice())?;
        out.push(String::from_utf16(units.get(..n)?).ok()?);
        units = &units[n..];
    }
    Some(out)
}

/// A server message with the `t`/`t_ms` fields recent traffic carries.
fn message(method: &str, params: Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    json!({"m": method, "p": params, "t": now.as_secs(), "t_ms": now.as_millis() as u64}).to_string()
}

/// A series served on a chart session.
struct Served {
    ticker: String,
    turnaround: String,
    /// Bars sent so far, counted from the newest.
    sent: usize,
}

/// A chart session: resolved symbols (`None` = unknown) and series.
#[derive(Default)]
struct Chart {
    symbols: HashMap<String, Option<String>>,
    series: HashMap<String, Served>,
    /// `symbol_resolved` frames sent together with the next batch (several frames per message).
    deferred: Vec<String>,
}

/// The connection is to be dropped (cut, protocol error, missed heartbeat, client gone).
struct Hangup;

/// An answer waiting in the outbox.
enum Out {
    /// Frames sent together in one websocket message.
    Frames(Vec<String>),
    /// Hang up (after a `protocol_error`).
    Close,
}

struct Conn {
    state: Arc<State>,
    ws: WebSocketStream<TcpStream>,
    charts: HashMap<String, Chart>,
    authed: bool,
    beats: u64,
    awaiting: Option<(u64, Instant)>,
    outbox: VecDeque<(Instant, Out)>,
}

async fn serve(state: Arc<State>, tcp: TcpStream) {
    let headers_state = state.clone();
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    // The signature is tungstenite's handshake callback; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let h = req.headers();
        let origin = h.get("origin").and_then(|v| v.to_str().ok()) == Some("https://www.tradingview.com");
        if origin && h.get("user-agent").is_some_and(|v| v.as_bytes().starts_with(b"Mozilla/5.0")) {
            headers_state.counters.headers_ok.fetch_add(1, SeqCst);
        }
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else { return };
    let c = &state.counters;
    let open = c.open.fetch_add(1, SeqCst) + 1;
    c.max_open.fetch_max(open, SeqCst);
    state.accepted.send_modify(|n| *n += 1);
    let pushes = state.pushes.subscribe();
    let mut conn = Conn {
        state: state.clone(),
        ws,
        charts: HashMap::new(),
        authed: false,
        beats: 0,
        awaiting: None,
        outbox: VecDeque::new(),
    };
    conn.run(pushes).await;
    c.open.fetch_sub(1, SeqCst);
}

impl Conn {
    async fn run(&mut self, mut pushes: broadcast::Receiver<Push>) {
        let hello = json!({"session_id": "<0.123.456>_fake", "timestamp": 1_736_064_000,
            "release": "fake", "protocol": "json", "javastudies": ["3.66"]});
        if self.write(vec![hello.to_string()]).await.is_err() {
            return;
        }
        let mut beat = interval(self.state.config.heartbeat_every);
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        beat.tick().await;
        loop {
            let due = self.outbox.front().map(|(due, _)| *due);
            let step = tokio::select! {
                incoming = self.ws.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(Hangup),
                    Some(Ok(_)) => Ok(()),
                },
                _ = beat.tick() => self.heartbeat().await,
                push = pushes.recv() => match push {
                    Ok(Push::Du(ticker, bar)) => { self.du(&ticker, bar); Ok(()) }
                    Ok(Push::CutAll) | Err(broadcast::error::RecvError::Closed) => Err(Hangup),
                    Err(broadcast::error::RecvError::Lagged(_)) => Ok(()),
                },
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => self.flush_due().await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn write(&mut self, payloads: Vec<String>) -> Result<(), Hangup> {
        let text: String = payloads.iter().map(|p| frame(p)).collect();
        self.ws.send(Message::text(text)).await.map_err(|_| Hangup)
    }

    /// Queues an answer after `delay`, keeping answers in order.
    fn queue(&mut self, delay: Duration, payloads: Vec<String>) {
        let due = self.outbox.back().map_or(Instant::now(), |(d, _)| *d).max(Instant::now()) + delay;
        self.outbox.push_back((due, Out::Frames(payloads)));
    }

    async fn flush_due(&mut self) -> Result<(), Hangup> {
        match self.outbox.pop_front() {
            None => Ok(()),
            Some((_, Out::Close)) => Err(Hangup),
            Some(_) if self.roll_cut() => Err(Hangup),
            Some((_, Out::Frames(payloads))) => self.write(payloads).await,
        }
    }

    fn roll_cut(&self) -> bool {
        let config = &self.state.config;
        let cut = self.state.counters.cuts.load(SeqCst) < config.max_cuts
            && self.state.rng.lock().unwrap().random_bool(config.cut_chance.clamp(0.0, 1.0));
        if cut {
            self.state.counters.cuts.fetch_add(1, SeqCst);
        }
        cut
    }

    async fn heartbeat(&mut self) -> Result<(), Hangup> {
        if let Some((_, sent)) = self.awaiting {
            if sent.elapsed() > self.state.config.heartbeat_grace {
                self.state.counters.heartbeat_drops.fetch_add(1, SeqCst);
                return Err(Hangup);
            }
            return Ok(());
        }
        self.beats += 1;
        self.awaiting = Some((self.beats, Instant::now()));
        self.write(vec![format!("~h~{}", self.beats)]).await
    }

    fn on_text(&mut self, text: &str) -> Result<(), Hangup> {
        let Some(payloads) = unframe(text) else { return self.refuse("wrong data") };
        for payload in payloads {
            if let Some(n) = payload.strip_prefix("~h~") {
                if self.awaiting.is_some_and(|(beat, _)| n == beat.to_string()) {
                    self.awaiting = None;
                    self.state.counters.echoes.fetch_add(1, SeqCst);
                }
                continue;
            }
            let Ok(parsed) = serde_json::from_str::<Value>(&payload) else {
                return self.refuse("wrong data");
            };
            let method = parsed["m"].as_str().unwrap_or_default().to_string();
            let p = parsed["p"].as_array().cloned().unwrap_or_default();
            if !self.authed && method != "set_auth_token" {
                return self.refuse("set_auth_token must come first");
            }
            if method == "set_auth_token" {
                if !self.authenticate(p.first().and_then(Value::as_str).unwrap_or_default()) {
                    return self.refuse("invalid auth token");
                }
                continue;
            }
            self.command(&method, &p);
        }
        Ok(())
    }

    /// Records the token; accepts it (true) unless another one is required.
    fn authenticate(&mut self, token: &str) -> bool {
        self.state.auth_tokens.lock().unwrap().push(token.to_string());
        let required = self.state.config.auth_token.as_deref();
        self.authed = required.is_none_or(|required| required == token);
        self.authed
    }

    /// Queues a `protocol_error` and ends the connection after it.
    fn refuse(&mut self, reason: &str) -> Result<(), Hangup> {
        let frames = vec![message("protocol_error", json!([reason]))];
        self.outbox.clear();
        self.outbox.push_back((Instant::now(), Out::Frames(frames)));
        self.outbox.push_back((Instant::now(), Out::Close));
        Ok(())
    }

    fn command(&mut self, method: &str, p: &[Value]) {
        let s = |i: usize| p.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
        match method {
            "chart_create_session" => {
                self.charts.insert(s(0), Chart::default());
            }
            "chart_delete_session" => {
                self.charts.remove(&s(0));
            }
            "resolve_symbol" => self.resolve(s(0), s(1), &s(2)),
            "create_series" => self.create_series(p),
            "request_more_data" => {
                self.state.counters.more_requests.fetch_add(1, SeqCst);
                let count = p.get(2).and_then(Value::as_u64).unwrap_or(0) as usize;
                self.more(s(0), s(1), count);
            }
            _ => {}
        }
    }

    fn resolve(&mut self, cs: String, symbol_id: String, spec: &str) {
        let spec: Value =
            spec.strip_prefix('=').and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        let ticker = spec["symbol"].as_str().unwrap_or_default().to_string();
        let known = self.state.history.lock().unwrap().contains_key(&ticker);
        let Some(chart) = self.charts.get_mut(&cs) else { return };
        if known {
            let name = ticker.trim_start_matches("EGX:");
            let info = json!({"name": name, "description": DESCRIPTION, "exchange": "EGX",
                "currency_code": "EGP", "timezone": "Africa/Cairo", "session": "1000-1430",
                "type": "stock", "pricescale": 100});
            chart.deferred.push(message("symbol_resolved", json!([cs, symbol_id, info])));
            chart.symbols.insert(symbol_id, Some(ticker.clone()));
        } else {
            let error = message("symbol_error", json!([cs, symbol_id, "invalid symbol"]));
            chart.symbols.insert(symbol_id, None);
            self.queue(Duration::ZERO, vec![error]);
        }
    }

    /// `create_series` with 6 or 7 parameters (the 7th, `""`, is ignored).
    fn create_series(&mut self, p: &[Value]) {
        let s = |i: usize| p.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
        let (cs, id, turn, symbol_id, res) = (s(0), s(1), s(2), s(3), s(4));
        let count = p.get(5).and_then(Value::as_u64).unwrap_or(0) as usize;
        let config = self.state.config.clone();
        let Some(chart) = self.charts.get_mut(&cs) else { return };
        let mut frames = std::mem::take(&mut chart.deferred);
        if config.critical_resolutions.contains(&res) {
            let detail =
                format!("method: create_series. args: [{cs}, {id}, {turn}, {symbol_id}, {res}, {count}]");
            frames.push(message("critical_error", json!([cs, "invalid parameters", detail])));
            return self.queue(Duration::ZERO, frames);
        }
        if config.series_error_resolutions.contains(&res) {
            frames.push(message("series_error", json!([cs, id, turn, "custom_resolution"])));
            return self.queue(Duration::ZERO, frames);
        }
        let Some(Some(ticker)) = chart.symbols.get(&symbol_id).cloned() else { return };
        chart.series.insert(id.clone(), Served { ticker, turnaround: turn.clone(), sent: 0 });
        frames.push(message("series_loading", json!([cs, id, turn])));
        self.batch(cs, id, count, frames);
    }

    fn more(&mut self, cs: String, id: String, count: usize) {
        self.batch(cs, id, count, Vec::new());
    }

    /// Queues the next `count` older bars of a series, then `series_completed`.
    fn batch(&mut self, cs: String, id: String, count: usize, mut frames: Vec<String>) {
        let Some(served) = self.charts.get_mut(&cs).and_then(|c| c.series.get_mut(&id)) else { return };
        let history = self.state.history.lock().unwrap().get(&served.ticker).cloned().unwrap_or_default();
        let end = history.len().saturating_sub(served.sent);
        let start = end.saturating_sub(count.min(self.state.config.page_cap));
        served.sent = history.len() - start;
        let turnaround = served.turnaround.clone();
        if start < end {
            let s: Vec<Value> = (start..end).map(|i| json!({"i": i, "v": history[i].v()})).collect();
            let changes: Vec<Value> = history[start..end].iter().map(|b| json!(b.time as f64)).collect();
            let close_time = history[end - 1].time + 86_400;
            let update = json!([cs, {id.clone(): {"node": "fake-node", "s": s,
                "ns": {"d": "", "indexes": []}, "t": turnaround, "lbs": {"bar_close_time": close_time}}},
                {"index": 0, "zoffset": 0, "changes": changes, "marks": [], "index_diff": []}]);
            frames.push(message("timescale_update", update));
        }
        frames.push(message(
            "series_completed",
            json!([cs, id, "streaming", turnaround, {"rt_update_period": 0, "data_completed": "limit"}]),
        ));
        let delay = self.state.config.batch_delay;
        self.queue(delay, frames);
    }

    /// Queues a `du` for every series of the ticker on this connection.
    fn du(&mut self, ticker: &str, bar: FakeBar) {
        let mut frames = Vec::new();
        for (cs, chart) in &self.charts {
            for (id, served) in chart.series.iter().filter(|(_, s)| s.ticker == ticker) {
                let update = json!([cs, {id.clone(): {"s": [{"i": served.sent, "v": bar.v()}],
                    "ns": {"d": "", "indexes": "nochange"}, "t": served.turnaround,
                    "lbs": {"bar_close_time": bar.time + 86_400}}}]);
                frames.push(message("du", update));
            }
        }
        if !frames.is_empty() {
            self.queue(Duration::ZERO, frames);
        }
    }
}

#[test]
fn the_fake_frames_in_utf16_units() {
    let framed = frame(DESCRIPTION);
    assert!(framed.starts_with("~m~23~m~"), "{framed}");
    assert_eq!(unframe(&format!("{framed}{}", frame("~h~1"))).unwrap(), [DESCRIPTION, "~h~1"]);
    assert!(unframe("~m~99~m~x").is_none());
}
