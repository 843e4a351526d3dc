//! Throughput of the pipeline against the real services (Kafka at `EGX_TEST_KAFKA`,
//! default 127.0.0.1:9092; S3 at `EGX_TEST_S3`, default http://127.0.0.1:9000 with
//! minioadmin/minioadmin), printed as one table. It measures, on fresh random topics and
//! buckets:
//!
//! * produce: N bars through the Publisher actor alone (producer already connected), and
//!   through a produce-only `once` pipeline run (Fetchers → Publisher → Kafka), start to
//!   `Finished`;
//! * Kafka→S3: a consume-only `once` run draining those N messages into a fresh bucket
//!   with `writer.max_concurrent_writes = C`, start to `Finished`;
//! * the S3 server's raw PutObject rate for the same N keys and bodies with C concurrent
//!   tasks (plain PUTs, no pipeline), the ceiling the writer can approach;
//! * the process's peak RSS.
//!
//! Figures only, no assertions on timings. Topics and buckets are left behind.
//!
//! ```text
//! cargo bench --bench throughput
//! cargo bench --bench throughput -- --messages 5000 --concurrency 16,64
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use egx_actors::config::Secret;
use egx_actors::fetcher::FetchConfig;
use egx_actors::kafka::{KafkaConfig, KafkaMode};
use egx_actors::market::{Bar, Interval, Symbol};
use egx_actors::messages::{PublishBars, Stop};
use egx_actors::metrics::Metrics;
use egx_actors::publisher::Publisher;
use egx_actors::sink::{SinkConfig, SinkKind};
use egx_actors::source::{Clock, FetchRequest, SyntheticSource};
use egx_actors::supervisor::{ChaosConfig, SupervisorConfig};
use egx_actors::supervisor::{PipelineExit, PipelineSpec, PipelineSummary, Supervisor};
use egx_actors::writer::WriterConfig;
use egx_actors::{BarMessage, MarketRecord};
use futures::future::join_all;
use slog::{o, Drain, Logger};

/// Seed of the synthetic bars.
const SEED: u64 = 11;
/// How often the consume run commits written offsets (the tests' setting; the default
/// 1 s would add up to a second to a short run).
const COMMIT_INTERVAL_MS: u64 = 200;

