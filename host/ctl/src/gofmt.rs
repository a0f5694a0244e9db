//! Go's formatting and parsing conventions that etcdctl's input and output inherit: quoted
//! string literals (`%q`), `strconv.ParseInt` and its error text, `time.Duration` parsing and
//! printing, go-humanize's byte sizes, and encoding/json's string escaping.

use std::fmt::Write as _;
use std::time::Duration;

/// A malformed Go string literal (strconv.ErrSyntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSyntax;

/// Decodes a Go string literal, double-quoted (with escapes) or back-quoted (raw), into its
/// bytes, as strconv.Unquote does. Escapes may produce any byte, not only UTF-8.
pub fn unquote(lit: &[u8]) -> Result<Vec<u8>, InvalidSyntax> {
    match lit {
        [b'`', body @ .., b'`'] if lit.len() >= 2 => {
            if body.contains(&b'`') {
                return Err(InvalidSyntax);
            }
            Ok(body.iter().copied().filter(|&b| b != b'\r').collect())
        }
        [b'"', body @ .., b'"'] if lit.len() >= 2 => unescape(body),
        _ => Err(InvalidSyntax),
    }
}

fn unescape(body: &[u8]) -> Result<Vec<u8>, InvalidSyntax> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        match b {
            b'"' | b'\n' => return Err(InvalidSyntax),
            b'\\' => {
                let esc = *body.get(i).ok_or(InvalidSyntax)?;
                i += 1;
                match esc {
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(0x0b),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'x' => {
                        out.push(hex_value(body.get(i..i + 2))? as u8);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let len = if esc == b'u' { 4 } else { 8 };
                        let code = hex_value(body.get(i..i + len))?;
                        i += len;
                        let c = char::from_u32(code).ok_or(InvalidSyntax)?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    b'0'..=b'7' => {
                        let digits = body.get(i - 1..i + 2).ok_or(InvalidSyntax)?;
                        let mut v: u32 = 0;
                        for &d in digits {
                            if !(b'0'..=b'7').contains(&d) {
                                return Err(InvalidSyntax);
                            }
                            v = v * 8 + u32::from(d - b'0');
                        }
                        out.push(u8::try_from(v).map_err(|_| InvalidSyntax)?);
                        i += 2;
                    }
                    _ => return Err(InvalidSyntax),
                }
            }
            _ => out.push(b),
        }
    }
    Ok(out)
}

fn hex_value(digits: Option<&[u8]>) -> Result<u32, InvalidSyntax> {
    let digits = digits.ok_or(InvalidSyntax)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16).ok_or(InvalidSyntax)?;
        Ok(acc * 16 + v)
    })
}

/// Quotes bytes as Go's `%q` / strconv.Quote does: printable UTF-8 kept, the usual escapes,
/// other control characters as `\xNN` or `\uNNNN`, invalid UTF-8 bytes as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\u{07}' => out.push_str("\\a"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{0b}' => out.push_str("\\v"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// strconv.ParseInt(s, base, 64), with Go's error text
/// (`strconv.ParseInt: parsing "x": invalid syntax`).
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let err = |what: &str| format!("strconv.ParseInt: parsing {}: {what}", quote(s.as_bytes()));
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(err("invalid syntax"));
    }
    let magnitude = u128::from_str_radix(digits, base).map_err(|_| err("value out of range"))?;
    let value = if negative {
        -i128::try_from(magnitude).map_err(|_| err("value out of range"))?
    } else {
        i128::try_from(magnitude).map_err(|_| err("value out of range"))?
    };
    i64::try_from(value).map_err(|_| err("value out of range"))
}

/// Parses a Go duration such as `2s`, `500ms`, `1m30s` or `1.5h` (time.ParseDuration), refusing
/// negative ones.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", quote(s.as_bytes()));
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("negative duration {}", quote(s.as_bytes())));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote(s.as_bytes())
                ));
            }
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(other.as_bytes()),
                    quote(s.as_bytes())
                ));
            }
        };
        nanos += value * scale;
        rest = tail;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Formats a duration as Go's time.Duration.String: `850ns`, `1.063134ms`, `941.264µs`,
/// `5.001576059s`, `1m0s`, `1h2m3s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", with_fraction(nanos / 1_000, nanos % 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!(
            "{}ms",
            with_fraction(nanos / 1_000_000, nanos % 1_000_000, 6)
        );
    }
    let total_secs = nanos / 1_000_000_000;
    let seconds = with_fraction(total_secs % 60, nanos % 1_000_000_000, 9);
    let minutes = (total_secs / 60) % 60;
    let hours = total_secs / 3600;
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

