//! The one wall clock of the project: every "now" a record or row carries comes from
//! here (`clippy.toml` forbids `SystemTime::now` elsewhere), so there is one place to
//! read it and one to fake it.

/// The current time, unix seconds (0 if the system clock is before 1970).
#[expect(clippy::disallowed_methods, reason = "the one place the wall clock is read")]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
