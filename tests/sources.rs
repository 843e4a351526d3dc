//! Real sources end to end through real Kafka and S3: `produce` from the fake TradingView
//! feed, live (stream) mode across reconnects, CSV replay, and `backfill` interrupted and
//! resumed. The TradingView source only ever talks to the in-process fake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat};
use egx_actors::fetcher::FetchMode;
use egx_actors::market::EXCHANGE_TZ;
use egx_actors::source::{TradingViewConfig, TradingViewSource};
use egx_actors::supervisor::{PipelineExit, Shutdown, Supervisor};
use egx_actors::KeyTemplate;
use rdkafka::message::{Message, OwnedMessage};
use tokio::task::spawn_blocking;

use crate::support::fake_tradingview::{daily_bars, FakeBar, FakeConfig, FakeTradingView};
use crate::support::{self, test_logger};

/// Longest wait for any one expected outcome.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs the binary to completion off the runtime's threads (the fake feed keeps serving).
async fn output(mut cmd: Command) -> Output {
    spawn_blocking(move || cmd.output().expect("binary runs")).await.expect("joined")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every message the topic holds now (read to its end offsets).
async fn all_messages(topic: &str) -> Vec<OwnedMessage> {
    let topic = topic.to_string();
    spawn_blocking(move || support::read_topic_to_end(&topic)).await.expect("joined")
}

/// Messages in the topic, by its end offsets; 0 while the topic is missing or has no
/// leaders yet (the pipeline under test creates it).
async fn message_count(topic: &str) -> usize {
    let cfg = support::kafka_config(topic, &support::unique("egx-test-probe"));
    let ends = spawn_blocking(move || egx_actors::kafka::OffsetProbe::new(&cfg).ok()?.end_offsets().ok());
    ends.await.expect("joined").map_or(0, |ends| ends.values().sum::<i64>() as usize)
}

/// A bar's identity and content: symbol, Cairo datetime, OHLC, volume.
fn content(symbol: &str, datetime: &str, ohlc: [f64; 4], volume: Option<f64>) -> String {
    format!("{symbol} {datetime} {ohlc:?} {volume:?}")
}

/// The bar's opening time in Cairo local time with its offset, as messages carry it.
fn cairo(time: i64) -> String {
    let t = DateTime::from_timestamp(time, 0).expect("valid time").with_timezone(&EXCHANGE_TZ);
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The content a fake bar of `ticker` should be published with.
fn expected(ticker: &str, bar: &FakeBar) -> String {
    content(ticker, &cairo(bar.time), bar.ohlc, bar.volume)
}

/// The content of a published message (checking that its key is its symbol).
fn published(m: &OwnedMessage) -> String {
    let body: serde_json::Value = serde_json::from_slice(m.payload().expect("payload")).expect("JSON");
    let symbol = body["symbol"].as_str().expect("symbol");
    assert_eq!(m.key(), Some(symbol.as_bytes()), "key = symbol: {body}");
    let price = |f: &str| body[f].as_f64().unwrap_or_else(|| panic!("{f} in {body}"));
    let ohlc = [price("open"), price("high"), price("low"), price("close")];
    content(symbol, body["datetime"].as_str().expect("datetime"), ohlc, body["volume"].as_f64())
}

/// The source's settings for the fake feed: fast sessions and reconnects.
fn feed_config(server: &FakeTradingView) -> TradingViewConfig {
    server.client_config()
}

/// `n` daily bars whose prices differ from [`daily_bars`] (another symbol's history).
fn other_bars(n: usize) -> Vec<FakeBar> {
    daily_bars(n)
        .into_iter()
        .map(|b| FakeBar { ohlc: b.ohlc.map(|p| p * 2.0 + 0.25), volume: b.volume.map(|v| v * 3.0), ..b })
        .collect()
}

/// `produce --source tradingview --symbols COMI,ETEL --interval Daily --n-bars 10` against the fake publishes exactly each symbol's 10 latest bars.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn produce_publishes_the_latest_tradingview_bars() {
    let server = FakeTradingView::start(FakeConfig { page_cap: 4, ..FakeConfig::default() }).await;
    let (comi, etel) = (daily_bars(60), other_bars(60));
    server.set_history("COMI", comi.clone());
    server.set_history("ETEL", etel.clone());
    let topic = support::unique("egx-tv-produce");
    let mut cmd = support::binary();
    cmd.env("EGX__TRADINGVIEW__URL", &server.url)
        .env("KAFKA_BOOTSTRAP_SERVERS", support::kafka())
        .env("EGX__KAFKA__TOPIC", &topic)
        .env("EGX__KAFKA__DEAD_LETTER_TOPIC", format!("{topic}.dlq"))
        .args(["produce", "--source", "tradingview", "--symbols", "COMI,ETEL"])
        .args(["--interval", "Daily", "--n-bars", "10"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", describe(&out));

    let messages = all_messages(&topic).await;
    let got: BTreeSet<String> = messages.iter().map(published).collect();
    let want: BTreeSet<String> = comi[50..]
        .iter()
        .map(|b| expected("COMI", b))
        .chain(etel[50..].iter().map(|b| expected("ETEL", b)))
        .collect();
    assert_eq!((messages.len(), got), (20, want), "exactly the 10 latest bars of each symbol");
    let first = comi[50];
    assert_eq!(cairo(first.time), "2020-02-24T10:00:00+02:00", "Cairo time with its offset");
    for m in &messages {
        let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            (body["source"].as_str(), body["interval"].as_str()),
            (Some("tradingview"), Some("Daily"))
        );
        assert!(body["datetime"].as_str().unwrap().ends_with("+02:00"), "{body}");
    }
}

/// Stream mode publishes the snapshot and every `du` update once, also after all connections are cut.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn live_mode_publishes_each_update_once_across_reconnects() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let (comi, etel) = (daily_bars(20), other_bars(20));
    server.set_history("COMI", comi.clone());
    server.set_history("ETEL", etel.clone());
    let (topic, bucket, group) =
        (support::unique("egx-live"), support::unique("egx-live"), support::unique("g"));
    let mut spec = support::pipeline_spec(&topic, &bucket, &group, &["COMI", "ETEL"], 5).await;
    spec.source = Arc::new(TradingViewSource::new(feed_config(&server), test_logger()).unwrap());
    (spec.fetch.mode, spec.fetch.resync_secs) = (FetchMode::Stream, 1);
    (spec.consume, spec.once) = (false, false);
    let metrics = spec.metrics.clone();
    let (supervisor, exit) = Supervisor::start(spec).expect("valid spec");
    let mut want: BTreeSet<String> = comi[15..]
        .iter()
        .map(|b| expected("COMI", b))
        .chain(etel[15..].iter().map(|b| expected("ETEL", b)))
        .collect();
    let reaches = |n: usize| {
        let topic = topic.clone();
        move || {
            let topic = topic.clone();
            async move { message_count(&topic).await >= n }
        }
    };
    assert!(support::eventually(LIMIT, reaches(10)).await, "the snapshot of 5 bars per symbol");

    let day = 86_400;
    let changed = FakeBar { ohlc: [119.0, 122.5, 118.0, 122.0], ..comi[19] };
    let new = FakeBar { time: comi[19].time + day, ohlc: [122.0, 123.0, 121.0, 122.5], volume: None };
    let etel_new =
        FakeBar { time: etel[19].time + day, ohlc: [260.0, 261.0, 259.0, 260.5], volume: Some(7.0) };
    for (ticker, bar) in [("COMI", changed), ("COMI", changed), ("COMI", new), ("ETEL", etel_new)] {
        server.push_du(ticker, bar);
        want.insert(expected(ticker, &bar));
    }
    assert!(support::eventually(LIMIT, reaches(13)).await, "a changed and two new bars");

    let connections = server.stats().connections;
    server.cut_all();
    server.wait_for_connections(connections + 1).await;
    let new_changed = FakeBar { ohlc: [122.0, 124.0, 121.0, 123.5], ..new };
    let etel_next = FakeBar { time: etel_new.time + day, volume: Some(9.0), ..etel_new };
    for (ticker, bar) in [("COMI", new_changed), ("ETEL", etel_next)] {
        server.push_du(ticker, bar);
        want.insert(expected(ticker, &bar));
    }
    assert!(support::eventually(LIMIT, reaches(15)).await, "the updates after the reconnect");
    // Let two re-sync polls per symbol pass: they must not publish anything again.
    let cycles = |s: &str| metrics.fetches.with_label_values(&[s, "ok"]).get();
    let (comi_cycles, etel_cycles) = (cycles("COMI"), cycles("ETEL"));
    let polled = support::eventually(LIMIT, || {
        let done = cycles("COMI") >= comi_cycles + 2 && cycles("ETEL") >= etel_cycles + 2;
        async move { done }
    });
    assert!(polled.await, "re-sync polls run");

    let messages = all_messages(&topic).await;
    let mut seen = BTreeMap::<String, usize>::new();
    for m in &messages {
        *seen.entry(published(m)).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "published more than once: {repeated:?}");
    assert_eq!(seen.into_keys().collect::<BTreeSet<_>>(), want, "every update, nothing else");
    supervisor.do_send(Shutdown);
    let ended = tokio::time::timeout(LIMIT, exit).await.expect("stopped in time");
    assert!(matches!(ended, Ok(PipelineExit::Finished(_))), "{ended:?}");
}

/// Writes `rows` as `<dir>/<symbol>.csv` with the given header.
fn write_csv(dir: &Path, symbol: &str, header: &str, rows: &[String]) {
    std::fs::write(dir.join(format!("{symbol}.csv")), format!("{header}\n{}\n", rows.join("\n")))
        .expect("CSV written");
}

/// CSV files replayed by `run --once` (fetch.source = "csv") become exactly one object per row.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn csv_replay_writes_one_object_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let first: NaiveDate = "2025-01-05".parse().unwrap();
    let dates: Vec<NaiveDate> = (0..30).map(|d| first + chrono::Days::new(d)).collect();
    // COMI: plain dates (stamped at the 10:00 Cairo open); ETEL: Cairo times with offsets.
    let comi: Vec<String> = dates
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{d},{0},{1},{2},{0}.5,{3}", 50 + i, 51 + i, 49 + i, 1000 + i))
        .collect();
    let etel: Vec<String> = dates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!("{d}T12:30:00+02:00,{0},{0},{0},{0},{1}", 20 + i, if i % 2 == 0 { "" } else { "7" })
        })
        .collect();
    write_csv(dir.path(), "COMI", "Date,Open,High,Low,Close,Volume", &comi);
    write_csv(dir.path(), "ETEL", "datetime,open,high,low,close,volume", &etel);
    let (topic, bucket, group) =
        (support::unique("egx-csv"), support::unique("egx-csv"), support::unique("g"));
    let extra = format!(
        "[fetch]\nsource = \"csv\"\nsymbols = [\"COMI\", \"ETEL\"]\nn_bars = 1000\n\n[csv]\npath = '{}'\n",
        dir.path().display()
    );
    let cfg = support::config_file(&topic, &bucket, &group, &extra);
    let mut cmd = support::binary();
    cmd.arg("--config").arg(cfg.path()).args(["run", "--once"]);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", describe(&out));

    let key = |d: &NaiveDate, symbol: &str, time: &str| {
        format!("streaming/date={d}/symbol={symbol}/{time}000000_1D_ohlcv.json")
    };
    let want: BTreeSet<String> =
        dates.iter().flat_map(|d| [key(d, "COMI", "100000"), key(d, "ETEL", "123000")]).collect();
    let s3 = support::s3().await;
    let keys: BTreeSet<String> = support::list_keys(&s3, &bucket, "streaming/").await.into_iter().collect();
    assert_eq!(keys, want, "one object per CSV row, keyed by its date and time");
    let messages = all_messages(&topic).await;
    assert_eq!(messages.len(), 60);
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact() && check.objects == 60, "{check:?}");
    let body: serde_json::Value = serde_json::from_slice(messages[0].payload().unwrap()).unwrap();
    assert_eq!(body["source"], "csv");
}

