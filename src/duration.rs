//! Durations as people write them in CI variables and flags (`90s`, `5m`, `1h30m`, `250ms`; a plain
//! number means seconds), and as herald prints them back (`12.3s`, `4m05s`, `1h02m`).

use std::time::Duration;

/// Text that is not a duration; its `Display` is the one line that says so, with the forms that
/// are. Typed so that every caller (clap's flags, `context`'s variables, the baseline's figures,
/// which treat it as no figure) handles the one failure there is, and none parses text back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{text}': use e.g. 90s, 5m, 1h30m (a plain number means seconds)")]
pub struct InvalidDuration {
    text: String,
}

/// Parses `90`, `90s`, `5m`, `1h30m`, `1h 30m`, `1.5s`, `250ms`. Units: `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration { text: text.to_owned() };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = compact.parse::<f64>() {
        return seconds(secs).ok_or_else(invalid);
    }

    let mut total = Duration::ZERO;
    let mut rest = compact.as_str();
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len =
            rest[number_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - number_len);
        let (number, unit) = (&rest[..number_len], &rest[number_len..number_len + unit_len]);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            _ => return Err(invalid()),
        };
        total = total.checked_add(seconds(value * scale).ok_or_else(invalid)?).ok_or_else(invalid)?;
        rest = &rest[number_len + unit_len..];
    }
    Ok(total)
}

fn seconds(value: f64) -> Option<Duration> {
    // A century is far beyond any CI job; the cap keeps the arithmetic in deadlines overflow-free.
    (value.is_finite() && (0.0..=3.2e9).contains(&value)).then(|| Duration::from_secs_f64(value))
}

/// Short, human form: `0.4s`, `12.3s`, `4m05s`, `1h02m`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        // One decimal, truncated, so "59.96s" never prints as "60.0s".
        let tenths = d.as_millis() / 100;
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// A setting as the user could have written it, without losing anything (`--timeout 250ms`, not
/// `0.2s`): the short form when it reads back as the same duration, else exact to the millisecond
/// (`250ms`, `1.25s`, `1m30.5s`).
pub fn format_setting(d: Duration) -> String {
    let short = format_duration(d);
    if parse_duration(&short) == Ok(d) {
        return short;
    }
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (hours, minutes) = (millis / 3_600_000, millis / 60_000 % 60);
    let seconds = format!("{}.{:03}", millis / 1000 % 60, millis % 1000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes:02}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        for bad in ["", "s", "5x", "-3", "1h-5m", "inf", "NaN", "99999999999999h", "5m30"] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("invalid duration '{bad}'")) && err.contains("use e.g. 90s"), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_read_back_as_written() {
        for (written, shown) in [
            ("250ms", "250ms"),
            ("1.25s", "1.25s"),
            ("90.5", "1m30.5s"),
            ("1h0m0.1s", "1h00m0.1s"),
            ("4s", "4.0s"),
            ("5m", "5m00s"),
            ("1h30m", "1h30m"),
        ] {
            let limit = parse_duration(written).unwrap();
            assert_eq!(format_setting(limit), shown, "{written}");
            assert_eq!(parse_duration(&format_setting(limit)), Ok(limit), "{written} reads back");
        }
    }

    #[test]
    fn formats_short() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(format_duration(Duration::from_millis(59_960)), "59.9s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }
}
