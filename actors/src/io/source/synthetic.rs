//! A clearly labelled synthetic source: a seeded random walk per symbol on the EGX
//! calendar (Sunday–Thursday, 10:00–14:30 Cairo). The same seed, symbol and bar time
//! always give the same bar, so runs are reproducible.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Clock, FetchRequest, Source, SourceError};
use crate::contract::market::{Bar, Interval, EXCHANGE_TZ};

/// Start of the walk: every price path begins here.
const WALK_START: i64 = 1_577_836_800; // 2020-01-01T00:00:00Z

/// Seeded random-walk bars.
pub struct SyntheticSource {
    seed: u64,
    clock: Clock,
}

impl SyntheticSource {
    /// A source with this seed, reading time from `clock`.
    pub fn new(seed: u64, clock: Clock) -> Self {
        Self { seed, clock }
    }

    /// The bars of a request as of `now`.
    pub fn bars_at(&self, request: &FetchRequest, now: DateTime<Utc>) -> Vec<Bar> {
        let mut times = bar_times(request.interval, now, request.n_bars, request.end_date);
        if let Some(start) = request.start_date {
            times.retain(|t| t.with_timezone(&EXCHANGE_TZ).date_naive() >= start);
        }
        let step_secs = step_seconds(request.interval);
        let stream = mix(self.seed
            ^ fnv(request.symbol.as_str().as_bytes())
            ^ fnv(request.interval.feed_code().as_bytes()));
        let base = 10.0 + (stream % 9_000) as f64 / 100.0;
        let mut walk = Walk { stream, index: 0, log_price: 0.0 };
        times
            .into_iter()
            .map(|time| {
                let index = ((time.timestamp() - WALK_START) / step_secs).max(0) as u64;
                let open = base * walk.advance_to(index).exp();
                let close = base * walk.advance_to(index + 1).exp();
                let spread = 1.0 + (mix(stream ^ index.wrapping_mul(7)) % 200) as f64 / 10_000.0;
                Bar {
                    symbol: request.symbol.clone(),
                    exchange: request.exchange.clone(),
                    interval: request.interval,
                    time,
                    open: round2(open),
                    high: round2(open.max(close) * spread),
                    low: round2(open.min(close) / spread),
                    close: round2(close),
                    volume: Some((10_000 + mix(stream ^ index) % 2_000_000) as f64),
                }
            })
            .collect()
    }
}

impl Source for SyntheticSource {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        let bars = self.bars_at(&request, (self.clock)());
        async move { Ok(bars) }.boxed()
    }
}

/// Cumulative log-price of the walk, advanced step by step from the walk's start.
struct Walk {
    stream: u64,
    index: u64,
    log_price: f64,
}

impl Walk {
    fn advance_to(&mut self, index: u64) -> f64 {
        if index < self.index {
            self.index = 0;
            self.log_price = 0.0;
        }
        while self.index < index {
            let r = mix(self.stream ^ self.index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // A step of at most ±1.5 % per bar.
            self.log_price += ((r % 3_001) as f64 - 1_500.0) / 100_000.0;
            self.index += 1;
        }
        self.log_price
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// SplitMix64 finaliser: a well-mixed hash of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn step_seconds(interval: Interval) -> i64 {
    match interval {
        Interval::Minutes(m) => i64::from(m) * 60,
        Interval::Daily => 86_400,
        Interval::Weekly => 7 * 86_400,
        Interval::Monthly => 30 * 86_400,
    }
}

fn is_trading_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Fri | Weekday::Sat)
}

fn at_cairo(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    crate::contract::market::cairo_local_to_utc(date.and_time(time))
}

const OPEN: (u32, u32) = (10, 0);
const CLOSE: (u32, u32) = (14, 30);

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

