//! The producer never drops a bar it fetched but Kafka did not confirm: bars that fall out
//! of the source's window while the broker is away, and a live bar whose publish failed in
//! stream mode without re-syncs, are published once the broker is back. The broker is a
//! private one (`support::PrivateKafka`) that the tests stop and start; the shared one is
//! never touched.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use egx_actors::fetcher::FetchMode;
use egx_actors::source::{BarFeed, FetchRequest, Source, SourceError};
use egx_actors::supervisor::{PipelineExit, PipelineSpec, Shutdown, Supervisor};
use egx_actors::{Bar, Interval, Symbol};
use futures::future::BoxFuture;
use rdkafka::message::Message;

use crate::support::{self, PrivateKafka};

/// How long a test waits for anything (a broker restart and librdkafka's reconnect included).
const LIMIT: Duration = Duration::from_secs(120);

/// The instant of bar 0; bar `i` starts `i` minutes later.
fn first_minute() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 13, 8, 0, 0).single().expect("valid instant")
}

/// Bar `minute` of the test series.
fn bar(minute: i64) -> Bar {
    let open = 10.0 + minute as f64 / 100.0;
    Bar {
        symbol: Symbol::parse("COMI").expect("symbol"),
        exchange: "EGX".into(),
        interval: Interval::Minutes(1),
        time: first_minute() + chrono::Duration::minutes(minute),
        open,
        high: open + 0.5,
        low: open - 0.5,
        close: open + 0.25,
        volume: Some(minute as f64),
    }
}

/// A series that grows by one bar on every fetch; a fetch returns its last `n_bars`, as a
/// real feed's "latest bars" do. It remembers every bar it ever returned.
#[derive(Default)]
struct GrowingSeries {
    fetches: AtomicI64,
    returned: Mutex<BTreeSet<i64>>,
}

impl GrowingSeries {
    /// The minutes of every bar returned so far.
    fn returned(&self) -> BTreeSet<i64> {
        self.returned.lock().expect("lock").clone()
    }
}

impl Source for GrowingSeries {
    fn name(&self) -> &str {
        "test"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        let last = self.fetches.fetch_add(1, Ordering::SeqCst);
        let first = (last + 1 - request.n_bars as i64).max(0);
        self.returned.lock().expect("lock").extend(first..=last);
        Box::pin(futures::future::ready(Ok((first..=last).map(bar).collect())))
    }
}

/// A streaming source whose live feed is driven by the test; it has no history to poll.
struct LiveFeed(Mutex<Option<BarFeed>>);

impl Source for LiveFeed {
    fn name(&self) -> &str {
        "test"
    }

    fn fetch(&self, _request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        Box::pin(futures::future::ready(Ok(Vec::new())))
    }

    fn follow(&self, _request: FetchRequest) -> Option<BarFeed> {
        self.0.lock().expect("lock").take()
    }
}

/// A produce-only pipeline of 1-minute COMI bars from `source` into `topic` on `broker`,
/// with deliveries that fail after a second while the broker is away.
async fn produce_spec(broker: &PrivateKafka, topic: &str, source: Arc<dyn Source>) -> PipelineSpec {
    let (bucket, group) = (support::unique("egx-window"), support::unique("g"));
    let mut spec = support::pipeline_spec(topic, &bucket, &group, &["COMI"], 2).await;
    spec.kafka.bootstrap_servers = broker.bootstrap();
    spec.kafka.message_timeout_ms = 1_000;
    spec.fetch.interval = Interval::Minutes(1);
    (spec.produce, spec.consume, spec.once) = (true, false, false);
    spec.source = source;
    spec
}

/// The minutes of the bars in the topic (every message up to its current end).
async fn minutes_in_topic(bootstrap: &str, topic: &str) -> BTreeSet<i64> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    // Off the actix thread: the pipeline under test runs on it.
    let messages = tokio::task::spawn_blocking(move || {
        let end: i64 = support::end_offsets_at(&bootstrap, &topic).values().sum();
        support::read_topic_at(&bootstrap, &topic, usize::try_from(end).expect("count"), LIMIT)
    })
    .await
    .expect("topic read");
    messages
        .iter()
        .map(|m| {
            let body: serde_json::Value =
                serde_json::from_slice(m.payload().expect("payload")).expect("json");
            let at =
                DateTime::parse_from_rfc3339(body["datetime"].as_str().expect("datetime")).expect("time");
            (at.with_timezone(&Utc) - first_minute()).num_minutes()
        })
        .collect()
}

