//! The sentinel secret: one value the secret tests hand to the binary wherever it takes a
//! secret (S3 secret key, SASL password, TradingView token), and the one check that an
//! output does not contain it. Defined once, so that every test looks for the same thing.

use std::process::Output;

/// The secret every sentinel run is given (also usable as an S3 secret key, a SASL
/// password and a feed token).
pub const SENTINEL: &str = "sentinel-7f3a9c";

/// Its random part, which also catches the secret printed half-masked or re-encoded.
const TAIL: &str = "7f3a9c";

/// Fails if `text` (one stream of `what`) contains the sentinel or its random part.
pub fn assert_absent(text: &str, what: &str) {
    assert!(!text.contains(SENTINEL) && !text.contains(TAIL), "{what}: the secret leaked:\n{text}");
}

/// Fails if the sentinel shows up on the process's stdout or stderr.
pub fn assert_not_printed(out: &Output, what: &str) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert_absent(&String::from_utf8_lossy(bytes), &format!("{what} ({stream})"));
    }
}
