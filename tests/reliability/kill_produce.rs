//! Scenario 2: `kill -9` of the `produce` process mid-publish. `produce` (fetch once)
//! takes the latest daily bars of many symbols from the in-process fake TradingView feed,
//! one chart session every 100 ms, and publishes each symbol's bars as they arrive; it is
//! killed after a random number of symbols was confirmed (at most half), plus a random
//! delay. The feed is paced on purpose: with the synthetic source every symbol is fetched
//! and published in one CPU-bound burst and all confirmations are logged within its last
//! few milliseconds, so a kill could not land between them.
//!
//! What the killed process *confirmed*: a `Fetch cycle done.` log line (DEBUG) names a
//! symbol whose whole batch Kafka acknowledged (acks=all): the Fetcher logs it only after
//! the Publisher answered, i.e. after every delivery report of the batch; in this first and
//! only cycle `published` = `fetched` = every bar asked for. A `Bars confirmed by Kafka.`
//! line (the Publisher's, without the symbol) is one whole batch acknowledged, logged just
//! before the Fetcher's line. So, right after the kill:
//! - every symbol with a `Fetch cycle done.` line has all its bars in the topic;
//! - at least as many symbols are whole in the topic as there are `Bars confirmed` lines;
//! - per symbol, the killed run's messages in the topic (one partition per symbol, offset
//!   order) are a prefix of the symbol's bars, oldest first: no holes, no duplicates, no
//!   reordering. Bars delivered but not (yet) confirmed — the kill fell between the
//!   broker's acknowledgement and the log line, or mid-batch — may be there, as a prefix.
//!
//! Then `produce` runs again to completion (its cursor lived in memory: it publishes every
//! bar again; duplicates map to the same objects) while a `consume` process writes until
//! the group committed everything. At the end the runs are told apart by each message's
//! `ingestion_timestamp` (before or after the restart), so a produce request the broker
//! appended only after the first look still counts as the killed run's: its messages are
//! still prefixes, and the restarted run's are exactly every bar of every symbol once, in
//! order. The bucket is exact against all messages of the topic. `recover` runs from the
//! restart of `produce` until everything is committed.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::message::{Message, OwnedMessage};

use super::Row;
use crate::support;
use crate::support::fake_tradingview::{daily_bars, FakeBar, FakeConfig, FakeTradingView};
use crate::support::process::{Peak, Proc};

/// Chart sessions the feed client starts per second: the pace of the run.
const SESSIONS_PER_SECOND: u32 = 10;

/// A bar as the test identifies it: opening time (Unix seconds) and OHLC.
type BarId = (i64, [f64; 4]);

/// The feed's history of symbol `k`: `len` daily bars, prices distinct per symbol (all
/// exactly representable, so they survive the JSON round trips unchanged).
fn history(k: usize, len: usize) -> Vec<FakeBar> {
    let shift = k as f64 * 1_000.0;
    daily_bars(len)
        .into_iter()
        .map(|b| FakeBar { ohlc: b.ohlc.map(|p| p + shift), volume: b.volume.map(|v| v + shift), ..b })
        .collect()
}

fn bar_id(bar: &FakeBar) -> BarId {
    (bar.time, bar.ohlc)
}

/// The `Fetch cycle done.` lines of a JSON log: symbol → (fetched, published). A line cut
/// short by the kill is not a confirmation and is skipped.
fn cycles_done(log: &str) -> BTreeMap<String, (u64, u64)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "Fetch cycle done.")
        .filter_map(|v| {
            let symbol = v["symbol"].as_str()?.to_string();
            Some((symbol, (v["fetched"].as_u64()?, v["published"].as_u64()?)))
        })
        .collect()
}

/// The sizes of the Publisher's `Bars confirmed by Kafka.` batches in a JSON log.
fn batches_confirmed(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "Bars confirmed by Kafka.")
        .filter_map(|v| v["count"].as_u64())
        .collect()
}