/// Command line; `cargo bench` adds `--bench`.
#[derive(Debug, Parser)]
#[command(about = "Throughput of the pipeline against real Kafka and S3")]
struct BenchArgs {
    /// Bars to publish and drain (spread evenly over the symbols).
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Writer concurrency and raw PUT tasks; a comma-separated list runs each.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    concurrency: Vec<usize>,
    /// Symbols the bars are spread over (one Fetcher each).
    #[arg(long, default_value_t = 10)]
    symbols: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One measured figure.
struct Row {
    step: &'static str,
    concurrency: Option<usize>,
    count: usize,
    elapsed: Duration,
}

/// Where the services are and what to send them.
struct Bench {
    kafka: String,
    s3: String,
    symbols: Vec<Symbol>,
    n_bars: usize,
    now: DateTime<Utc>,
    log: Logger,
}

fn main() -> Result<()> {
    let args = BenchArgs::parse();
    if args.symbols == 0 || args.messages < args.symbols {
        bail!("--messages must be at least --symbols (and --symbols at least 1)");
    }
    if args.concurrency.contains(&0) {
        bail!("--concurrency must be at least 1");
    }
    let n_bars = args.messages.div_ceil(args.symbols);
    if n_bars > 5_000 {
        bail!("at most 5000 bars per symbol: raise --symbols");
    }
    let bench = Bench {
        kafka: std::env::var("EGX_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        s3: std::env::var("EGX_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".into()),
        symbols: (0..args.symbols)
            .map(|i| Symbol::parse(&format!("BENCH{i:03}")))
            .collect::<Result<_, _>>()?,
        n_bars,
        now: Utc
            .with_ymd_and_hms(2025, 3, 13, 12, 0, 0)
            .single()
            .ok_or_else(|| anyhow!("invalid fixed instant"))?,
        log: quiet_logger(),
    };
    actix::System::new().block_on(run(bench, args.concurrency))
}

async fn run(bench: Bench, concurrency: Vec<usize>) -> Result<()> {
    let mut rows = Vec::new();
    progress("produce through the Publisher actor");
    rows.push(bench.produce_with_publisher(&unique("egx-bench")).await?);
    let topic = unique("egx-bench");
    progress("produce through a produce-only once run");
    rows.push(bench.produce_with_pipeline(&topic).await?);
    let objects = Arc::new(bench.objects()?);
    for &c in &concurrency {
        progress(&format!("consume-only once run into S3, C={c}"));
        rows.push(bench.consume(&topic, c).await?);
        progress(&format!("raw PutObject, C={c}"));
        rows.push(bench.raw_put(objects.clone(), c).await?);
    }
    let body_bytes = objects.iter().map(|(_, b)| b.len()).sum::<usize>() / objects.len();
    print_table(&bench, &rows, body_bytes);
    Ok(())
}

impl Bench {
    fn kafka_config(&self, topic: &str) -> KafkaConfig {
        KafkaConfig {
            mode: KafkaMode::External,
            bootstrap_servers: self.kafka.clone(),
            topic: topic.into(),
            dead_letter_topic: format!("{topic}.dlq"),
            consumer_group: unique("egx-bench-group"),
            session_timeout_ms: 10_000,
            ..KafkaConfig::default()
        }
    }

    fn sink_config(&self, bucket: &str) -> SinkConfig {
        SinkConfig {
            kind: SinkKind::S3,
            bucket: bucket.into(),
            endpoint: self.s3.clone(),
            access_key_id: "minioadmin".into(),
            secret_access_key: Secret::new("minioadmin"),
            ..SinkConfig::default()
        }
    }

    fn clock(&self) -> Clock {
        let now = self.now;
        Arc::new(move || now)
    }

    /// The bars of every symbol, as the Fetchers would fetch them.
    fn bars(&self) -> Vec<Vec<Bar>> {
        let source = SyntheticSource::new(SEED, self.clock());
        self.symbols
            .iter()
            .map(|symbol| {
                let request = FetchRequest {
                    symbol: symbol.clone(),
                    exchange: "EGX".into(),
                    interval: Interval::Daily,
                    n_bars: self.n_bars,
                    start_date: None,
                    end_date: None,
                };
                source.bars_at(&request, self.now)
            })
            .collect()
    }

    /// The keys and bodies the pipeline stores for those bars.
    fn objects(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let template = self.sink_config("unused").validate()?;
        let mut out = Vec::new();
        for bar in self.bars().iter().flatten() {
            let body = BarMessage::new(bar, self.now, "synthetic").to_bytes();
            let record = MarketRecord::decode(Some(&body), 1 << 20)?;
            out.push((template.render(&record).to_string(), body));
        }
        Ok(out)
    }

    /// A pipeline against the services with neither side switched on yet.
    async fn spec(&self, topic: &str, bucket: &str) -> Result<PipelineSpec> {
        let sink = self.sink_config(bucket);
        let clock = self.clock();
        Ok(PipelineSpec {
            kafka: self.kafka_config(topic),
            object_sink: egx_actors::sink::build(&sink).await,
            sink,
            writer: WriterConfig { commit_interval_ms: COMMIT_INTERVAL_MS, ..WriterConfig::default() },
            fetch: FetchConfig {
                symbols: self.symbols.clone(),
                n_bars: self.n_bars,
                poll_interval_secs: 0,
                seed: SEED,
                ..FetchConfig::default()
            },
            supervisor: SupervisorConfig::default(),
            chaos: ChaosConfig::default(),
            produce: false,
            consume: false,
            once: true,
            source: Arc::new(SyntheticSource::new(SEED, clock.clone())),
            clock,
            market_hours: None,
            metrics: Arc::new(Metrics::new()?),
            log: self.log.clone(),
        })
    }

    /// Every symbol's bars sent to one warmed-up Publisher at once, as the Fetchers do.
    async fn produce_with_publisher(&self, topic: &str) -> Result<Row> {
        let cfg = self.kafka_config(topic);
        topics_ready(&cfg).await?;
        let metrics = Arc::new(Metrics::new()?);
        let watch = egx_actors::kafka::KafkaWatch::new(&cfg, metrics.clone(), self.log.clone());
        let producer = egx_actors::kafka::producer(&cfg, &watch)?;
        let publisher = Publisher::new(producer, topic, metrics, self.log.clone()).start();
        let bars = self.bars();
        let publish = |bars| PublishBars { bars, source: "synthetic".into(), fetched_at: self.now };
        // One bar first, untimed: the producer's broker connection, metadata and idempotent
        // producer id are set up once (up to a second), and this row measures the sends.
        let warm_up = bars.iter().flatten().take(1).cloned().collect();
        publisher.send(publish(warm_up)).await?.context("warm-up publish")?;
        let start = Instant::now();
        let sends = bars.into_iter().map(|bars| publisher.send(publish(bars)));
        let mut count = 0;
        for receipt in join_all(sends).await {
            count += receipt?.context("publishing")?.delivered.len();
        }
        let elapsed = start.elapsed();
        publisher.send(Stop).await?;
        Ok(Row { step: "produce: Publisher actor, PublishBars", concurrency: None, count, elapsed })
    }

    /// A produce-only `once` run, from start to `Finished` (topics exist beforehand).
    async fn produce_with_pipeline(&self, topic: &str) -> Result<Row> {
        let mut spec = self.spec(topic, "egx-bench-unused").await?;
        spec.produce = true;
        topics_ready(&spec.kafka).await?;
        let start = Instant::now();
        let summary = finished(spec).await?;
        let elapsed = start.elapsed();
        if !summary.fetch_failures.is_empty() {
            bail!("fetches failed: {:?}", summary.fetch_failures);
        }
        Ok(Row { step: "produce: pipeline once run", concurrency: None, count: summary.published, elapsed })
    }

    /// A consume-only `once` run into a fresh bucket, from start to `Finished`.
    async fn consume(&self, topic: &str, concurrency: usize) -> Result<Row> {
        let mut spec = self.spec(topic, &unique("egx-bench")).await?;
        spec.consume = true;
        spec.writer.max_concurrent_writes = concurrency;
        spec.object_sink.prepare().await?;
        let start = Instant::now();
        let summary = finished(spec).await?;
        let elapsed = start.elapsed();
        let expected = self.symbols.len() * self.n_bars;
        if summary.reader.stored as usize != expected {
            eprintln!(
                "warning: {} objects stored, {} dead-lettered, {expected} expected",
                summary.reader.stored, summary.reader.dead_lettered
            );
        }
        Ok(Row {
            step: "Kafka→S3: consume-only once run",
            concurrency: Some(concurrency),
            count: summary.reader.stored as usize,
            elapsed,
        })
    }

    /// Plain PutObject calls of the pipeline's keys and bodies from `concurrency` tasks.
    async fn raw_put(&self, objects: Arc<Vec<(String, Vec<u8>)>>, concurrency: usize) -> Result<Row> {
        let bucket = unique("egx-bench");
        let sink = self.sink_config(&bucket);
        let client = egx_actors::sink::s3_client(&sink).await;
        client.create_bucket().bucket(&bucket).send().await?;
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks = (0..concurrency).map(|_| {
            let (client, bucket, objects, next) =
                (client.clone(), bucket.clone(), objects.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((key, body)) = objects.get(i) else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    client
                        .put_object()
                        .bucket(&bucket)
                        .key(key)
                        .content_type("application/json")
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .with_context(|| format!("PUT {key}"))?;
                }
            })
        });
        for task in join_all(tasks).await {
            task??;
        }
        Ok(Row {
            step: "S3: raw PutObject (no pipeline)",
            concurrency: Some(concurrency),
            count: objects.len(),
            elapsed: start.elapsed(),
        })
    }
}

