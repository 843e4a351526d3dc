//! The native TradingView source against the fake feed in `support::fake_tradingview`:
//! paging, per-symbol errors, heartbeats, random cuts, shared connections, streaming.
//! No Kafka or S3 needed.

use std::time::{Duration, Instant};

use chrono::DateTime;
use egx_actors::source::tradingview::protocol::{self, ChartEvent, ServerPayload};
use egx_actors::source::tradingview::{codec, TradingViewConfig, TradingViewSource};
use egx_actors::source::{FetchRequest, Source, SourceError};
use egx_actors::{Bar, Interval, Symbol};
use futures::{SinkExt, StreamExt};
use tokio::time::timeout;

use crate::support::fake_tradingview::{daily_bars, FakeBar, FakeConfig, FakeTradingView};
use crate::support::test_logger;

/// Guard against a hang: every await on the source is bounded by this.
const LIMIT: Duration = Duration::from_secs(30);

fn config(server: &FakeTradingView) -> TradingViewConfig {
    server.client_config()
}

fn source(config: TradingViewConfig) -> TradingViewSource {
    TradingViewSource::new(config, test_logger()).unwrap()
}

fn request(ticker: &str, interval: Interval, n_bars: usize) -> FetchRequest {
    FetchRequest {
        symbol: Symbol::parse(ticker).unwrap(),
        exchange: "EGX".into(),
        interval,
        n_bars,
        start_date: None,
        end_date: None,
    }
}

/// The bar the source should make of a fake bar.
fn expected(ticker: &str, bar: &FakeBar) -> Bar {
    let [open, high, low, close] = bar.ohlc;
    Bar {
        symbol: Symbol::parse(ticker).unwrap(),
        exchange: "EGX".into(),
        interval: Interval::Daily,
        time: DateTime::from_timestamp(bar.time, 0).unwrap(),
        open,
        high,
        low,
        close,
        volume: bar.volume,
    }
}

fn expected_tail(ticker: &str, history: &[FakeBar], n: usize) -> Vec<Bar> {
    history[history.len() - n..].iter().map(|b| expected(ticker, b)).collect()
}

async fn fetch(source: &TradingViewSource, request: FetchRequest) -> Result<Vec<Bar>, SourceError> {
    timeout(LIMIT, source.fetch(request)).await.expect("fetch finished")
}

/// Fetching more bars than a batch holds pages back and returns exactly the latest n, oldest first, in UTC.
#[tokio::test]
async fn history_fetch_pages_across_several_batches() {
    let server = FakeTradingView::start(FakeConfig { page_cap: 100, ..FakeConfig::default() }).await;
    let history = daily_bars(1_000);
    server.set_history("COMI", history.clone());
    let bars = fetch(&source(config(&server)), request("COMI", Interval::Daily, 350)).await.unwrap();
    assert_eq!(bars, expected_tail("COMI", &history, 350));
    assert_eq!(server.stats().more_requests, 3, "350 bars at 100 per batch take three more rounds");
    assert_eq!(bars[0].time.to_rfc3339(), "2021-10-16T08:00:00+00:00");
    assert_eq!(server.stats().handshakes_with_headers, 1, "Origin and User-Agent sent");
}

/// A `symbol_error` fails the fetch at once with `UnknownSymbol`, without waiting for a
/// time-out: the request time-out is an hour, so an answer within the hang guard proves it.
#[tokio::test]
async fn unknown_symbol_fails_fast() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let patient = TradingViewConfig { request_timeout_ms: 3_600_000, fetch_attempts: 1, ..config(&server) };
    let error = fetch(&source(patient), request("NOPE", Interval::Daily, 10)).await.unwrap_err();
    assert!(matches!(&error, SourceError::UnknownSymbol(s) if s.contains("EGX:NOPE")), "{error}");
}

