//! GitLab's timestamps, read without a date library: ISO 8601 in JSON (`2026-11-21T00:31:13.123Z`)
//! and the HTTP `Date` header (`Sun, 22 Nov 2026 00:31:13 GMT`). Both are GitLab's clock, so
//! comparing them never depends on the runner's clock being right.

/// Seconds since the Unix epoch of an ISO 8601 UTC time (`Z` or `+00:00`; other offsets applied).
pub fn parse_iso8601(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once('T')?;
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(at) => (&time[..at], &time[at..]),
        None => (time, "Z"),
    };
    let mut hms = clock.splitn(3, ':');
    let (hours, minutes) = (hms.next()?.parse::<i64>().ok()?, hms.next()?.parse::<i64>().ok()?);
    let seconds: f64 = hms.next().unwrap_or("0").parse().ok()?;
    let offset_seconds = match offset {
        "Z" | "" => 0,
        signed => {
            let sign = if signed.starts_with('-') { -1 } else { 1 };
            let (h, m) = signed[1..].split_once(':').unwrap_or((&signed[1..], "0"));
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let whole = days_from_civil(year, month, day) * 86_400 + hours * 3600 + minutes * 60 - offset_seconds;
    Some(whole as f64 + seconds)
}

/// Seconds since the Unix epoch of an HTTP IMF-fixdate (RFC 9110), the form GitLab sends.
pub fn parse_http_date(text: &str) -> Option<f64> {
    // "Sun, 22 Nov 2026 00:31:13 GMT"
    let mut words = text.split_whitespace().skip(1);
    let day: i64 = words.next()?.parse().ok()?;
    let month = match words.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = words.next()?.parse().ok()?;
    parse_iso8601(&format!("{year:04}-{month:02}-{day:02}T{}Z", words.next()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitlabs_timestamps() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
        assert_eq!(parse_iso8601("1970-01-01T00:00:01.500Z"), Some(1.5));
        assert_eq!(parse_iso8601("2026-11-21T00:00:00.000Z"), Some(20_778.0 * 86_400.0));
        assert_eq!(parse_iso8601("2026-11-21T02:00:00+02:00"), Some(20_778.0 * 86_400.0));
        assert_eq!(parse_http_date("Sat, 21 Nov 2026 00:00:10 GMT"), Some(20_778.0 * 86_400.0 + 10.0));
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_http_date("Sat, 21 Foo 2026 00:00:10 GMT"), None);
    }
}
