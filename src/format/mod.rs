//! Text for numbers, sizes and times as the panes show them. Times are wall-clock times
//! shifted by a UTC offset fixed at start, so drawing never reads the clock (and snapshot
//! tests use offset 0).

pub mod table;

pub use table::{cut, opt};

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

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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

/// Bytes as B / KiB / MiB / GiB / TiB with three significant digits.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// A duration in the largest fitting unit: `42s`, `17m`, `3h12m`, `5d`.
pub fn duration_secs(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Microseconds as `850µs`, `12.3ms`, `1.20s`.
pub fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 100_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// A rate with at most one decimal.
pub fn rate(v: f64) -> String {
    let v = v + 0.0; // an empty f64 sum is -0.0
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
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
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(duration_secs(59), "59s");
        assert_eq!(duration_secs(3600), "60m");
        assert_eq!(duration_secs(7300), "2h01m");
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(12_345), "12.3ms");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }

    /// Regression (found with the backup_file fuzz target): a time past the year 9999, as
    /// a backup manifest or a node may carry, panicked inside `to_string()`.
    #[test]
    fn times_past_the_year_9999_do_not_panic() {
        for ms in [253_402_300_800_000, 300_000_000_000_000, i64::MAX] {
            assert_eq!(date_time(ms, 0), AFTER_9999);
            assert_eq!(date_time(ms, 3600 * 14), AFTER_9999);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            assert_eq!(rfc3339(humantime::format_rfc3339_seconds(t)), None);
        }
        assert_eq!(date_time(253_402_300_799_000, 0), "12-31 23:59");
        assert_eq!(date_time(i64::MIN, 0), "01-01 00:00");
    }
}