/// `critical_error`/`series_error` for a refused resolution give an interval error naming it.
#[tokio::test]
async fn refused_resolutions_give_clear_interval_errors() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    server.set_history("COMI", daily_bars(50));
    let source = source(config(&server));
    for minutes in [240, 45] {
        let error = fetch(&source, request("COMI", Interval::Minutes(minutes), 10)).await.unwrap_err();
        let SourceError::Interval(message) = &error else { panic!("not an interval error: {error}") };
        assert!(message.starts_with(&format!("{minutes} for EGX:COMI")), "{message}");
    }
    assert_eq!(fetch(&source, request("COMI", Interval::Daily, 10)).await.unwrap().len(), 10);
}

/// A symbol with less history than requested ends cleanly with all it has.
#[tokio::test]
async fn short_history_ends_cleanly() {
    let server = FakeTradingView::start(FakeConfig { page_cap: 20, ..FakeConfig::default() }).await;
    let history = daily_bars(30);
    server.set_history("RAYA", history.clone());
    let bars = fetch(&source(config(&server)), request("RAYA", Interval::Daily, 500)).await.unwrap();
    assert_eq!(bars, expected_tail("RAYA", &history, 30));
}

/// Date bounds select by Cairo trading date and still honour `n_bars`.
#[tokio::test]
async fn date_bounds_select_trading_dates() {
    let server = FakeTradingView::start(FakeConfig { page_cap: 40, ..FakeConfig::default() }).await;
    let history = daily_bars(200);
    server.set_history("ETEL", history.clone());
    let mut req = request("ETEL", Interval::Daily, 5);
    req.start_date = Some("2020-02-01".parse().unwrap());
    req.end_date = Some("2020-02-20".parse().unwrap());
    let bars = fetch(&source(config(&server)), req).await.unwrap();
    let dates: Vec<String> = bars.iter().map(|b| b.trading_date().to_string()).collect();
    assert_eq!(dates, ["2020-02-16", "2020-02-17", "2020-02-18", "2020-02-19", "2020-02-20"]);
}

/// Heartbeats are echoed: a fetch spanning many heartbeats of a strict server keeps one connection.
/// The fetch (25 batches, 200 ms apart) lasts several times the grace, so a client that did
/// not echo would be dropped mid-fetch; the grace itself leaves a loaded machine a second.
#[tokio::test]
async fn heartbeats_are_echoed_during_a_long_fetch() {
    let fake = FakeConfig {
        heartbeat_every: Duration::from_millis(100),
        heartbeat_grace: Duration::from_secs(1),
        batch_delay: Duration::from_millis(200),
        page_cap: 10,
        ..FakeConfig::default()
    };
    let server = FakeTradingView::start(fake).await;
    let history = daily_bars(300);
    server.set_history("COMI", history.clone());
    let bars = fetch(&source(config(&server)), request("COMI", Interval::Daily, 250)).await.unwrap();
    assert_eq!(bars, expected_tail("COMI", &history, 250));
    assert!(server.stats().echoes >= 10, "only {} heartbeats echoed", server.stats().echoes);
    assert_eq!((server.stats().heartbeat_drops, server.stats().connections), (0, 1));
}

/// The fake drops a client that does not echo heartbeats (so the test above means something).
#[tokio::test]
async fn the_fake_drops_clients_that_do_not_echo() {
    let fake = FakeConfig {
        heartbeat_every: Duration::from_millis(20),
        heartbeat_grace: Duration::from_millis(100),
        ..FakeConfig::default()
    };
    let server = FakeTradingView::start(fake).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url.as_str()).await.unwrap();
    let mut heartbeats = 0;
    while let Some(Ok(message)) = timeout(LIMIT, ws.next()).await.expect("dropped in time") {
        heartbeats += usize::from(message.to_text().unwrap_or_default().contains("~h~"));
    }
    assert_eq!((heartbeats, server.stats().heartbeat_drops), (1, 1));
}

