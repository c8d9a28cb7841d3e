//! Numbers and dates for people: the one thousands separator, byte count
//! and calendar routine that every crate of the workspace (and `xtask`)
//! prints with.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use convnet_tensor::format::{human_bytes, thousands, utc_date, utc_timestamp};
//!
//! assert_eq!(thousands(61_706), "61,706");
//! assert_eq!(human_bytes(1536), "1.5 KiB");
//! let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723); // 2000-02-29 01:02:03
//! assert_eq!(utc_date(t), "2000-02-29");
//! assert_eq!(utc_timestamp(t), "20000229-010203");
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// An integer with thousands separators: `12345` -> `"12,345"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for messages: `512 B`, `9.9 MiB`, `1.2 TiB` (powers of 1024).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days` algorithm; negative
/// counts are days before 1970).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Date and seconds of the day (UTC) of a time; times before 1970 count as
/// 1970-01-01 00:00:00.
fn utc_parts(t: SystemTime) -> ((i64, u32, u32), u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (civil_from_days((secs / 86_400) as i64), secs % 86_400)
}

/// `YYYY-MM-DD` (UTC) of a time.
pub fn utc_date(t: SystemTime) -> String {
    let ((y, m, d), _) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYYMMDD-HHMMSS` (UTC) of a time, e.g. for folder names that sort by
/// time.
pub fn utc_timestamp(t: SystemTime) -> String {
    let ((y, m, d), s) = utc_parts(t);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(61_706), "61,706");
        assert_eq!(thousands(138_357_544), "138,357,544");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn human_bytes_picks_the_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(10 << 20), "10.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn utc_date_and_timestamp() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(utc_date(at(0)), "1970-01-01");
        assert_eq!(utc_timestamp(at(0)), "19700101-000000");
        // 2024-12-31 23:59:59, the last second of a leap year.
        assert_eq!(utc_date(at(1_735_689_599)), "2024-12-31");
        assert_eq!(utc_timestamp(at(1_735_689_599)), "20241231-235959");
        assert_eq!(utc_timestamp(at(1_735_689_600)), "20250101-000000");
        assert_eq!(utc_date(UNIX_EPOCH - Duration::from_secs(10)), "1970-01-01");
    }
}
