//! Durations in plugin configs ("10s", "500ms", "1m", "2h", "2d", "1h 30m"), as whole
//! milliseconds: windows, lateness and retention are all counted in ms by the host.

use crate::Error;

/// Parses a duration with humantime's grammar (units ms, s, m, h, d and their long names;
/// decimals such as "1.5s"; several parts add up). A bare number is refused, except "0": "10" could mean seconds or ms.
/// Refuses durations that are not a whole number of milliseconds ("500us") or overflow u64 ms.
pub fn parse_duration_ms(input: &str) -> Result<u64, Error> {
    let bad = |reason: String| Error::BadDuration {
        input: input.to_string(),
        reason,
    };
    let d = humantime::parse_duration(input.trim()).map_err(|e| bad(e.to_string()))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(bad("not a whole number of milliseconds".into()));
    }
    u64::try_from(d.as_millis()).map_err(|_| bad("too long".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1m"), Ok(60_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_duration_ms("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms(" 1s "), Ok(1_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
    }

    #[test]
    fn refusals() {
        for bad in ["", "10", "ten seconds", "-1s", "1.0005s", "500us", "1x"] {
            let err = parse_duration_ms(bad).unwrap_err();
            assert!(
                matches!(&err, Error::BadDuration { input, .. } if input == bad),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().contains("bad duration"), "{err}");
        }
    }
}
