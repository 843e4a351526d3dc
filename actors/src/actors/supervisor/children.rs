//! Starting the supervised children: the Publisher, a Fetcher per symbol, and the
//! KafkaReader/S3Writer pair (restarted together, so that the new consumer resumes from
//! the committed offsets).

use std::time::Duration;

use actix::prelude::*;

use super::{PipelineExit, Supervisor};
use crate::actors::fetcher::{FetchMode, Fetcher, FetcherSpec};
use crate::actors::publisher::Publisher;
use crate::actors::reader::{KafkaReader, ReaderSpec};
use crate::actors::writer::{DeadLetters, S3Writer, WriterSpec};
use crate::contract::market::Symbol;
use crate::io::source::FetchRequest;
use crate::messages::{ChildId, Stop};

impl Supervisor {
    pub(super) fn start_publisher(&mut self, ctx: &mut Context<Self>) {
        let Some(producer) = self.producer.clone() else {
            return;
        };
        let gen = self.next_generation();
        let publisher = Publisher::new(
            producer,
            self.spec.kafka.topic.clone(),
            self.spec.metrics.clone(),
            self.spec.log.clone(),
        )
        .with_lifeline(self.lifeline(ChildId::Publisher(gen), ctx))
        .start();
        self.publisher = Some((gen, publisher));
    }

    pub(super) fn start_fetcher(&mut self, symbol: Symbol, ctx: &mut Context<Self>) {
        let Some((_, publisher)) = &self.publisher else {
            return;
        };
        let fetch = &self.spec.fetch;
        let spec = FetcherSpec {
            request: FetchRequest {
                symbol: symbol.clone(),
                exchange: fetch.exchange.clone(),
                interval: fetch.interval,
                n_bars: fetch.n_bars,
                start_date: fetch.start_date,
                end_date: fetch.end_date,
            },
            source: self.spec.source.clone(),
            publisher: publisher.clone().recipient(),
            poll_every: match (self.spec.once, fetch.mode) {
                (true, _) => None,
                (false, FetchMode::Poll) => fetch.poll_interval(),
                (false, FetchMode::Stream) => {
                    (fetch.resync_secs > 0).then(|| Duration::from_secs(fetch.resync_secs))
                }
            },
            market_hours: self.spec.market_hours.clone().filter(|_| fetch.market_hours),
            stream: fetch.mode == FetchMode::Stream && !self.spec.once,
            cursors: self.cursors.clone(),
            events: Some(ctx.address().recipient()),
            clock: self.spec.clock.clone(),
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.clone(),
        };
        let gen = self.next_generation();
        let lifeline = self.lifeline(ChildId::Fetcher(symbol.to_string(), gen), ctx);
        let addr = Fetcher::new(spec).with_lifeline(lifeline).start();
        if let Some((_, old)) = self.fetchers.insert(symbol, (gen, addr)) {
            old.do_send(Stop);
        }
    }

    pub(super) fn start_pair(&mut self, ctx: &mut Context<Self>) {
        let Some(producer) = self.producer.clone() else {
            return;
        };
        let gen = self.next_generation();
        let writer = S3Writer::new(WriterSpec {
            sink: self.spec.object_sink.clone(),
            template: self.template.clone(),
            dead_letters: DeadLetters::new(producer, self.spec.kafka.dlq_topic(), &self.spec.kafka.topic),
            config: self.spec.writer.clone(),
            panic_rate: self.spec.chaos.writer_panic_rate,
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.new(slog::o!("actor" => "S3Writer")),
        })
        .with_lifeline(self.lifeline(ChildId::Writer(gen), ctx))
        .start();
        let reader_spec = ReaderSpec {
            kafka: self.spec.kafka.clone(),
            watch: self.watch.clone(),
            writer: self.spec.writer.clone(),
            sink: writer.clone().recipient(),
            panic_rate: self.spec.chaos.reader_panic_rate,
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.new(slog::o!("actor" => "KafkaReader")),
        };
        match KafkaReader::start(reader_spec, Some(self.lifeline(ChildId::Reader(gen), ctx))) {
            Ok(reader) => self.pair = Some((gen, reader, writer)),
            Err(e) => {
                writer.do_send(Stop);
                self.finish(PipelineExit::Failed(e.to_string()), ctx);
            }
        }
    }
}
