//! Spreadsheet cells and how each becomes a typed label value.
//!
//! The rules, documented in `docs/labels.md`:
//! - leading and trailing spaces, ASCII or full-width (U+3000), are removed from every cell;
//!   a cell that is then empty is empty;
//! - numbers in integer, float and boolean columns may be typed with full-width digits,
//!   signs and decimal point (`１２３`, `－１．５`); integers may group digits with commas;
//! - a number cell in a string or enum column is its plain decimal text (`3`, `2.5`);
//! - a text cell in a number column is parsed; anything else is an error naming the cell;
//! - date cells (workbooks) and date serial numbers (Google Sheets' unformatted values) are
//!   dates; text dates are `YYYY-MM-DD` or `YYYY/MM/DD`.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::definition::{ColumnDef, LabelType};

/// One cell as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
    /// A workbook cell formatted as a date or date-time.
    DateTime(NaiveDateTime),
    /// A spreadsheet error such as `#N/A` or `#REF!`.
    Error(String),
}

impl Cell {
    /// True when the cell holds nothing (after trimming spaces).
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(t) => trim(t).is_empty(),
            _ => false,
        }
    }

    /// The cell as an annotator would see it, for error messages.
    pub fn display(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::Number(n) => number_text(*n),
            Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Cell::DateTime(d) => d.to_string(),
            Cell::Error(e) => e.clone(),
        }
    }
}

/// A typed label value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum LabelValue {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    Text(String),
}

impl std::fmt::Display for LabelValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelValue::Null => f.write_str("(empty)"),
            LabelValue::Int(v) => write!(f, "{v}"),
            LabelValue::Float(v) => f.write_str(&number_text(*v)),
            LabelValue::Bool(v) => write!(f, "{v}"),
            LabelValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            LabelValue::Text(t) => f.write_str(t),
        }
    }
}

impl serde::Serialize for LabelValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LabelValue::Null => s.serialize_none(),
            LabelValue::Int(v) => s.serialize_i64(*v),
            LabelValue::Float(v) => s.serialize_f64(*v),
            LabelValue::Bool(v) => s.serialize_bool(*v),
            LabelValue::Date(_) | LabelValue::Text(_) => s.serialize_str(&self.to_string()),
        }
    }
}

/// Remove leading and trailing spaces, ASCII and full-width.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}')
}

/// Full-width digits, signs, decimal point and comma as their ASCII forms (what NFKC does
/// for these characters; the full normalisation would also rewrite the annotators' text).
fn ascii_number(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '－' | '−' | 'ー' => '-',
            '＋' => '+',
            '．' => '.',
            '，' => ',',
            'ｅ' | 'Ｅ' => 'e',
            c => c,
        })
        .collect()
}

