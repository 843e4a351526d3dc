//! The chart protocol's messages: building the client's commands (framed, ASCII-only JSON)
//! and reading the server's payloads into [`ServerPayload`]s. Unknown methods and unknown
//! fields (`t`, `t_ms`, …) are tolerated; only what a chart session needs is extracted.

use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use super::codec;

/// The symbol id used inside each chart session (one symbol per session).
pub const SYMBOL_ID: &str = "sds_sym_1";
/// The series id used inside each chart session (one series per session).
pub const SERIES_ID: &str = "sds_1";
/// The series' turnaround id.
const TURNAROUND_ID: &str = "s1";

/// Why a server payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The payload is neither a heartbeat nor JSON.
    #[error("payload is not JSON: {0}")]
    Json(String),
}

/// A fresh session id: the prefix (`cs_`, `qs_`) and 12 random lowercase letters.
pub fn session_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let letters: String = (0..12).map(|_| char::from(rng.random_range(b'a'..=b'z'))).collect();
    format!("{prefix}{letters}")
}

/// A framed command `{"m":method,"p":params}`, ASCII-only so its length is its byte length.
pub fn command(method: &str, params: Value) -> String {
    codec::encode(&codec::escape_non_ascii(&json!({ "m": method, "p": params }).to_string()))
}

/// `set_auth_token`: always the first command on a connection.
pub fn set_auth_token(token: &str) -> String {
    command("set_auth_token", json!([token]))
}

/// `chart_create_session`.
pub fn chart_create_session(session: &str) -> String {
    command("chart_create_session", json!([session, ""]))
}

/// `chart_delete_session`.
pub fn chart_delete_session(session: &str) -> String {
    command("chart_delete_session", json!([session]))
}

/// `resolve_symbol` for `EXCHANGE:TICKER` with split adjustment and the regular session;
/// the third parameter is `=` followed by compact JSON, as the web client sends it.
pub fn resolve_symbol(session: &str, exchange: &str, ticker: &str) -> String {
    let spec =
        json!({ "symbol": format!("{exchange}:{ticker}"), "adjustment": "splits", "session": "regular" });
    command("resolve_symbol", json!([session, SYMBOL_ID, format!("={spec}")]))
}

/// `create_series` asking for the latest `count` bars at `resolution` (a feed code).
pub fn create_series(session: &str, resolution: &str, count: usize) -> String {
    command("create_series", json!([session, SERIES_ID, TURNAROUND_ID, SYMBOL_ID, resolution, count]))
}

/// `switch_timezone` to the exchange's zone.
pub fn switch_timezone(session: &str) -> String {
    command("switch_timezone", json!([session, "exchange"]))
}

/// `request_more_data`: `count` bars older than those loaded.
pub fn request_more_data(session: &str, count: usize) -> String {
    command("request_more_data", json!([session, SERIES_ID, count]))
}

/// One bar as the feed sends it: `v = [time, open, high, low, close, (volume)]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBar {
    /// Opening time, Unix seconds UTC.
    pub time: i64,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing (or latest) price.
    pub close: f64,
    /// Volume, absent from 5-element bars.
    pub volume: Option<f64>,
}

/// What a server payload is.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerPayload {
    /// `~h~N`: to be echoed, re-framed, as it came.
    Heartbeat,
    /// The first JSON object of a connection (no `m`): ignored.
    Hello,
    /// A protocol message.
    Event(ChartEvent),
}

/// A server message a chart session cares about.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartEvent {
    /// `symbol_resolved`: the symbol exists.
    SymbolResolved {
        /// Chart session id.
        session: String,
    },
    /// `symbol_error`: the symbol does not exist (no `series_completed` follows).
    SymbolError {
        /// Chart session id.
        session: String,
        /// The server's reason.
        reason: String,
    },
    /// `timescale_update` (a loaded batch) or `du` (a live update) with bars of a series.
    Bars {
        /// Chart session id.
        session: String,
        /// True for `du`.
        live: bool,
        /// Bars of the session's series, in the order sent.
        bars: Vec<RawBar>,
    },
    /// `series_completed`: the end of a batch.
    SeriesCompleted {
        /// Chart session id.
        session: String,
    },
    /// `series_error`: the series cannot be served; reason in `p[3]`.
    SeriesError {
        /// Chart session id.
        session: String,
        /// The server's reason.
        reason: String,
    },
    /// `critical_error`, e.g. invalid `create_series` parameters.
    CriticalError {
        /// Chart session id, when the first parameter names one.
        session: Option<String>,
        /// The server's reason and details.
        reason: String,
    },
    /// `protocol_error`: the server refused a malformed frame and will close.
    ProtocolError {
        /// The server's reason.
        reason: String,
    },
    /// Anything else (`series_loading`, quotes, …).
    Other {
        /// Chart session id, when the first parameter is a string.
        session: Option<String>,
    },
}