/// With connections cut at random, every fetch still returns exactly its bars, once each.
#[tokio::test]
async fn random_cuts_neither_fail_nor_duplicate_fetches() {
    let fake = FakeConfig { page_cap: 30, cut_chance: 0.25, max_cuts: 6, seed: 11, ..FakeConfig::default() };
    let server = FakeTradingView::start(fake).await;
    let tickers: Vec<String> = (0..6).map(|i| format!("CUT{i}")).collect();
    for ticker in &tickers {
        server.set_history(ticker, daily_bars(200));
    }
    let source = source(TradingViewConfig { fetch_attempts: 8, ..config(&server) });
    let fetches = tickers.iter().map(|t| fetch(&source, request(t, Interval::Daily, 120)));
    let results = futures::future::join_all(fetches).await;
    for (ticker, result) in tickers.iter().zip(results) {
        assert_eq!(result.unwrap(), expected_tail(ticker, &daily_bars(200), 120), "{ticker}");
    }
    assert!(server.stats().cuts > 0, "the seed should cut at least once");
    assert!(server.stats().connections > 2, "cuts force reconnects");
}

/// 50 concurrent fetches of different symbols share `connections` sockets.
#[tokio::test]
async fn fifty_concurrent_fetches_share_two_connections() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let tickers: Vec<String> = (0..50).map(|i| format!("SYM{i:02}")).collect();
    for ticker in &tickers {
        server.set_history(ticker, daily_bars(40));
    }
    let source = source(config(&server));
    let results =
        futures::future::join_all(tickers.iter().map(|t| fetch(&source, request(t, Interval::Daily, 20))))
            .await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|bars| bars.len() == 20)));
    assert_eq!(server.stats().connections, 2);
    assert!(server.stats().max_open <= 2);
}

/// A server that never answers fails the fetch with `Unavailable` after the configured time-out.
#[tokio::test]
async fn a_silent_server_times_out_cleanly() {
    let server =
        FakeTradingView::start(FakeConfig { batch_delay: Duration::from_secs(60), ..FakeConfig::default() })
            .await;
    server.set_history("COMI", daily_bars(10));
    let timeout_ms = 100;
    let source =
        source(TradingViewConfig { request_timeout_ms: timeout_ms, fetch_attempts: 2, ..config(&server) });
    let started = Instant::now();
    // `fetch` bounds the wait by the hang guard: the 60 s silence must not be waited out.
    let error = fetch(&source, request("COMI", Interval::Daily, 5)).await.unwrap_err();
    assert!(matches!(&error, SourceError::Unavailable(m) if m.contains("no answer")), "{error}");
    // Each of the two attempts waited its configured time-out before giving up.
    assert!(started.elapsed() >= Duration::from_millis(2 * timeout_ms), "{:?}", started.elapsed());
}

/// A `wss://` address speaks TLS (rustls set up without panicking); a failed handshake is `Unavailable`.
#[tokio::test]
async fn wss_addresses_speak_tls() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/socket.io/websocket", listener.local_addr().unwrap());
    let first_byte = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.read_u8().await.unwrap()
    });
    let config =
        TradingViewConfig { url, request_timeout_ms: 300, fetch_attempts: 1, ..TradingViewConfig::default() };
    let error = fetch(&source(config), request("COMI", Interval::Daily, 5)).await.unwrap_err();
    assert!(matches!(error, SourceError::Unavailable(_)), "{error}");
    assert_eq!(first_byte.await.unwrap(), 0x16, "a TLS handshake record");
}

async fn next_bar(stream: &mut egx_actors::source::tradingview::BarStream) -> Bar {
    timeout(LIMIT, stream.recv())
        .await
        .expect("a bar in time")
        .expect("stream open")
        .expect("a bar, not an error")
}

