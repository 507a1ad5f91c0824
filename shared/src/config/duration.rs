//! Durations as written in dbsafe.toml: `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1m30s"`, `"0"`.

use std::time::Duration;

/// Parses a duration: whole numbers each followed by a unit (`ms`, `s`, `m`, `h`), like
/// `"250ms"`, `"5s"`, `"2m"`, `"1h"` or `"1m30s"`; `"0"` alone means zero. The error names
/// the bad value and shows the expected form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_parts(text).map_err(|why| {
        format!(
            "invalid duration \"{text}\": {why}; write a whole number with a unit (ms, s, m \
             or h), like \"250ms\", \"5s\", \"2m\" or \"1m30s\", or \"0\""
        )
    })
}

/// Adds up the `NUMBER UNIT` parts of `text`; the error says why it is not a duration.
fn parse_parts(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("it is empty".to_owned());
    }
    let too_large = || "it is too large".to_owned();
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at \"{rest}\""));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(format!("the number {number} has no unit")),
            _ if unit.starts_with('.') => {
                return Err(
                    "fractions are not supported (write \"1500ms\" rather than \"1.5s\")"
                        .to_owned(),
                );
            }
            _ => return Err(format!("unknown unit \"{unit}\"")),
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(too_large)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_durations_naming_the_value() {
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "1.5s",
            "-5s",
            "5 s",
            "5S",
            " 5s",
            "99999999999999999999h",
        ] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains(&format!("\"{bad}\"")), "{bad:?} -> {error}");
        }
        assert!(parse_duration("1.5s").unwrap_err().contains("fractions"));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .contains("unknown unit \"x\"")
        );
    }
}
