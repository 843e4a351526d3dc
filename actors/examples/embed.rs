//! Embedding the pipeline in your own actix app, with no services at all.
//!
//! The app builds a [`PipelineSpec`] in code — librdkafka's in-process mock cluster
//! ([`EmbeddedKafka`]) for Kafka, a [`LocalDirSink`] for the object store, the synthetic
//! source — and starts the [`Supervisor`]. It shows that:
//!
//! * an embedding app can pass in its own object store: here a wrapper that announces every
//!   stored key, so the app awaits objects instead of polling the directory;
//! * the first symbol's bars travel source → Kafka → store;
//! * [`AddSymbol`] starts a Fetcher while the pipeline runs, and its objects appear too;
//! * [`Shutdown`] drains in-flight writes and commits, and the pipeline ends with a
//!   [`PipelineSummary`].
//!
//! ```text
//! cargo run -p egx-actors --example embed            # objects go to a temporary directory
//! cargo run -p egx-actors --example embed -- ./embed-data   # ... or to a directory you keep
//! ```

use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use egx_actors::fetcher::FetchConfig;
use egx_actors::kafka::EmbeddedKafka;
use egx_actors::kafka::{KafkaConfig, KafkaMode};
use egx_actors::messages::AddSymbol;
use egx_actors::sink::{LocalDirSink, ObjectSink, Origin, PutOutcome, SinkError};
use egx_actors::sink::{SinkConfig, SinkKind};
use egx_actors::source::{system_clock, SyntheticSource};
use egx_actors::supervisor::{ChaosConfig, SupervisorConfig};
use egx_actors::supervisor::{PipelineExit, PipelineSpec, PipelineSummary, Shutdown, Supervisor};
use egx_actors::writer::WriterConfig;
use egx_actors::{ObjectKey, Symbol};
use futures::future::BoxFuture;
use futures::FutureExt;
use slog::{o, Drain, Logger};
use tokio::sync::{mpsc, oneshot};

/// Bars each Fetcher publishes (daily bars, so one object per trading day).
const BARS_PER_SYMBOL: usize = 5;
/// How long to wait for a symbol's objects before giving up.
const OBJECTS_DEADLINE: Duration = Duration::from_secs(30);

type AppResult<T> = Result<T, Box<dyn Error>>;

#[actix::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> AppResult<()> {
    let log = logger();
    // Keep the temporary directory alive until the end; a directory given on the command
    // line is kept afterwards.
    let (root, _temp) = match std::env::args_os().nth(1) {
        Some(dir) => (PathBuf::from(dir), None),
        None => {
            let temp = tempfile::tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };

    let kafka = KafkaConfig {
        mode: KafkaMode::Embedded,
        topic: "embed-bars".into(),
        dead_letter_topic: "embed-bars.dlq".into(),
        consumer_group: "embed-writer".into(),
        ..KafkaConfig::default()
    };
    kafka.validate()?;
    // The mock cluster lives as long as `cluster`; `kafka` now points at it.
    let (cluster, kafka) = EmbeddedKafka::start(&kafka)?;
    println!("embedded Kafka at {}", cluster.bootstrap_servers());

    let (written_tx, mut written) = mpsc::unbounded_channel();
    let first = Symbol::parse("COMI")?;
    let spec = pipeline_spec(kafka, &root, &first, written_tx, log)?;
    let (supervisor, exit) = Supervisor::start(spec)?;
    let mut exit = Box::pin(exit);

    until_objects(&mut exit, &mut written, &first).await?;
    println!("{first}: {BARS_PER_SYMBOL} objects written");

    let added = Symbol::parse("ETEL")?;
    supervisor.send(AddSymbol(added.clone())).await??;
    println!("{added}: added while running");
    until_objects(&mut exit, &mut written, &added).await?;
    println!("{added}: {BARS_PER_SYMBOL} objects written");

    supervisor.send(Shutdown).await?;
    match exit.await? {
        PipelineExit::Finished(summary) => print_summary(&summary, &root)?,
        PipelineExit::GaveUp(reason) => return Err(format!("gave up: {reason}").into()),
        PipelineExit::Failed(reason) => return Err(format!("failed: {reason}").into()),
        other => return Err(format!("ended: {other:?}").into()),
    }
    drop(cluster);
    Ok(())
}