/// Bars per backfill chunk in these tests.
const CHUNK: usize = 10;

/// The `backfill` command line for the fake feed, a config file and a state file.
fn backfill(server: &FakeTradingView, cfg: &Path, state: &Path, symbols: &str, range: [&str; 2]) -> Command {
    let mut cmd = support::binary();
    cmd.env("EGX__TRADINGVIEW__URL", &server.url)
        .arg("--config")
        .arg(cfg)
        .args(["backfill", "--source", "tradingview", "--symbols", symbols, "--interval", "Daily"])
        .args(["--start-date", range[0], "--end-date", range[1], "--chunk-bars", &CHUNK.to_string()])
        .arg("--state")
        .arg(state);
    cmd
}

/// The keys the default template gives the fake bars of `ticker` within the trading dates.
fn keys_in_range(ticker: &str, bars: &[FakeBar], range: [&str; 2]) -> BTreeSet<String> {
    let (start, end): (NaiveDate, NaiveDate) = (range[0].parse().unwrap(), range[1].parse().unwrap());
    bars.iter()
        .map(|b| DateTime::from_timestamp(b.time, 0).unwrap().with_timezone(&EXCHANGE_TZ))
        .filter(|t| (start..=end).contains(&t.date_naive()))
        .map(|t| {
            format!(
                "streaming/date={}/symbol={ticker}/{}_1D_ohlcv.json",
                t.format("%Y-%m-%d"),
                t.format("%H%M%S%6f")
            )
        })
        .collect()
}

