//! PostgreSQL's `COPY` text format, shared by the service database's bulk path and the
//! PostgreSQL warehouse's loads: tab-separated fields, `\N` for NULL, and backslash escapes
//! for backslash, tab, newline and carriage return. Hand-written because it is these four
//! rules, and no crate encodes to it from our value types.

/// Append `text` to `out` as one `COPY` text field.
pub fn push_text(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

/// The NULL field.
pub const NULL: &[u8] = b"\\N";

/// PostgreSQL's spelling of a float: shortest round-trip digits, `NaN`, `Infinity`.
pub fn push_float(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 {
            b"Infinity".as_slice()
        } else {
            b"-Infinity".as_slice()
        });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_four_characters_and_spells_floats() {
        let mut out = Vec::new();
        push_text(&mut out, "a\tb\\c\nd\re 醤油");
        assert_eq!(out, "a\\tb\\\\c\\nd\\re 醤油".as_bytes());
        for (v, want) in [
            (0.1, "0.1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-2.0, "-2"),
        ] {
            let mut out = Vec::new();
            push_float(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