/// Creates the topics and waits until every partition has a leader, so that the timed
/// runs do not include the broker publishing a brand-new topic's metadata.
async fn topics_ready(cfg: &KafkaConfig) -> Result<()> {
    let watch = egx_actors::kafka::KafkaWatch::new(
        cfg,
        Arc::new(Metrics::new()?),
        slog::Logger::root(slog::Discard, slog::o!()),
    );
    egx_actors::kafka::ensure_topics(cfg, &watch).await?;
    let probe = Arc::new(egx_actors::kafka::OffsetProbe::new(cfg)?);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = probe.clone();
        match tokio::task::spawn_blocking(move || p.end_offsets()).await? {
            Ok(ends) if ends.len() == cfg.partitions as usize => return Ok(()),
            _ if Instant::now() > deadline => bail!("topic {} has no leaders after 30 s", cfg.topic),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs a pipeline to its end; anything but `Finished` is an error.
async fn finished(spec: PipelineSpec) -> Result<PipelineSummary> {
    let (_supervisor, exit) = Supervisor::start(spec)?;
    match exit.await? {
        PipelineExit::Finished(summary) => Ok(summary),
        PipelineExit::GaveUp(reason) => bail!("the pipeline gave up: {reason}"),
        PipelineExit::Failed(reason) => bail!("the pipeline failed: {reason}"),
        other => bail!("the pipeline ended: {other:?}"),
    }
}

fn print_table(bench: &Bench, rows: &[Row], body_bytes: usize) {
    let line = "-".repeat(86);
    println!("\negx-pipeline throughput (Kafka {}, S3 {})", bench.kafka, bench.s3);
    println!("{line}");
    println!("{:<40} {:>5} {:>10} {:>11} {:>14}", "figure", "C", "messages", "seconds", "per second");
    println!("{line}");
    for r in rows {
        let c = r.concurrency.map_or("-".into(), |c| c.to_string());
        let secs = r.elapsed.as_secs_f64();
        let rate = r.count as f64 / secs.max(f64::EPSILON);
        println!("{:<40} {:>5} {:>10} {:>11.3} {:>14.0}", r.step, c, r.count, secs, rate);
    }
    println!("{line}");
    let writer = WriterConfig::default();
    let params = [
        ("symbols x bars", format!("{} x {} (Daily)", bench.symbols.len(), bench.n_bars)),
        ("message size", format!("~{body_bytes} bytes")),
        ("topic partitions", KafkaConfig::default().partitions.to_string()),
        ("writer.commit_interval_ms", COMMIT_INTERVAL_MS.to_string()),
        ("writer.max_in_flight_per_partition", writer.max_in_flight_per_partition.to_string()),
        ("runtime", "actix System (single-threaded tokio)".into()),
        ("cores", std::thread::available_parallelism().map_or("?".into(), |n| n.to_string())),
        ("peak RSS (VmHWM)", peak_rss().unwrap_or_else(|| "unknown".into())),
    ];
    for (name, value) in params {
        println!("{name:<40} {value}");
    }
    println!("{line}");
    println!("Pipeline runs are timed from Supervisor::start to Finished (producer and consumer");
    println!("start-up, group join, commits and the 250 ms completion check included); the");
    println!("Publisher row times the sends of an already connected producer only.");
}

/// `VmHWM` of this process, from /proc (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.1} MiB", kb as f64 / 1024.0))
}

fn progress(step: &str) {
    eprintln!("throughput: {step}…");
}

/// A fresh name for a topic, bucket or group (lower case, S3- and Kafka-safe).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Warnings and errors only, on stderr.
fn quiet_logger() -> Logger {
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = std::sync::Mutex::new(drain).fuse().filter_level(slog::Level::Warning).fuse();
    Logger::root(drain, o!())
}
