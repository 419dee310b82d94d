//! Times as people read them: clock times shifted by a UTC offset fixed at start (so
//! drawing never reads the clock, and snapshot tests use offset 0), dates, RFC 3339.

/// The local UTC offset in seconds, as the C library sees it now.
pub fn local_utc_offset() -> i64 {
    let now = unix_ms() / 1000;
    let t = now as libc::time_t;
    // SAFETY: localtime_r only writes the tm we hand it.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// Milliseconds since the Unix epoch: the node's clock, so the console and the nodes read
/// time the same way.
pub use opsdeck_node::clock::unix_millis as unix_ms;

/// `HH:MM:SS` of a unix time in milliseconds.
pub fn clock(unix_ms: i64, offset_secs: i64) -> String {
    let s = (unix_ms.div_euclid(1000) + offset_secs).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `MM-DD HH:MM` of a unix time in milliseconds, for times that may be days apart.
pub fn date_time(unix_ms: i64, offset_secs: i64) -> String {
    let secs = (unix_ms.div_euclid(1000) + offset_secs).max(0) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    // `YYYY-MM-DDTHH:MM:SSZ`
    let Some(full) = rfc3339(humantime::format_rfc3339_seconds(t)) else {
        return AFTER_9999.into();
    };
    full.get(5..16)
        .map(|s| s.replacen('T', " ", 1))
        .unwrap_or(full)
}

/// What a time past the year 9999 is shown as (a damaged or forged file, a broken clock).
pub const AFTER_9999: &str = "after 9999";

/// humantime's RFC 3339 text; None for a time past the year 9999, which humantime refuses
/// to write (its `Display` fails, so `to_string()` would panic).
pub fn rfc3339(t: impl std::fmt::Display) -> Option<String> {
    use std::fmt::Write;
    let mut s = String::new();
    write!(s, "{t}").ok().map(|()| s)
}

/// A wall-clock time as `2026-11-23T16:20:01Z`.
pub fn utc_seconds(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms.max(0) as u64);
    rfc3339(humantime::format_rfc3339_seconds(t)).unwrap_or_else(|| AFTER_9999.into())
}

/// The same without separators, `20261123T162001Z`, for file names.
pub fn utc_compact(unix_ms: i64) -> String {
    utc_seconds(unix_ms).replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(clock(3_723_000, 0), "01:02:03");
        assert_eq!(clock(0, -3600), "23:00:00");
        assert_eq!(date_time(1_700_000_000_000, 0), "11-14 22:13");
        assert_eq!(date_time(1_700_000_000_000, 3600), "11-14 23:13");
        assert_eq!(utc_seconds(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    /// Regression (found with the backup_file fuzz target): a time past the year 9999, as
    /// a backup manifest or a node may carry, panicked inside `to_string()`.
    #[test]
    fn times_past_the_year_9999_do_not_panic() {
        for ms in [253_402_300_800_000, 300_000_000_000_000, i64::MAX] {
            assert_eq!(date_time(ms, 0), AFTER_9999);
            assert_eq!(date_time(ms, 3600 * 14), AFTER_9999);
            assert_eq!(utc_seconds(ms), AFTER_9999);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            assert_eq!(rfc3339(humantime::format_rfc3339_seconds(t)), None);
        }
        assert_eq!(date_time(253_402_300_799_000, 0), "12-31 23:59");
        assert_eq!(date_time(i64::MIN, 0), "01-01 00:00");
    }
}
