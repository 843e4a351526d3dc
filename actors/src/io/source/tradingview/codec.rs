//! The feed's framing: every websocket text message holds one or more frames
//! `~m~<N>~m~<payload>` joined with no separator, where N counts UTF-16 code units (the
//! length JavaScript reports), not bytes. Outgoing JSON escapes every non-ASCII character
//! so that N equals the byte length whatever the receiver counts.

/// The marker around a frame's length.
const MARKER: &str = "~m~";

/// Longest length prefix accepted, in digits; a longer one cannot be a real frame.
const MAX_LENGTH_DIGITS: usize = 10;

/// Why a websocket message is not a sequence of well-formed frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The text at this byte offset does not start with `~m~`.
    #[error("expected \"~m~\" at byte {0}")]
    MissingMarker(usize),
    /// The length prefix at this byte offset is not a number followed by `~m~`.
    #[error("bad frame length at byte {0}")]
    BadLength(usize),
    /// A frame announces more UTF-16 units than the message holds.
    #[error("frame announces {declared} UTF-16 units but only {available} follow")]
    Truncated {
        /// The announced length.
        declared: usize,
        /// The units left in the message.
        available: usize,
    },
    /// A frame's length ends in the middle of a character (half a surrogate pair).
    #[error("frame length {0} splits a character")]
    SplitCharacter(usize),
}

/// Frames one payload: `~m~<UTF-16 length>~m~<payload>`.
pub fn encode(payload: &str) -> String {
    let units: usize = payload.chars().map(char::len_utf16).sum();
    format!("{MARKER}{units}{MARKER}{payload}")
}

/// Splits a websocket text message into its frames' payloads, in order.
pub fn decode(message: &str) -> Result<Vec<&str>, CodecError> {
    let mut payloads = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let at = message.len() - rest.len();
        let after_marker = rest.strip_prefix(MARKER).ok_or(CodecError::MissingMarker(at))?;
        let digits_len = after_marker.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len == 0 || digits_len > MAX_LENGTH_DIGITS {
            return Err(CodecError::BadLength(at));
        }
        let declared: usize = after_marker[..digits_len].parse().map_err(|_| CodecError::BadLength(at))?;
        let body = after_marker[digits_len..].strip_prefix(MARKER).ok_or(CodecError::BadLength(at))?;
        let end = byte_len_of_units(body, declared)?;
        payloads.push(&body[..end]);
        rest = &body[end..];
    }
    Ok(payloads)
}

/// The byte length of the first `units` UTF-16 code units of `text`.
fn byte_len_of_units(text: &str, units: usize) -> Result<usize, CodecError> {
    let mut counted = 0;
    for (offset, c) in text.char_indices() {
        if counted == units {
            return Ok(offset);
        }
        counted += c.len_utf16();
        if counted > units {
            return Err(CodecError::SplitCharacter(units));
        }
    }
    if counted == units {
        Ok(text.len())
    } else {
        Err(CodecError::Truncated { declared: units, available: counted })
    }
}

/// Escapes every non-ASCII character of a JSON text as `\uXXXX` (surrogate pairs beyond
/// the basic plane), so that the text is pure ASCII and a frame's length equals its byte
/// length whatever the receiver counts. JSON text holds non-ASCII characters only inside
/// strings, where these escapes mean the same characters.
pub fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_count_utf16_units() {
        // "é" is 2 bytes and 1 unit; "😀" is 4 bytes and 2 units.
        assert_eq!(encode("aé😀"), "~m~4~m~aé😀");
        assert_eq!(decode("~m~4~m~aé😀~m~2~m~{}").unwrap(), ["aé😀", "{}"]);
    }

    #[test]
    fn heartbeats_and_empty_messages_decode() {
        assert_eq!(decode("~m~4~m~~h~1").unwrap(), ["~h~1"]);
        assert_eq!(decode("").unwrap(), Vec::<&str>::new());
        assert_eq!(decode("~m~0~m~").unwrap(), [""]);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(decode("~m~9~m~short"), Err(CodecError::Truncated { declared: 9, available: 5 }));
        assert_eq!(decode("~m~1~m~😀"), Err(CodecError::SplitCharacter(1)));
        assert_eq!(decode("hello"), Err(CodecError::MissingMarker(0)));
        assert_eq!(decode("~m~x~m~"), Err(CodecError::BadLength(0)));
        assert_eq!(decode("~m~99999999999999999999~m~"), Err(CodecError::BadLength(0)));
        assert_eq!(decode("~m~2~m~ab~m~3"), Err(CodecError::BadLength(9)));
        assert_eq!(decode("~m~1~m~ab"), Err(CodecError::MissingMarker(8)));
    }

    #[test]
    fn escaped_json_is_ascii_with_arabic_and_emoji() {
        let json = escape_non_ascii(&serde_json::json!({"d": "بنك 😀", "n": 1}).to_string());
        assert_eq!(json, r#"{"d":"\u0628\u0646\u0643 \ud83d\ude00","n":1}"#);
        assert!(json.is_ascii());
        assert_eq!(encode(&json), format!("~m~{}~m~{json}", json.len()));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["d"], "بنك 😀");
    }

    fn payload() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z~0-9{}\":,]{0,40}",
            proptest::collection::vec(
                prop_oneof![Just("البنك التجاري"), Just("😀"), Just("~m~"), Just("x")],
                0..8
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(payloads in proptest::collection::vec(payload(), 0..6)) {
            let message: String = payloads.iter().map(|p| encode(p)).collect();
            let decoded = decode(&message).unwrap();
            prop_assert_eq!(decoded, payloads.iter().map(String::as_str).collect::<Vec<_>>());
        }

        #[test]
        fn json_text_round_trips_through_ascii_frames(text in payload()) {
            let json = escape_non_ascii(&serde_json::json!({"m": "x", "p": [text.clone()]}).to_string());
            prop_assert!(json.is_ascii());
            let framed = encode(&json);
            prop_assert_eq!(framed.clone(), format!("~m~{}~m~{}", json.len(), json));
            let decoded = decode(&framed).unwrap();
            let back: serde_json::Value = serde_json::from_str(decoded[0]).unwrap();
            prop_assert_eq!(back["p"][0].as_str(), Some(text.as_str()));
        }

        #[test]
        fn garbage_never_panics(text in any::<String>()) {
            let _ = decode(&text);
        }

        #[test]
        fn lying_prefixes_never_panic(payload in payload(), delta in -3i64..4, cut in 0usize..8) {
            let units: usize = payload.chars().map(char::len_utf16).sum();
            let lied = (units as i64 + delta).max(0);
            let mut message = format!("~m~{lied}~m~{payload}");
            let keep = message.len().saturating_sub(cut);
            let keep = (0..=keep).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(keep);
            let result = decode(&message);
            if delta > 0 && cut == 0 {
                prop_assert!(result.is_err(), "a length past the end must be refused");
            }
        }
    }
}