/// Messages per symbol in partition and offset order, as bars; checks that the key is the
/// symbol and that all messages of a symbol share one partition.
fn by_symbol<'a>(messages: impl Iterator<Item = &'a OwnedMessage>) -> BTreeMap<String, Vec<BarId>> {
    let mut sorted: Vec<&OwnedMessage> = messages.collect();
    sorted.sort_by_key(|m| (m.partition(), m.offset()));
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<BarId>> = BTreeMap::new();
    for m in sorted {
        let body: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_else(|e| {
                panic!("offset {} of partition {}: not JSON: {e}", m.offset(), m.partition())
            });
        let symbol = body["symbol"].as_str().expect("symbol").to_string();
        assert_eq!(m.key(), Some(symbol.as_bytes()), "key = symbol: {body}");
        let p = *partition_of.entry(symbol.clone()).or_insert(m.partition());
        assert_eq!(p, m.partition(), "{symbol} in partitions {p} and {}", m.partition());
        let time = chrono::DateTime::parse_from_rfc3339(body["datetime"].as_str().expect("datetime"))
            .expect("RFC 3339 datetime")
            .timestamp();
        let price = |f: &str| body[f].as_f64().unwrap_or_else(|| panic!("{f} in {body}"));
        out.entry(symbol)
            .or_default()
            .push((time, [price("open"), price("high"), price("low"), price("close")]));
    }
    out
}

/// Checks that every symbol's bars in `got` are a prefix of its bars in `want`; returns
/// how many symbols are whole and how many partial.
fn prefixes(got: &BTreeMap<String, Vec<BarId>>, want: &BTreeMap<String, Vec<BarId>>) -> (usize, usize) {
    let (mut whole, mut partial) = (0, 0);
    for (symbol, got) in got {
        let all = want.get(symbol).unwrap_or_else(|| panic!("{symbol} was never asked for"));
        assert!(
            got.len() <= all.len() && got[..] == all[..got.len()],
            "{symbol}: the killed run's {} messages are not a prefix of its {} bars: {got:?}",
            got.len(),
            all.len()
        );
        if got.len() == all.len() {
            whole += 1;
        } else {
            partial += 1;
        }
    }
    (whole, partial)
}