/// The opening times of the last `n` bars that opened at or before `now` (and on or
/// before `end_date`), oldest first.
fn bar_times(
    interval: Interval,
    now: DateTime<Utc>,
    n: usize,
    end_date: Option<NaiveDate>,
) -> Vec<DateTime<Utc>> {
    let mut day = now.with_timezone(&EXCHANGE_TZ).date_naive();
    let mut latest = now;
    if let Some(end) = end_date.filter(|end| *end < day) {
        day = end;
        latest = EXCHANGE_TZ
            .from_local_datetime(&end.and_time(hm(23, 59)))
            .earliest()
            .map_or(now, |t| t.with_timezone(&Utc));
    }
    let mut out = Vec::with_capacity(n);
    // Walk back over calendar days; bounded so an empty calendar cannot loop forever.
    for _ in 0..(n * 40 + 400) {
        if out.len() >= n {
            break;
        }
        let candidates: Vec<DateTime<Utc>> = match interval {
            _ if !is_trading_day(day) => Vec::new(),
            Interval::Daily => vec![at_cairo(day, hm(OPEN.0, OPEN.1))],
            Interval::Weekly if day.weekday() == Weekday::Sun => {
                vec![at_cairo(day, hm(OPEN.0, OPEN.1))]
            }
            Interval::Monthly if first_trading_day_of_month(day) => {
                vec![at_cairo(day, hm(OPEN.0, OPEN.1))]
            }
            Interval::Minutes(m) => {
                let open = at_cairo(day, hm(OPEN.0, OPEN.1));
                let close = at_cairo(day, hm(CLOSE.0, CLOSE.1));
                let step = Duration::minutes(i64::from(m));
                let mut t = open;
                let mut v = Vec::new();
                while t < close {
                    v.push(t);
                    t += step;
                }
                v
            }
            _ => Vec::new(),
        };
        for t in candidates.into_iter().rev() {
            if t <= latest && out.len() < n {
                out.push(t);
            }
        }
        day = day.pred_opt().unwrap_or(day);
    }
    out.reverse();
    out
}

fn first_trading_day_of_month(day: NaiveDate) -> bool {
    let mut d = day.with_day(1).unwrap_or(day);
    while !is_trading_day(d) {
        d = d.succ_opt().unwrap_or(d);
    }
    d == day
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::market::Symbol;

    fn request(interval: Interval, n: usize) -> FetchRequest {
        FetchRequest {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval,
            n_bars: n,
            start_date: None,
            end_date: None,
        }
    }

    fn source() -> SyntheticSource {
        SyntheticSource::new(7, super::super::system_clock())
    }

    #[test]
    fn daily_bars_fall_on_trading_days_at_the_open() {
        // Thursday 2025-01-23 16:00 Cairo.
        let now = Utc.with_ymd_and_hms(2025, 1, 23, 14, 0, 0).unwrap();
        let bars = source().bars_at(&request(Interval::Daily, 6), now);
        let dates: Vec<String> = bars.iter().map(|b| b.trading_date().to_string()).collect();
        assert_eq!(
            dates,
            ["2025-01-16", "2025-01-19", "2025-01-20", "2025-01-21", "2025-01-22", "2025-01-23"]
        );
        for b in &bars {
            assert_eq!(b.time.with_timezone(&EXCHANGE_TZ).format("%H:%M").to_string(), "10:00");
            assert!(b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close));
        }
    }

    #[test]
    fn the_same_bar_is_the_same_whenever_it_is_fetched() {
        let s = source();
        let a = s.bars_at(&request(Interval::Daily, 3), Utc.with_ymd_and_hms(2025, 1, 23, 14, 0, 0).unwrap());
        let b = s.bars_at(&request(Interval::Daily, 5), Utc.with_ymd_and_hms(2025, 1, 26, 14, 0, 0).unwrap());
        let b_same: Vec<_> = b.iter().filter(|x| a.iter().any(|y| y.time == x.time)).cloned().collect();
        assert_eq!(a, b_same);
        let other_seed = SyntheticSource::new(8, super::super::system_clock())
            .bars_at(&request(Interval::Daily, 3), Utc.with_ymd_and_hms(2025, 1, 23, 14, 0, 0).unwrap());
        assert_ne!(a[0].close, other_seed[0].close);
    }

    #[test]
    fn intraday_bars_stay_inside_the_session() {
        let now = Utc.with_ymd_and_hms(2025, 1, 23, 9, 0, 0).unwrap(); // 11:00 Cairo
        let bars = source().bars_at(&request(Interval::Minutes(30), 5), now);
        let times: Vec<String> =
            bars.iter().map(|b| b.time.with_timezone(&EXCHANGE_TZ).format("%d %H:%M").to_string()).collect();
        assert_eq!(times, ["22 13:30", "22 14:00", "23 10:00", "23 10:30", "23 11:00"]);
    }
}