/// The whole pipeline, configured in code: Kafka from the mock cluster, objects below
/// `root`, one symbol to start with, every stored key announced on `written`.
fn pipeline_spec(
    kafka: KafkaConfig,
    root: &Path,
    first: &Symbol,
    written: mpsc::UnboundedSender<ObjectKey>,
    log: Logger,
) -> AppResult<PipelineSpec> {
    let sink = SinkConfig { kind: SinkKind::Local, local_dir: root.to_path_buf(), ..SinkConfig::default() };
    let fetch = FetchConfig {
        symbols: vec![first.clone()],
        n_bars: BARS_PER_SYMBOL,
        // Each Fetcher fetches once when it starts; this app decides when to stop.
        poll_interval_secs: 0,
        ..FetchConfig::default()
    };
    let writer = WriterConfig { commit_interval_ms: 200, ..WriterConfig::default() };
    let supervisor = SupervisorConfig::default();
    fetch.validate()?;
    writer.validate()?;
    supervisor.validate()?;
    let clock = system_clock();
    Ok(PipelineSpec {
        kafka,
        sink,
        writer,
        source: Arc::new(SyntheticSource::new(fetch.seed, clock.clone())),
        fetch,
        supervisor,
        chaos: ChaosConfig::default(),
        produce: true,
        consume: true,
        once: false,
        object_sink: Arc::new(AnnouncingSink { inner: LocalDirSink::new(root.to_path_buf()), written }),
        clock,
        market_hours: None,
        metrics: Arc::new(egx_actors::metrics::Metrics::new()?),
        log,
    })
}

/// Waits until `symbol` has [`BARS_PER_SYMBOL`] distinct objects, failing if the pipeline
/// ends first or the deadline passes.
async fn until_objects(
    exit: &mut std::pin::Pin<Box<oneshot::Receiver<PipelineExit>>>,
    written: &mut mpsc::UnboundedReceiver<ObjectKey>,
    symbol: &Symbol,
) -> AppResult<()> {
    let marker = format!("/symbol={symbol}/");
    let objects = async {
        let mut keys = BTreeSet::new();
        while keys.len() < BARS_PER_SYMBOL {
            let key = written.recv().await.ok_or("the object store was dropped")?;
            if key.as_str().contains(&marker) {
                keys.insert(key);
            }
        }
        AppResult::Ok(())
    };
    tokio::select! {
        done = tokio::time::timeout(OBJECTS_DEADLINE, objects) => done
            .map_err(|_| format!("no {BARS_PER_SYMBOL} objects of {symbol} within {OBJECTS_DEADLINE:?}"))?,
        ended = exit.as_mut() => Err(format!("the pipeline ended early: {ended:?}").into()),
    }
}

/// A [`LocalDirSink`] that announces every key it stored.
struct AnnouncingSink {
    inner: LocalDirSink,
    written: mpsc::UnboundedSender<ObjectKey>,
}

impl ObjectSink for AnnouncingSink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        self.inner.prepare()
    }

    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        let put = self.inner.put(key.clone(), body, origin);
        let written = self.written.clone();
        async move {
            let outcome = put.await?;
            // The app may have stopped listening; the object is stored either way.
            let _ = written.send(key);
            Ok(outcome)
        }
        .boxed()
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

fn print_summary(s: &PipelineSummary, root: &Path) -> AppResult<()> {
    let committed: Vec<String> = s.committed.iter().map(|(p, o)| format!("p{p}={o}")).collect();
    println!("pipeline finished");
    println!("  bars fetched:       {}", s.fetched);
    println!("  messages published: {}", s.published);
    println!("  records consumed:   {}", s.reader.consumed);
    println!("  objects written:    {}", s.reader.stored);
    println!("  dead-lettered:      {}", s.reader.dead_lettered);
    println!("  committed offsets:  {}", committed.join(" "));
    println!("  actor restarts:     {}", s.restarts);
    println!("  objects under:      {}", s.location);
    for file in files_under(root)? {
        println!("    {file}");
    }
    Ok(())
}

/// Every file below `root`, relative and sorted.
fn files_under(root: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Info-level logs on stderr, so the actors' lifecycle is visible next to the output.
fn logger() -> Logger {
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let drain = std::sync::Mutex::new(drain).fuse().filter_level(slog::Level::Info).fuse();
    Logger::root(drain, o!())
}
