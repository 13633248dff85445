//! From a grid of cells to typed rows: find the header, map columns, type every cell, and
//! report each invalid row with its sheet row number, column and value.

use std::collections::HashMap;

use serde::Serialize;

use crate::LabelsError;
use crate::cells::{self, Cell, LabelValue};
use crate::definition::LabelSet;
use crate::key::{FastMap, KeyRef};
use crate::source::{Grid, column_letters};

/// A row that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Sheet row number (1-based).
    pub line: usize,
    /// One value per definition column, in definition order.
    pub values: Vec<LabelValue>,
}

/// One problem with one cell (or one row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invalid {
    /// Sheet row number (1-based).
    pub row: usize,
    /// The definition's column name.
    pub column: String,
    /// The cell in A1 notation, e.g. `C5`.
    pub cell: String,
    /// The value as the sheet shows it.
    pub value: String,
    pub problem: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {} ({}), column {}: `{}` {}",
            self.row, self.cell, self.column, self.value, self.problem
        )
    }
}

/// The outcome of validating a grid.
#[derive(Debug, Clone, Default)]
pub struct Validated {
    pub rows: Vec<Row>,
    pub invalid: Vec<Invalid>,
    /// Rows (sheet numbers) left out because they had a problem.
    pub invalid_rows: Vec<usize>,
    /// Rows with no value at all (blank lines, empty trailing rows).
    pub empty_rows: usize,
    /// Sheet columns with values but no header (e.g. under a merged header cell): ignored.
    pub unnamed_columns: Vec<String>,
}