/// Runs a blocking broker action (stop, resume) off the actix thread.
async fn broker_do(broker: &Arc<PrivateKafka>, action: fn(&PrivateKafka)) {
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || action(&broker)).await.expect("broker action");
}

/// Waits until `cond` holds (at most [`LIMIT`]); true if it did.
async fn until(cond: impl Fn() -> bool) -> bool {
    support::eventually(LIMIT, || {
        let held = cond();
        async move { held }
    })
    .await
}

/// Waits until the topic holds every minute of `want`; what it holds then (or at the limit).
async fn until_in_topic(bootstrap: &str, topic: &str, want: &BTreeSet<i64>) -> BTreeSet<i64> {
    let start = std::time::Instant::now();
    loop {
        let got = minutes_in_topic(bootstrap, topic).await;
        if want.is_subset(&got) || start.elapsed() > LIMIT {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Bars that fall out of the fetch window (n_bars = 2) during a broker outage of six or
/// more poll cycles are published once the broker is back: the topic has no gaps.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn bars_that_left_the_window_during_an_outage_are_published() {
    let broker = Arc::new(PrivateKafka::start());
    let topic = support::unique("egx-window");
    let series = Arc::new(GrowingSeries::default());
    let spec = produce_spec(&broker, &topic, series.clone()).await;
    let metrics = spec.metrics.clone();
    let cycles = |outcome: &str| metrics.fetches.with_label_values(&["COMI", outcome]).get();
    let (supervisor, exit) = Supervisor::start(spec).expect("valid spec");
    assert!(until(|| cycles("ok") >= 2).await, "two cycles confirmed before the outage");

    broker_do(&broker, PrivateKafka::stop).await;
    let failed = cycles("error");
    assert!(until(|| cycles("error") >= failed + 6).await, "six cycles fail while the broker is away");
    let before_resume = series.returned();
    broker_do(&broker, PrivateKafka::resume).await;
    let ok = cycles("ok");
    assert!(until(|| cycles("ok") >= ok + 2).await, "cycles succeed again once the broker is back");

    let returned = series.returned();
    let in_topic = until_in_topic(&broker.bootstrap(), &topic, &returned).await;
    supervisor.do_send(Shutdown);
    assert!(matches!(exit.await.expect("exit reported"), PipelineExit::Finished(_)));
    let missing: Vec<_> = returned.difference(&in_topic).collect();
    assert!(
        missing.is_empty(),
        "bars the source returned but the topic lacks: {missing:?} (returned before the broker came \
         back: {before_resume:?}; topic: {in_topic:?})"
    );
    let last = in_topic.last().copied().expect("bars in the topic");
    assert_eq!(in_topic, (0..=last).collect(), "no gaps");
    assert!(in_topic.is_subset(&series.returned()), "nothing the source did not return");
}

/// In stream mode without re-syncs (`resync_secs = 0`), a live bar whose publish failed
/// while the broker was away is published once it is back, with no further bar or poll.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_live_bar_that_failed_to_publish_is_retried_without_a_resync() {
    let broker = Arc::new(PrivateKafka::start());
    let topic = support::unique("egx-window-live");
    let (feed, rx) = tokio::sync::mpsc::channel(16);
    let mut spec = produce_spec(&broker, &topic, Arc::new(LiveFeed(Mutex::new(Some(rx))))).await;
    (spec.fetch.mode, spec.fetch.resync_secs) = (FetchMode::Stream, 0);
    let metrics = spec.metrics.clone();
    let cycles = |outcome: &str| metrics.fetches.with_label_values(&["COMI", outcome]).get();
    let (supervisor, exit) = Supervisor::start(spec).expect("valid spec");
    feed.send(Ok(bar(0))).await.expect("feed open");
    let first = until_in_topic(&broker.bootstrap(), &topic, &BTreeSet::from([0])).await;
    assert_eq!(first, BTreeSet::from([0]), "the first live bar is published");

    broker_do(&broker, PrivateKafka::stop).await;
    feed.send(Ok(bar(1))).await.expect("feed open");
    assert!(until(|| cycles("error") >= 1).await, "the live bar's publish fails while the broker is away");
    broker_do(&broker, PrivateKafka::resume).await;

    let in_topic = until_in_topic(&broker.bootstrap(), &topic, &BTreeSet::from([0, 1])).await;
    supervisor.do_send(Shutdown);
    assert!(matches!(exit.await.expect("exit reported"), PipelineExit::Finished(_)));
    assert_eq!(in_topic, BTreeSet::from([0, 1]), "the failed live bar reached the topic");
    drop(feed);
}
