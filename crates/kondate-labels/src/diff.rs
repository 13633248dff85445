//! The row-level difference between a label set's table and its source.

use serde::Serialize;

use crate::cells::LabelValue;
use crate::definition::LabelSet;
use std::sync::Arc;

use crate::current::Current;
use crate::key::cmp_rows;
use crate::validate::Row;

/// One field that changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub column: String,
    pub old: LabelValue,
    pub new: LabelValue,
}

/// A row whose key exists on both sides with different values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    /// Sheet row number in the source.
    pub row: usize,
    pub key: Vec<LabelValue>,
    pub fields: Vec<FieldChange>,
    #[serde(skip)]
    pub values: Vec<LabelValue>,
}

/// A row only in the source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Added {
    pub row: usize,
    pub key: Vec<LabelValue>,
    #[serde(skip)]
    pub values: Vec<LabelValue>,
}

/// What turns the table into the source.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub added: Vec<Added>,
    pub changed: Vec<Changed>,
    /// Keys of rows only in the table.
    pub removed: Vec<Vec<LabelValue>>,
    pub unchanged: usize,
}

impl Diff {
    /// True when the table already equals the source.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Compare what the table holds (`current`) with the source's valid rows. Added and changed
/// rows come in source order, removed rows in key order.
pub fn diff(set: &LabelSet, current: Current, source: &[Row]) -> Diff {
    let keys = set.key_indices();
    let current = Arc::new(current);
    let index = current.index(&keys);
    let key_of = |values: &[LabelValue]| keys.iter().map(|&k| values[k].clone()).collect();
    let mut matched = vec![false; current.len()];
    let mut out = Diff::default();
    let width = set.columns.len();
    for row in source {
        let Some(i) = index.find(&row.values) else {
            out.added.push(Added {
                row: row.line,
                key: key_of(&row.values),
                values: row.values.clone(),
            });
            continue;
        };
        matched[i] = true;
        if (0..width).all(|c| current.same(i, c, &row.values[c])) {
            out.unchanged += 1;
            continue;
        }
        let fields: Vec<FieldChange> = set
            .columns
            .iter()
            .enumerate()
            .filter(|(c, _)| !current.same(i, *c, &row.values[*c]))
            .map(|(c, col)| FieldChange {
                column: col.name.clone(),
                old: current.value(i, c),
                new: row.values[c].clone(),
            })
            .collect();
        out.changed.push(Changed {
            row: row.line,
            key: key_of(&row.values),
            fields,
            values: row.values.clone(),
        });
    }
    let mut removed: Vec<Vec<LabelValue>> = matched
        .iter()
        .enumerate()
        .filter(|(_, m)| !**m)
        .map(|(i, _)| (0..width).map(|c| current.value(i, c)).collect())
        .collect();
    removed.sort_unstable_by(|a, b| cmp_rows(a, b, &keys));
    out.removed = removed.into_iter().map(|r| key_of(&r)).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use LabelValue::{Int, Null, Text};

    fn set() -> LabelSet {
        LabelSet::from_toml(
            "s",
            r#"
            table = "t"
            key = ["id"]
            [source]
            type = "csv"
            path = "x.csv"
            [columns]
            id = { type = "integer" }
            category = { type = "string" }
            score = { type = "float" }
        "#,
            "s.toml",
            std::path::Path::new("/"),
        )
        .unwrap()
    }

    fn row(line: usize, values: Vec<LabelValue>) -> Row {
        Row { line, values }
    }

    #[test]
    fn added_changed_removed_and_unchanged_rows_are_told_apart() {
        let current = vec![
            vec![Int(1), Text("主菜".into()), Null],
            vec![Int(2), Text("副菜".into()), LabelValue::Float(0.5)],
            vec![Int(3), Text("汁物".into()), Null],
            vec![Int(4), Text("主食".into()), Null],
        ];
        let source = [
            row(2, vec![Int(1), Text("主菜".into()), Null]),
            row(3, vec![Int(2), Text("主菜".into()), LabelValue::Float(0.5)]),
            row(4, vec![Int(5), Text("デザート".into()), Null]),
            row(5, vec![Int(3), Text("汁物".into()), LabelValue::Float(1.0)]),
        ];
        let d = diff(&set(), Current::Rows(current), &source);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].row, 4);
        assert_eq!(d.added[0].key, [Int(5)]);
        assert_eq!(d.changed.len(), 2);
        assert_eq!(d.changed[0].row, 3);
        assert_eq!(
            d.changed[0].fields,
            [FieldChange {
                column: "category".into(),
                old: Text("副菜".into()),
                new: Text("主菜".into())
            }]
        );
        assert_eq!(d.changed[1].fields[0].column, "score");
        assert_eq!(d.removed, [vec![Int(4)]]);
        assert!(!d.is_empty());
    }

    #[test]
    fn a_snapshots_columns_diff_like_the_rows_they_hold() {
        use crate::current::Columns;
        let set = LabelSet::from_toml(
            "s",
            r#"
            table = "t"
            key = ["day", "name"]
            [source]
            type = "csv"
            path = "x.csv"
            [columns]
            day = { type = "date" }
            name = { type = "string" }
            score = { type = "float" }
            ok = { type = "boolean" }
            n = { type = "integer" }
        "#,
            "s.toml",
            std::path::Path::new("/"),
        )
        .unwrap();
        let date = |d: u32| LabelValue::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, d).unwrap());
        let row = |d, name: &str, score, ok, n| vec![date(d), Text(name.into()), score, ok, n];
        let table = vec![
            row(
                1,
                "醤油",
                LabelValue::Float(0.5),
                LabelValue::Bool(true),
                Int(1),
            ),
            row(1, "みりん", Null, LabelValue::Bool(false), Null),
            row(2, "醤油", LabelValue::Float(f64::NAN), Null, Int(3)),
            row(
                3,
                "",
                LabelValue::Float(-0.0),
                LabelValue::Bool(true),
                Int(4),
            ),
        ];
        let source = [
            Row {
                line: 2,
                values: row(
                    1,
                    "醤油",
                    LabelValue::Float(0.5),
                    LabelValue::Bool(true),
                    Int(1),
                ),
            },
            Row {
                line: 3,
                values: row(
                    1,
                    "みりん",
                    LabelValue::Float(1.0),
                    LabelValue::Bool(false),
                    Null,
                ),
            },
            Row {
                line: 4,
                values: row(2, "醤油", LabelValue::Float(f64::NAN), Null, Int(3)),
            },
            Row {
                line: 5,
                values: row(4, "味噌", Null, Null, Null),
            },
        ];
        let refs: Vec<&[LabelValue]> = table.iter().map(Vec::as_slice).collect();
        let batch = crate::snapshot::to_batch(&set, &refs).unwrap();
        let cols = Columns::from_batches(&set, &[batch]).unwrap();
        let by_rows = diff(&set, Current::Rows(table.clone()), &source);
        let by_cols = diff(&set, Current::Columns(cols), &source);
        assert_eq!(by_rows, by_cols);
        assert_eq!(
            (
                by_rows.added.len(),
                by_rows.changed.len(),
                by_rows.removed.len()
            ),
            (1, 1, 1)
        );
        assert_eq!(by_rows.unchanged, 2);
        assert_eq!(by_rows.changed[0].fields[0].old, Null);
        assert_eq!(by_rows.removed, [vec![date(3), Text("".into())]]);
    }

    #[test]
    fn equal_sides_give_an_empty_diff() {
        let rows = vec![vec![Int(1), Text("a".into()), LabelValue::Float(f64::NAN)]];
        let source = [row(2, rows[0].clone())];
        let d = diff(&set(), Current::Rows(rows), &source);
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 1);
    }
}
