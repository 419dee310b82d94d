//! Sizes, durations, latencies, rates and percentages as people read them.

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

/// Bytes with a sign, for a size that may have grown or shrunk: `-3.00 MiB`.
pub fn bytes_signed(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", bytes(n.unsigned_abs()))
}

/// Usage of `used` against `limit` (0: no limit) as a percentage.
pub fn percent(used: u64, limit: u64) -> Option<f64> {
    (limit > 0).then(|| used as f64 * 100.0 / limit as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(bytes_signed(512), "512 B");
        assert_eq!(bytes_signed(-3 * 1024 * 1024), "-3.00 MiB");
        assert_eq!(bytes_signed(i64::MIN), "-8388608 TiB");
        assert_eq!(duration_secs(59), "59s");
        assert_eq!(duration_secs(3600), "60m");
        assert_eq!(duration_secs(7300), "2h01m");
        assert_eq!(micros(850), "850µs");
        assert_eq!(micros(12_345), "12.3ms");
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(1, 0), None);
    }
}