/// Validate `grid` against `set`'s definition.
pub fn validate(set: &LabelSet, grid: &Grid) -> Result<Validated, LabelsError> {
    let header_idx = set.source.header_row() - 1;
    let header_line = grid.first_row + header_idx;
    let Some(header) = grid.rows.get(header_idx) else {
        return Err(LabelsError::Source {
            origin: grid.origin.clone(),
            message: format!(
                "has no header row {header_line}: it has {} rows",
                grid.rows.len()
            ),
        });
    };
    // Header text → sheet column.
    let mut by_header: HashMap<String, usize> = HashMap::new();
    for (i, cell) in header.iter().enumerate() {
        let text = cells::trim(&cell.display()).to_string();
        if text.is_empty() {
            continue;
        }
        if let Some(prev) = by_header.insert(text.clone(), i) {
            return Err(LabelsError::Source {
                origin: grid.origin.clone(),
                message: format!(
                    "header `{text}` appears twice in row {header_line} (columns {} and {}); \
                     rename one",
                    column_letters(grid.first_col + prev),
                    column_letters(grid.first_col + i)
                ),
            });
        }
    }
    let mut positions = Vec::with_capacity(set.columns.len());
    let mut missing = Vec::new();
    for c in &set.columns {
        match by_header.get(c.header()) {
            Some(i) => positions.push(*i),
            None => missing.push(c.header().to_string()),
        }
    }
    if !missing.is_empty() {
        let mut found: Vec<&String> = by_header.keys().collect();
        found.sort_by_key(|h| by_header[*h]);
        return Err(LabelsError::Source {
            origin: grid.origin.clone(),
            message: format!(
                "row {header_line} has no header {}; the headers are {}. Rename the sheet's \
                 header, or set `header = \"…\"` on the column, or `source.header_row` if the \
                 headers are on another row",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                found
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let mut out = Validated::default();
    let mut unnamed = std::collections::BTreeSet::new();
    let keys = set.key_indices();
    for (offset, cells) in grid.rows.iter().enumerate().skip(header_idx + 1) {
        let line = grid.first_row + offset;
        if cells.iter().all(Cell::is_empty) {
            out.empty_rows += 1;
            continue;
        }
        for (i, c) in cells.iter().enumerate() {
            if !c.is_empty() && header.get(i).is_none_or(Cell::is_empty) {
                unnamed.insert(i);
            }
        }
        let mut values = Vec::with_capacity(positions.len());
        let mut bad = false;
        for (col, &pos) in set.columns.iter().zip(&positions) {
            let cell = cells.get(pos).unwrap_or(&Cell::Empty);
            match cells::typed(cell, col) {
                Ok(v) => values.push(v),
                Err(problem) => {
                    bad = true;
                    out.invalid.push(Invalid {
                        row: line,
                        column: col.name.clone(),
                        cell: format!("{}{line}", column_letters(grid.first_col + pos)),
                        value: cell.display(),
                        problem,
                    });
                    values.push(LabelValue::Null);
                }
            }
        }
        if bad {
            out.invalid_rows.push(line);
        } else {
            out.rows.push(Row { line, values });
        }
    }
    // Duplicate keys: the first row with a key stays, every later one is invalid.
    let mut duplicates: Vec<(usize, usize)> = Vec::new();
    {
        let mut seen: FastMap<KeyRef<'_>, usize> =
            FastMap::with_capacity_and_hasher(out.rows.len(), Default::default());
        for (i, r) in out.rows.iter().enumerate() {
            let key = KeyRef {
                row: &r.values,
                keys: &keys,
            };
            if let Some(&first) = seen.get(&key) {
                duplicates.push((i, out.rows[first].line));
            } else {
                seen.insert(key, i);
            }
        }
    }
    let mut next_dup = duplicates.iter().peekable();
    let rows = std::mem::take(&mut out.rows);
    for (i, row) in rows.into_iter().enumerate() {
        let Some(&(_, first)) = next_dup.next_if(|(d, _)| *d == i) else {
            out.rows.push(row);
            continue;
        };
        let Row { line, values } = row;
        let k = keys[0];
        out.invalid.push(Invalid {
            row: line,
            column: set.key.join(", "),
            cell: format!("{}{line}", column_letters(grid.first_col + positions[k])),
            value: keys
                .iter()
                .map(|&k| values[k].to_string())
                .collect::<Vec<_>>()
                .join(", "),
            problem: format!("is a duplicate key: row {first} has the same"),
        });
        out.invalid_rows.push(line);
    }
    if !duplicates.is_empty() {
        out.invalid.sort_by_key(|i| i.row);
        out.invalid_rows.sort_unstable();
    }
    out.unnamed_columns = unnamed
        .into_iter()
        .map(|i| column_letters(grid.first_col + i))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn set() -> LabelSet {
        LabelSet::from_toml(
            "s",
            r#"
            table = "t"
            key = ["recipe_id"]
            [source]
            type = "csv"
            path = "x.csv"
            [columns]
            recipe_id = { type = "integer", header = "レシピID" }
            category  = { type = "enum", values = ["主菜", "副菜"], required = true }
            score     = { type = "float" }
            note      = { type = "string", role = "comment" }
        "#,
            "s.toml",
            Path::new("/"),
        )
        .unwrap()
    }

    fn grid(rows: &[&[&str]]) -> Grid {
        Grid {
            rows: rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| {
                            if c.is_empty() {
                                Cell::Empty
                            } else {
                                Cell::Text(c.to_string())
                            }
                        })
                        .collect()
                })
                .collect(),
            first_row: 1,
            first_col: 0,
            origin: "x.csv".into(),
        }
    }

    #[test]
    fn every_invalid_row_is_reported_with_row_cell_and_value() {
        let g = grid(&[
            &["メモ", "レシピID", "category", "score", "extra"],
            &["ok", "1", "主菜", "0.5", ""],
            &["", "x", "主菜", "", ""],
            &["", "2", "汁物", "", ""],
            &["", "3", "", "", ""],
            &["", "1", "副菜", "", ""],
            &["", "", "", "", ""],
            &["", "4", "副菜", "", "helper"],
            &[""],
        ]);
        let mut s = set();
        s.columns[3].header = Some("メモ".into());
        let v = validate(&s, &g).unwrap();
        assert_eq!(v.rows.len(), 2);
        assert_eq!(v.rows[0].line, 2);
        assert_eq!(v.rows[1].line, 8);
        assert_eq!(v.invalid_rows, [3, 4, 5, 6]);
        let msgs: Vec<String> = v.invalid.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            msgs[0],
            "row 3 (B3), column recipe_id: `x` is not an integer"
        );
        assert!(
            msgs[1].starts_with("row 4 (C4), column category: `汁物` is not one of"),
            "{}",
            msgs[1]
        );
        assert_eq!(
            msgs[2],
            "row 5 (C5), column category: `` is required but empty"
        );
        assert_eq!(
            msgs[3],
            "row 6 (B6), column recipe_id: `1` is a duplicate key: row 2 has the same"
        );
        assert_eq!(v.empty_rows, 2);
        assert!(v.unnamed_columns.is_empty(), "column E has a header");
    }

    #[test]
    fn a_missing_header_lists_what_the_sheet_has() {
        let g = grid(&[&["id", "category"], &["1", "主菜"]]);
        let err = validate(&set(), &g).unwrap_err().to_string();
        assert!(
            err.contains("no header `レシピID`, `score`, `note`"),
            "{err}"
        );
        assert!(err.contains("the headers are `id`, `category`"), "{err}");
    }

    #[test]
    fn values_under_a_merged_header_are_reported_as_unnamed() {
        // A merged header cell leaves the cells to its right empty.
        let g = grid(&[
            &["レシピID", "category", "", "score", "note"],
            &["1", "主菜", "sub", "", ""],
        ]);
        let v = validate(&set(), &g).unwrap();
        assert_eq!(v.rows.len(), 1);
        assert_eq!(v.unnamed_columns, ["C"]);
    }

    #[test]
    fn a_duplicated_header_is_an_error() {
        let g = grid(&[&["レシピID", "category", "category", "score", "note"]]);
        let err = validate(&set(), &g).unwrap_err().to_string();
        assert!(
            err.contains("appears twice in row 1 (columns B and C)"),
            "{err}"
        );
    }
}