impl ChartEvent {
    /// The chart session the event belongs to; `None` for connection-wide events.
    pub fn session(&self) -> Option<&str> {
        match self {
            Self::SymbolResolved { session }
            | Self::SymbolError { session, .. }
            | Self::Bars { session, .. }
            | Self::SeriesCompleted { session }
            | Self::SeriesError { session, .. } => Some(session),
            Self::CriticalError { session, .. } | Self::Other { session } => session.as_deref(),
            Self::ProtocolError { .. } => None,
        }
    }
}

/// A message's envelope; other top-level fields are ignored.
#[derive(Deserialize)]
struct Envelope {
    m: Option<String>,
    #[serde(default)]
    p: Vec<Value>,
}

/// Reads one frame's payload.
pub fn parse(payload: &str) -> Result<ServerPayload, ProtocolError> {
    if payload.starts_with("~h~") {
        return Ok(ServerPayload::Heartbeat);
    }
    let envelope: Envelope = serde_json::from_str(payload).map_err(|e| ProtocolError::Json(e.to_string()))?;
    let Some(method) = envelope.m else {
        return Ok(ServerPayload::Hello);
    };
    Ok(ServerPayload::Event(event(&method, &envelope.p)))
}

/// The string parameter at `index`, or an empty string.
fn text(params: &[Value], index: usize) -> String {
    params.get(index).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn event(method: &str, p: &[Value]) -> ChartEvent {
    let session = text(p, 0);
    match method {
        "symbol_resolved" => ChartEvent::SymbolResolved { session },
        "symbol_error" => ChartEvent::SymbolError { session, reason: text(p, 2) },
        "timescale_update" | "du" => {
            let bars = p.get(1).map(series_bars).unwrap_or_default();
            ChartEvent::Bars { session, live: method == "du", bars }
        }
        "series_completed" => ChartEvent::SeriesCompleted { session },
        "series_error" => ChartEvent::SeriesError { session, reason: text(p, 3) },
        "critical_error" => critical_error(p),
        "protocol_error" => ChartEvent::ProtocolError { reason: all_text(p) },
        _ => ChartEvent::Other { session: p.first().and_then(Value::as_str).map(str::to_string) },
    }
}

fn critical_error(p: &[Value]) -> ChartEvent {
    let first = p.first().and_then(Value::as_str).unwrap_or_default();
    if first.starts_with("cs_") {
        ChartEvent::CriticalError { session: Some(first.to_string()), reason: all_text(&p[1..]) }
    } else {
        ChartEvent::CriticalError { session: None, reason: all_text(p) }
    }
}

/// The string parameters joined with `: `.
fn all_text(p: &[Value]) -> String {
    p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(": ")
}

/// The bars of the session's series in a `timescale_update`/`du` object keyed by series id.
fn series_bars(updates: &Value) -> Vec<RawBar> {
    let Some(series) = updates.get(SERIES_ID) else {
        return Vec::new();
    };
    let points = series.get("s").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    points.iter().filter_map(|point| raw_bar(point.get("v")?)).collect()
}

/// A bar from `v`; `None` when it is not 5 or 6 finite numbers.
fn raw_bar(v: &Value) -> Option<RawBar> {
    let numbers: Vec<f64> = v.as_array()?.iter().map(Value::as_f64).collect::<Option<_>>()?;
    if !(5..=6).contains(&numbers.len()) || numbers.iter().any(|n| !n.is_finite()) {
        return None;
    }
    let seconds = numbers[0].round();
    if seconds.abs() > 1e13 {
        return None;
    }
    Some(RawBar {
        time: seconds as i64,
        open: numbers[1],
        high: numbers[2],
        low: numbers[3],
        close: numbers[4],
        volume: numbers.get(5).copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_have_the_prefix_and_twelve_lowercase_letters() {
        let id = session_id("cs_");
        assert_eq!(id.len(), 15);
        assert!(id.starts_with("cs_") && id[3..].bytes().all(|b| b.is_ascii_lowercase()));
        assert_ne!(session_id("cs_"), session_id("cs_"));
    }

    #[test]
    fn commands_match_the_captured_web_client() {
        let captured: Vec<&str> =
            include_str!("../../../../../tests/fixtures/tradingview/client_frames.txt").lines().collect();
        assert_eq!(chart_create_session("cs_casjcotuguzl"), captured[0]);
        assert_eq!(request_more_data("cs_casjcotuguzl", 27000), captured[3]);
        // The capture's symbol and session differ; the shape and the length rule do not.
        let resolve = resolve_symbol("cs_casjcotuguzl", "EGX", "COMI");
        let payload = captured[1].splitn(3, "~m~").nth(2).unwrap();
        let expected = payload.replace("us_regular", "regular").replace("CBOT_MINI:YM1!", "EGX:COMI");
        assert_eq!(resolve, codec::encode(&expected));
        assert_eq!(
            create_series("cs_x", "1D", 300),
            r#"~m~68~m~{"m":"create_series","p":["cs_x","sds_1","s1","sds_sym_1","1D",300]}"#
        );
        assert_eq!(
            set_auth_token("unauthorized_user_token"),
            r#"~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}"#
        );
    }

    #[test]
    fn the_captured_timescale_update_gives_six_bars() {
        let frame = include_str!("../../../../../tests/fixtures/tradingview/timescale_update.frame");
        let payloads = codec::decode(frame.trim_end_matches('\n')).unwrap();
        let ServerPayload::Event(ChartEvent::Bars { session, live, bars }) = parse(payloads[0]).unwrap()
        else {
            panic!("not bars");
        };
        assert_eq!((session.as_str(), live, bars.len()), ("cs_nibldyin8v0q", false, 6));
        assert_eq!(
            bars[0],
            RawBar {
                time: 1_785_715_200,
                open: 63570.01,
                high: 64080.0,
                low: 62300.0,
                close: 63520.0,
                volume: Some(15543.29743)
            }
        );
        assert_eq!(bars[5].time, 1_786_147_200);
    }

    #[test]
    fn server_messages_are_classified() {
        let p = |s: &str| parse(s).unwrap();
        assert_eq!(p("~h~7"), ServerPayload::Heartbeat);
        assert_eq!(p(r#"{"session_id":"<0.1>","timestamp":1,"release":"r"}"#), ServerPayload::Hello);
        let du = r#"{"m":"du","t":1,"t_ms":2,"p":["cs_a",{"sds_1":{"s":[{"i":3,"v":[60.0,1,2,0.5,1.5]}]}}]}"#;
        let ServerPayload::Event(ChartEvent::Bars { live: true, bars, .. }) = p(du) else { panic!("du") };
        assert_eq!(bars[0].volume, None);
        let error = p(r#"{"m":"symbol_error","p":["cs_a","sds_sym_1","invalid symbol"]}"#);
        assert_eq!(
            error,
            ServerPayload::Event(ChartEvent::SymbolError {
                session: "cs_a".into(),
                reason: "invalid symbol".into()
            })
        );
        let critical =
            p(r#"{"m":"critical_error","p":["cs_a","invalid parameters","method: create_series"]}"#);
        let ServerPayload::Event(ChartEvent::CriticalError { session, reason }) = critical else { panic!() };
        assert_eq!(
            (session.as_deref(), reason.as_str()),
            (Some("cs_a"), "invalid parameters: method: create_series")
        );
        assert!(parse("not json").is_err());
    }

    #[test]
    fn malformed_bars_are_skipped() {
        let v = json!({"sds_1": {"s": [{"v": [1.0, 2.0]}, {"v": "x"}, {"v": [1e300, 1, 1, 1, 1]}, {"v": [9, 1, 1, 1, 1, 7]}]}});
        let bars = series_bars(&v);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].volume, Some(7.0));
    }
}
