//! Unit tests of the Fetcher against a Publisher that fails like Kafka while it is away:
//! no broker needed (the real-broker versions are in tests/producer_window.rs).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use chrono::TimeZone;
use futures::future::BoxFuture;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::*;
use crate::actors::publisher::PublisherError;
use crate::contract::market::{Interval, Symbol};
use crate::io::source::BarFeed;
use crate::messages::PublishReceipt;

/// Bar `i` of a 1-minute series.
fn minute(i: i64) -> Bar {
    Bar {
        symbol: Symbol::parse("COMI").unwrap(),
        exchange: "EGX".into(),
        interval: Interval::Minutes(1),
        time: Utc.with_ymd_and_hms(2025, 3, 13, 8, 0, 0).unwrap() + chrono::Duration::minutes(i),
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close: 1.5,
        volume: None,
    }
}

/// A Publisher that refuses its first `failures` requests (as Kafka does while it is
/// away), then confirms and records every bar.
struct FlakyPublisher {
    failures: usize,
    confirmed: Arc<Mutex<Vec<Bar>>>,
}

impl Actor for FlakyPublisher {
    type Context = Context<Self>;
}

impl Handler<PublishBars> for FlakyPublisher {
    type Result = Result<PublishReceipt, PublisherError>;

    fn handle(&mut self, msg: PublishBars, _ctx: &mut Self::Context) -> Self::Result {
        if self.failures > 0 {
            self.failures -= 1;
            let source = Box::new(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut));
            return Err(PublisherError::Delivery { symbol: "COMI".into(), datetime: String::new(), source });
        }
        let mut confirmed = self.confirmed.lock().unwrap();
        let delivered = (0..msg.bars.len())
            .map(|i| Delivered { partition: 0, offset: (confirmed.len() + i) as i64 })
            .collect();
        confirmed.extend(msg.bars);
        Ok(PublishReceipt { delivered })
    }
}

/// A series that grows by one bar per fetch and returns its last `n_bars`.
struct Growing(AtomicI64);

impl Source for Growing {
    fn name(&self) -> &str {
        "test"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        let last = self.0.fetch_add(1, Ordering::SeqCst);
        let first = (last + 1 - request.n_bars as i64).max(0);
        Box::pin(futures::future::ready(Ok((first..=last).map(minute).collect())))
    }
}

/// A live feed driven by the test.
struct Live(Mutex<Option<BarFeed>>);

impl Source for Live {
    fn name(&self) -> &str {
        "test"
    }

    fn fetch(&self, _request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        Box::pin(futures::future::ready(Ok(Vec::new())))
    }

    fn follow(&self, _request: FetchRequest) -> Option<BarFeed> {
        self.0.lock().unwrap().take()
    }
}

fn spec(
    source: Arc<dyn Source>,
    publisher: Addr<FlakyPublisher>,
    poll_every: Option<Duration>,
) -> FetcherSpec {
    FetcherSpec {
        request: FetchRequest {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Minutes(1),
            n_bars: 2,
            start_date: None,
            end_date: None,
        },
        source,
        publisher: publisher.recipient(),
        poll_every,
        market_hours: None,
        stream: false,
        cursors: CursorStore::default(),
        events: None,
        clock: crate::io::source::system_clock(),
        metrics: Arc::new(Metrics::new().unwrap()),
        log: Logger::root(slog::Discard, slog::o!()),
    }
}

fn flaky(failures: usize) -> (Addr<FlakyPublisher>, Arc<Mutex<Vec<Bar>>>) {
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    (FlakyPublisher { failures, confirmed: confirmed.clone() }.start(), confirmed)
}

/// Waits up to 10 s for `cond`.
async fn until(cond: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn times(bars: &Mutex<Vec<Bar>>) -> Vec<DateTime<Utc>> {
    bars.lock().unwrap().iter().map(|b| b.time).collect()
}

#[actix_rt::test]
async fn bars_that_left_the_window_while_kafka_failed_are_published_once() {
    let (publisher, confirmed) = flaky(6);
    let source = Arc::new(Growing(AtomicI64::new(0)));
    Fetcher::new(spec(source, publisher, Some(Duration::from_millis(20)))).start();
    assert!(until(|| confirmed.lock().unwrap().len() >= 12).await, "publishing resumes");
    let got = times(&confirmed);
    let want: Vec<_> = (0..got.len() as i64).map(|i| minute(i).time).collect();
    assert_eq!(got, want, "every bar once, oldest first, no gaps");
}

#[actix_rt::test]
async fn a_failed_live_bar_is_retried_without_a_poll_or_another_bar() {
    let (publisher, confirmed) = flaky(2);
    let (feed, rx) = tokio::sync::mpsc::channel(4);
    let source = Arc::new(Live(Mutex::new(Some(rx))));
    Fetcher::new(FetcherSpec { stream: true, ..spec(source, publisher, None) }).start();
    feed.send(Ok(minute(0))).await.unwrap();
    assert!(until(|| !confirmed.lock().unwrap().is_empty()).await, "the live bar is retried");
    assert_eq!(times(&confirmed), [minute(0).time]);
}

#[actix_rt::test]
async fn a_restarted_fetcher_publishes_what_its_predecessor_left_pending() {
    let (publisher, confirmed) = flaky(0);
    let (_feed, rx) = tokio::sync::mpsc::channel(4);
    let spec = FetcherSpec { stream: true, ..spec(Arc::new(Live(Mutex::new(Some(rx)))), publisher, None) };
    spec.cursors.stage(&spec.request.symbol, spec.request.interval, &[minute(0), minute(1)]);
    Fetcher::new(spec).start();
    assert!(until(|| confirmed.lock().unwrap().len() == 2).await, "the pending bars go out at start");
    assert_eq!(times(&confirmed), [minute(0).time, minute(1).time]);
}

#[actix_rt::test]
async fn an_overflowing_pending_set_is_counted() {
    let (publisher, _confirmed) = flaky(usize::MAX);
    let source = Arc::new(Growing(AtomicI64::new(0)));
    let spec = FetcherSpec {
        cursors: CursorStore::with_pending_cap(3),
        ..spec(source, publisher, Some(Duration::from_millis(10)))
    };
    let metrics = spec.metrics.clone();
    Fetcher::new(spec).start();
    let dropped = || metrics.bars_dropped.with_label_values(&["COMI"]).get();
    assert!(until(|| dropped() >= 2).await, "drops are counted");
    assert!(metrics.render().contains("egx_bars_dropped_total{symbol=\"COMI\"}"));
}
