//! The row-level difference between a label set's table and its source.

use std::collections::HashMap;

use serde::Serialize;

use crate::cells::LabelValue;
use crate::definition::LabelSet;
use crate::validate::{KeyPart, Row};

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

fn key_of(values: &[LabelValue], keys: &[usize]) -> Vec<KeyPart> {
    keys.iter().map(|&k| KeyPart::of(&values[k])).collect()
}

/// Same value, with floats compared by bit pattern so that NaN equals itself.
fn same(a: &LabelValue, b: &LabelValue) -> bool {
    match (a, b) {
        (LabelValue::Float(x), LabelValue::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

/// Compare the table's rows (`current`) with the source's valid rows. Added and changed rows
/// come in source order, removed rows in key order.
pub fn diff(set: &LabelSet, current: Vec<Vec<LabelValue>>, source: &[Row]) -> Diff {
    let keys = set.key_indices();
    let mut table: HashMap<Vec<KeyPart>, Vec<LabelValue>> = current
        .into_iter()
        .map(|values| (key_of(&values, &keys), values))
        .collect();
    let mut out = Diff::default();
    for row in source {
        let key = keys.iter().map(|&k| row.values[k].clone()).collect();
        match table.remove(&key_of(&row.values, &keys)) {
            None => out.added.push(Added {
                row: row.line,
                key,
                values: row.values.clone(),
            }),
            Some(old) => {
                let fields: Vec<FieldChange> = set
                    .columns
                    .iter()
                    .zip(old.iter().zip(&row.values))
                    .filter(|(_, (o, n))| !same(o, n))
                    .map(|(c, (o, n))| FieldChange {
                        column: c.name.clone(),
                        old: o.clone(),
                        new: n.clone(),
                    })
                    .collect();
                if fields.is_empty() {
                    out.unchanged += 1;
                } else {
                    out.changed.push(Changed {
                        row: row.line,
                        key,
                        fields,
                        values: row.values.clone(),
                    });
                }
            }
        }
    }
    let mut removed: Vec<(Vec<KeyPart>, Vec<LabelValue>)> = table
        .into_iter()
        .map(|(k, values)| (k, keys.iter().map(|&i| values[i].clone()).collect()))
        .collect();
    removed.sort_by(|a, b| a.0.cmp(&b.0));
    out.removed = removed.into_iter().map(|(_, k)| k).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use LabelValue::{Int, Null, Text};

    fn set() -> LabelSet {
        let v: toml::Table = toml::from_str(
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
        )
        .unwrap();
        LabelSet::parse(
            "s",
            toml::Value::Table(v),
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
        let d = diff(&set(), current, &source);
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
    fn equal_sides_give_an_empty_diff() {
        let rows = vec![vec![Int(1), Text("a".into()), LabelValue::Float(f64::NAN)]];
        let source = [row(2, rows[0].clone())];
        let d = diff(&set(), rows, &source);
        assert!(d.is_empty());
        assert_eq!(d.unchanged, 1);
    }
}
