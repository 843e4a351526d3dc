//! Fuzzes the TradingView frame decoder (`codec::decode`, public) and the payload reader
//! behind it (`protocol::parse`): neither may panic, and frames it accepts must survive
//! re-encoding. Websocket text messages are UTF-8, so the input is read as such (lossily,
//! so that every input reaches the decoder).

#![no_main]

use egx_actors::source::tradingview::{codec, protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let message = String::from_utf8_lossy(data);
    let Ok(payloads) = codec::decode(&message) else { return };
    // Lengths may be written with leading zeros, so compare payloads, not text.
    let reencoded: String = payloads.iter().map(|p| codec::encode(p)).collect();
    assert_eq!(codec::decode(&reencoded).as_deref(), Ok(payloads.as_slice()));
    for payload in payloads {
        let _ = protocol::parse(payload);
    }
});