/// Symbols (done, in progress) in a state file: in progress = some bars confirmed, not all.
fn state_counts(state: &Path) -> (usize, usize) {
    let Ok(text) = std::fs::read_to_string(state) else { return (0, 0) };
    let json: serde_json::Value = serde_json::from_str(&text).expect("the state file is always whole JSON");
    let symbols = json["symbols"].as_object().cloned().unwrap_or_default();
    let done = symbols.values().filter(|p| p["done"] == true).count();
    let started =
        symbols.values().filter(|p| p["done"] == false && p["published"].as_u64() > Some(0)).count();
    (done, started)
}

/// `backfill` stopped by SIGINT mid-symbol exits 130; run again it completes, and the topic holds each bar of the range exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn backfill_resumes_after_an_interruption_without_gaps_or_duplicates() {
    // Slow paging (about a second per symbol) and small chunks: the run takes seconds and
    // each symbol spends a while publishing, where the interruption lands.
    let fake = FakeConfig { page_cap: 50, batch_delay: Duration::from_millis(100), ..FakeConfig::default() };
    let server = FakeTradingView::start(fake).await;
    let tickers = ["COMI", "ETEL", "HRHO", "TMGH", "EAST"];
    let history = daily_bars(600);
    for ticker in tickers {
        server.set_history(ticker, history.clone());
    }
    let range = ["2020-06-01", "2021-03-31"];
    let want: BTreeSet<String> = tickers.iter().flat_map(|t| keys_in_range(t, &history, range)).collect();
    assert_eq!(want.len(), 5 * 304);
    let (topic, bucket, group) = (support::unique("egx-bf"), support::unique("egx-bf"), support::unique("g"));
    let cfg = support::config_file(&topic, &bucket, &group, "");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let symbols = tickers.join(",");

    let mut first = backfill(&server, cfg.path(), &state, &symbols, range);
    let mut child = first.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("backfill starts");
    // Polled often: a symbol's chunks are confirmed within a few hundred milliseconds.
    let started = tokio::time::Instant::now();
    while !matches!(state_counts(&state), (done, started) if done >= 1 && started >= 1) {
        assert!(child.try_wait().unwrap().is_none(), "the backfill ended before it was interrupted");
        assert!(started.elapsed() < LIMIT, "no symbol done and another under way in time");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted; run the same command again to resume")
    );
    let (done, in_progress) = state_counts(&state);
    assert!(done < tickers.len() && in_progress <= 1, "{}", std::fs::read_to_string(&state).unwrap());
    let published_before = message_count(&topic).await;

    let out = output(backfill(&server, cfg.path(), &state, &symbols, range)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{done} already done")), "{}", describe(&out));
    let resumed = format!("bars published:      {} ", want.len() - published_before);
    assert!(stdout.contains(&resumed), "only the bars not confirmed before: {}", describe(&out));

    let mut consume = support::binary();
    consume.arg("--config").arg(cfg.path()).args(["consume", "--once"]);
    let out = output(consume).await;
    assert!(out.status.success(), "{}", describe(&out));
    let messages = all_messages(&topic).await;
    let mut published = BTreeMap::<String, usize>::new();
    for m in &messages {
        *published.entry(support::bars::object_key(m.payload().unwrap_or_default())).or_default() += 1;
    }
    let twice: Vec<_> = published.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "bars published more than once: {twice:?}");
    assert!(
        published.keys().eq(want.iter()),
        "{} bars published, {} in the range",
        published.len(),
        want.len()
    );
    let s3 = support::s3().await;
    let keys: BTreeSet<String> = support::list_keys(&s3, &bucket, "streaming/").await.into_iter().collect();
    assert!(keys == want, "{} objects, {} bars in the range", keys.len(), want.len());
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact(), "{check:?}");
}

/// A symbol the feed does not know fails the backfill with exit 1 while the others complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn backfill_reports_a_failed_symbol_and_completes_the_others() {
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let history = daily_bars(100);
    server.set_history("COMI", history.clone());
    server.set_history("ETEL", history.clone());
    let (topic, bucket, group) = (support::unique("egx-bf"), support::unique("egx-bf"), support::unique("g"));
    let cfg = support::config_file(&topic, &bucket, &group, "");
    let dir = tempfile::tempdir().unwrap();
    let range = ["2020-02-01", "2020-02-29"];
    let out =
        output(backfill(&server, cfg.path(), &dir.path().join("s.json"), "COMI,NOPE,ETEL", range)).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOPE: unknown symbol"), "{}", describe(&out));
    let messages = all_messages(&topic).await;
    let got: BTreeSet<String> = messages.iter().map(published).collect();
    let want: BTreeSet<String> =
        ["COMI", "ETEL"].iter().flat_map(|t| history[27..56].iter().map(|b| expected(t, b))).collect();
    assert_eq!((messages.len(), got), (58, want), "every February bar of the known symbols, once");
}