/// A number's plain decimal text: `3`, not `3.0`.
pub fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Parse an integer written with optional sign and optional comma grouping (`1,234`).
fn parse_int(s: &str) -> Option<i64> {
    if let Ok(v) = s.parse() {
        return Some(v);
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let groups: Vec<&str> = digits.split(',').collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if grouped {
        s.replace(',', "").parse().ok()
    } else {
        None
    }
}

/// Days between 1899-12-30, day 0 of spreadsheet serial dates, and 0001-01-01.
const SERIAL_EPOCH_DAYS_FROM_CE: i64 = 693_594;

/// A spreadsheet serial date (days since 1899-12-30; the fraction is the time of day).
fn serial_date(n: f64) -> Option<NaiveDate> {
    if !n.is_finite() || !(1.0..=2_958_465.0).contains(&n) {
        return None;
    }
    NaiveDate::from_num_days_from_ce_opt((n.floor() as i64 + SERIAL_EPOCH_DAYS_FROM_CE) as i32)
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    ["%Y-%m-%d", "%Y/%m/%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// Turn a cell into a value of `col`'s type; `Err` says what is wrong with it.
pub fn typed(cell: &Cell, col: &ColumnDef) -> Result<LabelValue, String> {
    if cell.is_empty() {
        return if col.required {
            Err("is required but empty".into())
        } else {
            Ok(LabelValue::Null)
        };
    }
    if let Cell::Error(e) = cell {
        return Err(format!("is the spreadsheet error {e}; fix the formula"));
    }
    let want = col.ty.as_str();
    match col.ty {
        LabelType::String => Ok(LabelValue::Text(match cell {
            Cell::Text(t) => trim(t).to_string(),
            other => other.display(),
        })),
        LabelType::Enum => {
            let text = match cell {
                Cell::Text(t) => trim(t).to_string(),
                other => other.display(),
            };
            if col.values.contains(&text) {
                Ok(LabelValue::Text(text))
            } else {
                Err(format!(
                    "is not one of the allowed values ({}); add it to `values` in the \
                     definition if the task has changed",
                    col.values.join(", ")
                ))
            }
        }
        LabelType::Integer => match cell {
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                Ok(LabelValue::Int(*n as i64))
            }
            Cell::Number(_) => Err("is not a whole number".into()),
            Cell::Text(t) => parse_int(&ascii_number(trim(t)))
                .map(LabelValue::Int)
                .ok_or_else(|| format!("is not an {want}")),
            _ => Err(format!("is not an {want}")),
        },
        LabelType::Float => match cell {
            Cell::Number(n) => Ok(LabelValue::Float(*n)),
            Cell::Text(t) => ascii_number(trim(t))
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(LabelValue::Float)
                .ok_or_else(|| format!("is not a {want} number")),
            _ => Err(format!("is not a {want} number")),
        },
        LabelType::Boolean => {
            let v = match cell {
                Cell::Bool(b) => Some(*b),
                Cell::Number(n) if *n == 1.0 => Some(true),
                Cell::Number(n) if *n == 0.0 => Some(false),
                Cell::Text(t) => match ascii_number(trim(t)).to_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" => Some(true),
                    "false" | "f" | "no" | "n" | "0" => Some(false),
                    _ => None,
                },
                _ => None,
            };
            v.map(LabelValue::Bool)
                .ok_or_else(|| "is not a boolean (TRUE/FALSE, yes/no, 1/0)".into())
        }
        LabelType::Date => {
            let v = match cell {
                Cell::DateTime(d) => Some(d.date()),
                Cell::Number(n) => serial_date(*n),
                Cell::Text(t) => parse_date(&ascii_number(trim(t)).replace('／', "/")),
                _ => None,
            };
            v.map(LabelValue::Date)
                .ok_or_else(|| "is not a date (YYYY-MM-DD)".into())
        }
    }
}

/// Days since 1970-01-01, for Arrow's Date32.
pub fn epoch_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - 719_163
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Role;

    fn col(ty: LabelType, required: bool) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            ty,
            required,
            values: if ty == LabelType::Enum {
                vec!["主菜".into(), "副菜".into(), "3".into()]
            } else {
                vec![]
            },
            role: Role::Label,
            header: None,
        }
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn cells_become_typed_values_by_the_documented_rules() {
        use LabelType::*;
        use LabelValue as V;
        let d = |y, m, day| V::Date(NaiveDate::from_ymd_opt(y, m, day).unwrap());
        let ok = [
            (Integer, text(" 42 "), V::Int(42)),
            (Integer, text("１２３"), V::Int(123)),
            (Integer, text("－７"), V::Int(-7)),
            (Integer, text("1,234,567"), V::Int(1_234_567)),
            (Integer, Cell::Number(5.0), V::Int(5)),
            (Float, text("１．５"), V::Float(1.5)),
            (Float, text("2e3"), V::Float(2000.0)),
            (Float, Cell::Number(0.25), V::Float(0.25)),
            (String, Cell::Number(3.0), V::Text("3".into())),
            (String, Cell::Number(2.5), V::Text("2.5".into())),
            (
                String,
                text("\u{3000}全角スペース\u{3000}"),
                V::Text("全角スペース".into()),
            ),
            (
                String,
                text("inner  spaces kept"),
                V::Text("inner  spaces kept".into()),
            ),
            (Enum, text(" 主菜"), V::Text("主菜".into())),
            (Enum, Cell::Number(3.0), V::Text("3".into())),
            (Boolean, text("TRUE"), V::Bool(true)),
            (Boolean, text("no"), V::Bool(false)),
            (Boolean, Cell::Bool(true), V::Bool(true)),
            (Boolean, Cell::Number(0.0), V::Bool(false)),
            (Date, text("2024-01-02"), d(2024, 1, 2)),
            (Date, text("2024/1/2"), d(2024, 1, 2)),
            (Date, text("２０２４／０１／０２"), d(2024, 1, 2)),
            // Google Sheets' serial number for 2024-01-02.
            (Date, Cell::Number(45293.0), d(2024, 1, 2)),
            (
                Date,
                Cell::DateTime(
                    NaiveDate::from_ymd_opt(2024, 1, 2)
                        .unwrap()
                        .and_hms_opt(9, 0, 0)
                        .unwrap(),
                ),
                d(2024, 1, 2),
            ),
            (Integer, text("  "), V::Null),
        ];
        for (ty, cell, want) in ok {
            assert_eq!(typed(&cell, &col(ty, false)), Ok(want), "{ty:?} {cell:?}");
        }
        let bad = [
            (Integer, text("1.5"), "not an integer"),
            (Integer, Cell::Number(1.5), "not a whole number"),
            (Integer, text("12,34"), "not an integer"),
            (Float, text("NaN"), "not a float"),
            (
                Enum,
                text("汁物"),
                "not one of the allowed values (主菜, 副菜, 3)",
            ),
            (Boolean, text("maybe"), "not a boolean"),
            (Date, text("2024-02-30"), "not a date"),
            (
                String,
                Cell::Error("#REF!".into()),
                "spreadsheet error #REF!",
            ),
        ];
        for (ty, cell, needle) in bad {
            let err = typed(&cell, &col(ty, false)).unwrap_err();
            assert!(err.contains(needle), "{ty:?} {cell:?}: {err}");
        }
        assert!(
            typed(&text(" "), &col(LabelType::String, true))
                .unwrap_err()
                .contains("required")
        );
    }

    #[test]
    fn numbers_print_without_a_spurious_fraction() {
        assert_eq!(number_text(3.0), "3");
        assert_eq!(number_text(-0.5), "-0.5");
        assert_eq!(epoch_days(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