fn with_fraction(whole: u128, fraction: u128, digits: usize) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// A byte count in SI units as go-humanize's Bytes: `9 B`, `20 kB`, `1.2 MB`, `67 MB`.
pub fn humanize_bytes(n: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let value = n as f64;
    let exp = (value.ln() / 1000f64.ln()).floor();
    let suffix = SIZES.get(exp as usize).copied().unwrap_or("EB");
    let scaled = (value / 1000f64.powf(exp) * 10.0 + 0.5).floor() / 10.0;
    if scaled < 10.0 {
        format!("{scaled:.1} {suffix}")
    } else {
        format!("{scaled:.0} {suffix}")
    }
}

/// A JSON string literal escaped as Go's encoding/json escapes it (HTML-safe: `<`, `>` and `&`
/// as `\u003c`..., U+2028 and U+2029 escaped too).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_handles_go_escapes() {
        assert_eq!(
            unquote(br#""a \"b\" \x41 \u00e9 \n""#),
            Ok(b"a \"b\" A \xc3\xa9 \n".to_vec())
        );
        assert_eq!(unquote(br#""\101\t\\""#), Ok(b"A\t\\".to_vec()));
        assert_eq!(unquote(br#""\xff""#), Ok(vec![0xff]));
        assert_eq!(unquote(b"`raw \\n`"), Ok(b"raw \\n".to_vec()));
        assert_eq!(unquote(br#""""#), Ok(Vec::new()));
    }

    #[test]
    fn unquote_refuses_what_go_refuses() {
        for bad in [
            &br#""\'""#[..],
            br#""\q""#,
            br#""\x4""#,
            br#""\400""#,
            br#""\ud800""#,
            br#""abc"#,
            b"abc",
            br#"""#,
            br#""a"b""#,
        ] {
            assert_eq!(
                unquote(bad),
                Err(InvalidSyntax),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote(b"k1"), r#""k1""#);
        assert_eq!(quote(b""), r#""""#);
        assert_eq!(
            quote(b"a\"b\\c\n\x00\xff\xc3\xa9"),
            r#""a\"b\\c\n\x00\xffé""#
        );
    }

    #[test]
    fn parse_int_matches_strconv() {
        assert_eq!(parse_int("42", 10), Ok(42));
        assert_eq!(parse_int("-7", 10), Ok(-7));
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(parse_int("7fffffffffffffff", 16), Ok(i64::MAX));
        assert_eq!(parse_int("-8000000000000000", 16), Ok(i64::MIN));
        assert_eq!(
            parse_int("x", 10),
            Err(r#"strconv.ParseInt: parsing "x": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("", 10),
            Err(r#"strconv.ParseInt: parsing "": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("0x10", 16),
            Err(r#"strconv.ParseInt: parsing "0x10": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("99999999999999999999", 10),
            Err(r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#.into())
        );
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err_and(|e| e.contains("missing unit")));
        assert!(parse_duration("5x").is_err_and(|e| e.contains("unknown unit")));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1..2s").is_err());
    }

    #[test]
    fn durations_print_like_go() {
        let ns = Duration::from_nanos;
        assert_eq!(format_duration(ns(0)), "0s");
        assert_eq!(format_duration(ns(850)), "850ns");
        assert_eq!(format_duration(ns(941_264)), "941.264µs");
        assert_eq!(format_duration(ns(1_000)), "1µs");
        assert_eq!(format_duration(ns(1_063_134)), "1.063134ms");
        assert_eq!(format_duration(ns(5_001_576_059)), "5.001576059s");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format_duration(Duration::from_millis(61_500)), "1m1.5s");
    }

    #[test]
    fn bytes_humanize_like_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(999), "999 B");
        assert_eq!(humanize_bytes(1000), "1.0 kB");
        assert_eq!(humanize_bytes(20_480), "20 kB");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(67_108_864), "67 MB");
    }

    #[test]
    fn json_strings_escape_like_encoding_json() {
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string("<&>"), r#""\u003c\u0026\u003e""#);
        assert_eq!(json_string("\u{1}\n"), r#""\u0001\n""#);
        assert_eq!(json_string("µs"), "\"µs\"");
    }
}
