//! `?` placeholders filled with quoted values, as Queuery's `values[]` does.
//!
//! A `?` inside a string literal (`'…'`, `E'…'`), a quoted identifier (`"…"`), a
//! dollar-quoted string (`$tag$…$tag$`) or a comment (`-- …`, `/* … */`, nested on
//! PostgreSQL) is text, not a placeholder. Values become string literals through
//! [`quote_literal`], the one function that quotes them; the filled statement then goes
//! through the read-only guard like any other.

use kondate_core::WarehouseKind;

/// The number of placeholders and values differ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the query has {placeholders} `?` placeholder(s) but {values} value(s) were given; send one \
     `values[]` per `?`"
)]
pub struct PlaceholderMismatch {
    pub placeholders: usize,
    pub values: usize,
}

/// Quote `value` as a string literal for `kind`.
///
/// PostgreSQL: an `E'…'` literal with `\` and `'` escaped, which means the same whatever
/// `standard_conforming_strings` is. Redshift: `'…'` with `'` doubled and `\` doubled (it
/// treats `\` as an escape). Embedded (DataFusion): `'…'` with `'` doubled.
pub fn quote_literal(value: &str, kind: WarehouseKind) -> String {
    match kind {
        WarehouseKind::Postgres => {
            format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        WarehouseKind::Redshift => {
            format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
        }
        WarehouseKind::Embedded => format!("'{}'", value.replace('\'', "''")),
    }
}

/// Byte offsets of every placeholder `?` in `sql`.
pub fn placeholder_positions(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'?' => {
                out.push(i);
                i += 1;
            }
            b'\'' => {
                // E'…' strings honour backslash escapes.
                let escapes = i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            b'$' => {
                // $tag$ … $tag$ where tag is empty or an identifier not starting with a digit.
                let start = i;
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80)
                {
                    j += 1;
                }
                let is_tag = j < b.len()
                    && b[j] == b'$'
                    && !b.get(start + 1).is_some_and(|c| c.is_ascii_digit());
                if is_tag {
                    let tag = &sql[start..=j];
                    match sql[j + 1..].find(tag) {
                        Some(end) => i = j + 1 + end + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Replace each placeholder with the next value, quoted for `kind`.
pub fn bind(
    sql: &str,
    values: &[String],
    kind: WarehouseKind,
) -> Result<String, PlaceholderMismatch> {
    let positions = placeholder_positions(sql);
    if positions.len() != values.len() {
        return Err(PlaceholderMismatch {
            placeholders: positions.len(),
            values: values.len(),
        });
    }
    let mut out =
        String::with_capacity(sql.len() + values.iter().map(|v| v.len() + 4).sum::<usize>());
    let mut last = 0;
    for (pos, value) in positions.iter().zip(values) {
        out.push_str(&sql[last..*pos]);
        out.push_str(&quote_literal(value, kind));
        last = pos + 1;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: WarehouseKind = WarehouseKind::Postgres;
    const EMB: WarehouseKind = WarehouseKind::Embedded;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placeholders_outside_literals_and_comments_only() {
        let cases: &[(&str, usize)] = &[
            ("select ?", 1),
            ("select ?, ?", 2),
            ("select '?'", 0),
            ("select 'it''s ?' , ?", 1),
            ("select E'\\' ?' , ?", 1),
            ("select \"col?\" from t where a = ?", 1),
            ("select 1 -- why?\n, ?", 1),
            ("select /* ? /* nested ? */ ? */ ?", 1),
            ("select $$ ? $$, $tag$ it's ? $tag$, ?", 1),
            ("select $1, ?", 1),
            ("select 'unterminated ?", 0),
        ];
        for (sql, n) in cases {
            assert_eq!(placeholder_positions(sql).len(), *n, "{sql}");
        }
    }

    #[test]
    fn values_are_quoted_per_dialect() {
        assert_eq!(
            bind("select ?", &v(&["it's"]), EMB).unwrap(),
            "select 'it''s'"
        );
        assert_eq!(
            bind("select ?", &v(&["a\\'b"]), PG).unwrap(),
            "select E'a\\\\\\'b'"
        );
        assert_eq!(
            bind("select ?", &v(&["x\\"]), WarehouseKind::Redshift).unwrap(),
            "select 'x\\\\'"
        );
        assert_eq!(
            bind(
                "select * from t where a = ? and b = '?' and c = ?",
                &v(&["1", "醤油"]),
                EMB
            )
            .unwrap(),
            "select * from t where a = '1' and b = '?' and c = '醤油'"
        );
    }

    #[test]
    fn injection_attempts_stay_inside_the_literal() {
        let evil = "'; DROP TABLE t; --";
        let sql = bind("select * from t where a = ?", &v(&[evil]), PG).unwrap();
        let checked = crate::guard::check_read_only(&sql, PG).expect("still one SELECT");
        assert!(checked.sql.contains("DROP TABLE"), "kept as text: {sql}");
        let sql = bind(
            "select * from t where a = ?",
            &v(&["\\'; DROP TABLE t; --"]),
            PG,
        )
        .unwrap();
        crate::guard::check_read_only(&sql, PG).expect("backslash tricks stay inside too");
    }

    #[test]
    fn count_mismatch_is_explained() {
        let err = bind("select ?, ?", &v(&["1"]), EMB).unwrap_err();
        assert_eq!((err.placeholders, err.values), (2, 1));
        assert!(err.to_string().contains("values[]"));
    }
}