/// Every message of the topic now, off the runtime's worker (the fake feed keeps serving).
async fn read_all(topic: &str) -> Vec<OwnedMessage> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || support::topic::read_topic_to_end(&topic)).await.expect("joined")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn kill_9_of_produce_leaves_no_gap_in_what_it_confirmed() {
    let (topic, bucket, group) =
        (support::unique("rel-kill-produce"), support::unique("rel-kill-produce"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let (symbols, n_bars) = super::scaled((30, 150), (60, 400));
    let tickers: Vec<String> = (0..symbols).map(|k| format!("KP{k:02}")).collect();
    // Two pages per symbol (the fake answers at most 100 bars a round), 20 bars of older
    // history that the fetch must leave out.
    let server = FakeTradingView::start(FakeConfig::default()).await;
    let mut want: BTreeMap<String, Vec<BarId>> = BTreeMap::new();
    for (k, ticker) in tickers.iter().enumerate() {
        let bars = history(k, n_bars + 20);
        want.insert(ticker.clone(), bars[20..].iter().map(bar_id).collect());
        server.set_history(ticker, bars);
    }
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        &format!(
            "[writer]\ncommit_interval_ms = 100\n\n[tradingview]\nurl = \"{url}\"\n\
             sessions_per_second = {SESSIONS_PER_SECOND}.0\nrequest_timeout_ms = 5000\n\
             reconnect_initial_ms = 10\nreconnect_max_ms = 100\n",
            url = server.url
        ),
    );
    let (list, n) = (tickers.join(","), n_bars.to_string());
    // Fetch once (poll interval 0): the process ends by itself once Kafka confirmed all.
    let produce = [
        "--log-level",
        "debug",
        "produce",
        "--source",
        "tradingview",
        "--symbols",
        &list,
        "--interval",
        "Daily",
        "--n-bars",
        &n,
        "--poll-interval",
        "0",
    ];
    let peak = Peak::default();

    // The fault: kill -9 after a random number of confirmed symbols (at most half of
    // them), plus up to a quarter of a second.
    let started = Instant::now();
    let mut killed = Proc::spawn(cfg.path(), &produce, &[], &peak);
    let k = rand::rng().random_range(1..=symbols / 2);
    let reached = support::eventually(Duration::from_secs(120), || {
        let done = cycles_done(&killed.log_text()).len();
        async move { done >= k }
    })
    .await;
    assert!(reached, "{k} symbols confirmed in time:\n{}", killed.log_text());
    tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..250))).await;
    assert!(killed.running(), "produce still running when killed:\n{}", killed.log_text());
    let status = killed.kill9();
    let alive = started.elapsed();
    assert_eq!(status.signal(), Some(9), "ended by the kill: {status:?}");

    let log = killed.log_text();
    let confirmed = cycles_done(&log);
    let batches = batches_confirmed(&log);
    assert!(
        !confirmed.is_empty() && confirmed.len() < symbols,
        "killed mid-publish: {} of {symbols} symbols confirmed:\n{log}",
        confirmed.len()
    );
    for (symbol, counts) in &confirmed {
        assert_eq!(*counts, (n_bars as u64, n_bars as u64), "{symbol}: a first cycle publishes every bar");
    }
    assert!(batches.len() >= confirmed.len() && batches.iter().all(|c| *c == n_bars as u64), "{batches:?}");

    // No gaps: per symbol a prefix of its bars, whole where confirmed.
    let first = read_all(&topic).await;
    let first_run = by_symbol(first.iter());
    let (whole_at_kill, _) = prefixes(&first_run, &want);
    for symbol in confirmed.keys() {
        let got = first_run.get(symbol).map_or(0, Vec::len);
        assert_eq!(got, n_bars, "{symbol} was confirmed: every bar of it is in the topic");
    }
    assert!(whole_at_kill >= batches.len(), "{whole_at_kill} whole, {} batches confirmed", batches.len());
    let in_topic = first.len();

    // Recovery: produce again to the end, with a consumer writing meanwhile.
    let (recovery, restart_at) = (Instant::now(), chrono::Utc::now());
    let mut restarted = Proc::spawn(cfg.path(), &produce, &[], &peak);
    let mut consumer = Proc::spawn(cfg.path(), &["consume"], &[], &peak);
    let status = tokio::task::block_in_place(|| restarted.wait());
    let republished = recovery.elapsed();
    assert!(status.success(), "the restarted produce completes: {status:?}\n{}", restarted.log_text());
    let again = cycles_done(&restarted.log_text());
    assert_eq!(again.len(), symbols, "every symbol published by the restarted run");
    assert!(again.values().all(|c| *c == (n_bars as u64, n_bars as u64)), "{again:?}");
    let done =
        super::all_committed(&kafka, &group, &topic, Duration::from_secs(super::scaled(300, 900))).await;
    let recover = recovery.elapsed();
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    assert!(done, "every message committed after the restart:\n{}", consumer.log_text());

    // The complete run published every bar once, in order; the killed run's messages
    // (fetched before the restart: a request the broker appended only after the first
    // read would count here) are still prefixes.
    let messages = read_all(&topic).await;
    let (killed_run, complete_run): (Vec<&OwnedMessage>, Vec<&OwnedMessage>) =
        messages.iter().partition(|m| super::ingested(m) < restart_at);
    let (whole, partial) = prefixes(&by_symbol(killed_run.iter().copied()), &want);
    let late = killed_run.len().checked_sub(in_topic).expect("the killed run's messages stay");
    assert!(
        by_symbol(complete_run.iter().copied()) == want,
        "the restarted run publishes every bar of every symbol once, in order"
    );

    let s3 = support::s3().await;
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    assert_eq!(check.expected_objects, symbols * n_bars, "one object per bar");
    let confirmed_messages = confirmed.len() * n_bars;
    Row {
        id: "2-kill-produce",
        scenario: "kill -9 of produce",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "killed {:.1} s in, {}/{symbols} symbols confirmed ({confirmed_messages} msgs); the topic holds \
             {} of the killed run ({} beyond confirmed: {} symbols whole unconfirmed, {partial} partial; \
             {late} appended after the kill), all prefixes; restart re-published {} in {:.1} s",
            alive.as_secs_f64(),
            confirmed.len(),
            killed_run.len(),
            killed_run.len() - confirmed_messages,
            whole - confirmed.len(),
            symbols * n_bars,
            republished.as_secs_f64()
        ),
    }
    .record_and_check();
}
