//! Time as GitLab writes it: `updated_at` in its JSON, HTTP's `Date` header, token expiry dates.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `2026-11-21T00:31:13.123Z`, as GitLab's JSON has it.
pub(crate) fn iso8601(unix: f64) -> String {
    let (y, m, d) = civil(unix.div_euclid(86_400.0) as i64);
    let seconds = unix.rem_euclid(86_400.0);
    let whole = seconds as u64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        whole / 3600,
        whole / 60 % 60,
        whole % 60,
        ((seconds - whole as f64) * 1000.0) as u64
    )
}

/// `Sun, 22 Nov 2026 00:31:13 GMT`, as HTTP's Date header has it.
pub(crate) fn http_date(unix: f64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = unix.div_euclid(86_400.0) as i64;
    let (y, m, d) = civil(days);
    let whole = unix.rem_euclid(86_400.0) as u64;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        whole / 3600,
        whole / 60 % 60,
        whole % 60
    )
}

/// The date `days` from today, `2026-11-21`.
pub(crate) fn date_in_days(days: i64) -> String {
    let (y, m, d) = civil((unix_now() as i64).div_euclid(86_400) + days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The civil date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(day: i64) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_in_days(0).len(), 10);
        assert_eq!(iso8601(20_778.0 * 86_400.0 + 3661.5), "2026-11-21T01:01:01.500Z");
        assert_eq!(http_date(20_778.0 * 86_400.0 + 10.0), "Sat, 21 Nov 2026 00:00:10 GMT");
    }
}
