//! The one wall clock every role reads. The protocol rules never read it: they take `now` as
//! an argument, so that they stay pure and are tested at any instant.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is set before 1970).
pub fn unix_now_ms() -> u64 {
	SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// Seconds since the Unix epoch, as x402's `validAfter` and `validBefore` count them.
pub fn unix_now() -> u64 {
	unix_now_ms() / 1000
}
