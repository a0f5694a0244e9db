//! Small JSON writers for plugin outputs, so that a plugin writing a few numbers and names
//! needs no serializer in its component.

use std::fmt::Write;

/// A number as JSON: integral values without a decimal point (`6`, not `6.0`), others in
/// Rust's shortest round-trip form (`0.1`, `2.5`, `1e-7`, `1e20`), NaN and infinities as
/// `null` (JSON has no spelling for them).
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "null".to_string();
    }
    // Below 1e16 an integral f64 converts to i64 exactly, and prints as plain digits; from
    // there on `{:?}` uses an exponent ("1e16"), which is shorter and still has no ".0".
    if v.fract() == 0.0 && v.abs() < 1e16 {
        return (v as i64).to_string();
    }
    format!("{v:?}")
}

/// A string as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
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
    fn numbers() {
        assert_eq!(number(6.0), "6");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number(-1.25), "-1.25");
        assert_eq!(number(123_456_789_012_345.0), "123456789012345");
        assert_eq!(number(9_007_199_254_740_993.0), "9007199254740992");
        assert_eq!(number(1e16), "1e16");
        assert_eq!(number(1.2345e20), "1.2345e20");
        assert_eq!(number(-1e300), "-1e300");
        assert_eq!(number(1e-7), "1e-7");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(f64::INFINITY), "null");
        assert_eq!(number(f64::NEG_INFINITY), "null");
    }

    #[test]
    fn strings() {
        assert_eq!(string("n1"), r#""n1""#);
        assert_eq!(string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(string("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
        assert_eq!(string("\u{1}x\u{1f}"), r#""\u0001x\u001f""#);
        assert_eq!(string("ünïcode ✓"), "\"ünïcode ✓\"");
    }
}