/// Streaming yields the snapshot and each new or changed `du` bar once, also across a forced reconnect.
#[tokio::test]
async fn streaming_survives_a_reconnect_without_duplicates() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let history = daily_bars(10);
    server.set_history("COMI", history.clone());
    let mut stream = source(config(&server)).stream(request("COMI", Interval::Daily, 3));
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_bar(&mut stream).await);
    }
    assert_eq!(seen, expected_tail("COMI", &history, 3));

    let day = 86_400;
    let last = history[9];
    let updated = FakeBar { ohlc: [109.0, 112.5, 108.0, 112.0], ..last };
    let new = FakeBar { time: last.time + day, ohlc: [112.0, 113.0, 111.0, 112.5], volume: None };
    let new_updated = FakeBar { ohlc: [112.0, 114.0, 111.0, 113.5], ..new };
    let after = FakeBar { time: last.time + 2 * day, ohlc: [113.5, 114.0, 113.0, 113.8], volume: Some(5.0) };
    let sentinel = FakeBar { time: last.time + 3 * day, ..after };

    for bar in [updated, updated, new] {
        server.push_du("COMI", bar);
    }
    assert_eq!(next_bar(&mut stream).await, expected("COMI", &updated));
    assert_eq!(next_bar(&mut stream).await, expected("COMI", &new), "the repeated update is dropped");

    server.cut_all();
    server.wait_for_connections(2).await;
    server.push_du("COMI", new_updated);
    assert_eq!(next_bar(&mut stream).await, expected("COMI", &new_updated));
    for bar in [after, sentinel] {
        server.push_du("COMI", bar);
    }
    assert_eq!(next_bar(&mut stream).await, expected("COMI", &after), "no unchanged bar re-sent");
    assert_eq!(next_bar(&mut stream).await, expected("COMI", &sentinel));
}

/// The captured real `timescale_update` decodes to its 6 bars; the captured client frames are well framed.
#[test]
fn the_captured_frames_decode() {
    let capture = include_str!("fixtures/tradingview/timescale_update.frame").trim_end();
    let payloads = codec::decode(capture).unwrap();
    let ServerPayload::Event(ChartEvent::Bars { bars, live: false, .. }) =
        protocol::parse(payloads[0]).unwrap()
    else {
        panic!("not a timescale_update");
    };
    let times: Vec<i64> = bars.iter().map(|b| b.time).collect();
    assert_eq!(times, (0..6).map(|i| 1_785_715_200 + i * 86_400).collect::<Vec<_>>());
    assert_eq!((bars[5].open, bars[5].close, bars[5].volume), (64923.2, 65004.55, Some(3156.22898)));
    for line in include_str!("fixtures/tradingview/client_frames.txt").lines() {
        let payloads = codec::decode(line).unwrap();
        assert_eq!(payloads.len(), 1, "{line}");
    }
}

/// The fake answers a 7-parameter `create_series` in one multi-frame message led by Arabic text and an emoji.
#[tokio::test]
async fn the_fake_answers_seven_parameter_create_series_in_one_message() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    server.set_history("COMI", daily_bars(5));
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url.as_str()).await.unwrap();
    let resolve = r#"={"symbol":"EGX:COMI","adjustment":"splits","session":"regular"}"#;
    for (m, p) in [
        ("set_auth_token", serde_json::json!(["unauthorized_user_token"])),
        ("chart_create_session", serde_json::json!(["cs_abcdefghijkl", ""])),
        ("resolve_symbol", serde_json::json!(["cs_abcdefghijkl", "sds_sym_1", resolve])),
        ("create_series", serde_json::json!(["cs_abcdefghijkl", "sds_1", "s1", "sds_sym_1", "1D", 3, ""])),
    ] {
        let payload = serde_json::json!({"m": m, "p": p}).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::text(codec::encode(&payload))).await.unwrap();
    }
    loop {
        let message = timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
        let payloads = codec::decode(message.to_text().unwrap()).unwrap();
        if payloads[0].contains("symbol_resolved") {
            let methods: Vec<_> = payloads
                .iter()
                .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap()["m"].clone())
                .collect();
            assert_eq!(
                methods,
                ["symbol_resolved", "series_loading", "timescale_update", "series_completed"]
            );
            assert!(payloads[0].contains(crate::support::fake_tradingview::DESCRIPTION));
            break;
        }
    }
}
