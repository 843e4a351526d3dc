//! Operators' commands: `check-config` (the configuration as loaded), `check`
//! (configuration and connections), `stored` (what the bucket holds, by date and symbol)
//! and `lag` (the consumer group's lag per partition). They run to completion and fail
//! with exit code 1 and the reason, as an operator runs them by hand.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use egx_actors::kafka::KafkaMode;
use egx_actors::kafka::{self, KafkaWatch, OffsetProbe};
use egx_actors::metrics::Metrics;
use slog::Logger;

use crate::exit;
use crate::settings::Settings;

/// How long `check` waits for the brokers: it fails fast, as operators run it by hand.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Prints the configuration as loaded and validated, with secrets redacted.
pub fn check_config(settings: &Settings) -> Result<ExitCode> {
    print!("{}", settings.to_redacted_toml()?);
    Ok(ExitCode::SUCCESS)
}

/// Runs an operator command to completion; its failure is exit code 1 with the reason.
pub fn finish(command: impl Future<Output = Result<()>>) -> Result<ExitCode> {
    match actix::System::new().block_on(command) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("egx-pipeline: error: {e:#}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}

/// Tests the connections a configuration needs; fails with the first unreachable or
/// refusing one.
pub async fn check(settings: &Settings) -> Result<()> {
    if settings.kafka.mode == KafkaMode::Embedded {
        println!("kafka:  embedded (in-process mock cluster), nothing to reach");
    } else {
        let servers = &settings.kafka.bootstrap_servers;
        // The pipeline's own start-up check: a refusal names its cause and setting.
        let metrics = Arc::new(Metrics::new()?);
        let watch = KafkaWatch::new(&settings.kafka, metrics, Logger::root(slog::Discard, slog::o!()));
        let brokers = kafka::preflight(&settings.kafka, &watch, CHECK_WAIT).await?;
        println!("kafka:  {servers} answered ({brokers} broker(s))");
    }
    let sink = egx_actors::sink::build(&settings.sink).await;
    // A refusal says who refused what (TLS trust, the access keys, a permission) first.
    let status = sink.check().await.map_err(|e| match e.refusal() {
        Some(refusal) => anyhow!("{refusal}"),
        None => anyhow!("object store is not usable: {e}"),
    })?;
    println!("store:  {status}");
    println!("ok");
    Ok(())
}

/// Object counts by date and symbol below `prefix`.
pub fn summarise(keys: &[String]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for key in keys {
        let part =
            |name: &str| key.split('/').find_map(|seg| seg.strip_prefix(name)).unwrap_or("?").to_string();
        *counts.entry((part("date="), part("symbol="))).or_insert(0) += 1;
    }
    counts
}

/// Prints what is stored below the prefix.
pub async fn stored(settings: &Settings, prefix: Option<&str>) -> Result<()> {
    let prefix = prefix.unwrap_or(&settings.sink.prefix);
    let sink = egx_actors::sink::build(&settings.sink).await;
    let keys = sink.list(prefix).await.map_err(|e| anyhow!("cannot list {prefix:?}: {e}"))?;
    let counts = summarise(&keys);
    println!("{:<12} {:<12} {:>8}", "date", "symbol", "objects");
    for ((date, symbol), n) in &counts {
        println!("{date:<12} {symbol:<12} {n:>8}");
    }
    let dates: std::collections::BTreeSet<_> = counts.keys().map(|(d, _)| d).collect();
    let symbols: std::collections::BTreeSet<_> = counts.keys().map(|(_, s)| s).collect();
    println!(
        "total: {} objects, {} dates, {} symbols under {}",
        keys.len(),
        dates.len(),
        symbols.len(),
        sink.location()
    );
    Ok(())
}

/// Prints the group's committed offset, the end offset and the lag of every partition.
pub async fn lag(settings: &Settings) -> Result<()> {
    if settings.kafka.mode == KafkaMode::Embedded {
        bail!("lag needs a real Kafka cluster (kafka.mode = \"external\"); the embedded one lives inside a running pipeline");
    }
    let kafka = settings.kafka.clone();
    let (ends, committed) = tokio::task::spawn_blocking(move || -> Result<_> {
        let probe = OffsetProbe::new(&kafka)?;
        Ok((probe.end_offsets()?, probe.committed()?))
    })
    .await?
    .with_context(|| format!("cannot read offsets from Kafka at {}", settings.kafka.bootstrap_servers))?;
    println!("group {} on topic {}", settings.kafka.consumer_group, settings.kafka.topic);
    println!("{:>9} {:>12} {:>12} {:>10}", "partition", "end", "committed", "lag");
    let mut total = 0;
    for (p, end) in &ends {
        let c = committed.get(p).copied();
        let lag = end - c.unwrap_or(0);
        total += lag;
        let shown = c.map_or("-".to_string(), |c| c.to_string());
        println!("{p:>9} {end:>12} {shown:>12} {lag:>10}");
    }
    println!("total lag: {total}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_counted_by_date_and_symbol() {
        let keys: Vec<String> = [
            "streaming/date=2025-01-20/symbol=COMI/a.json",
            "streaming/date=2025-01-20/symbol=COMI/b.json",
            "streaming/date=2025-01-21/symbol=ETEL/a.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let counts = summarise(&keys);
        assert_eq!(counts[&("2025-01-20".to_string(), "COMI".to_string())], 2);
        assert_eq!(counts[&("2025-01-21".to_string(), "ETEL".to_string())], 1);
    }
}
