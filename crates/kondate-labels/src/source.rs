//! Reading a label set's source into a grid of cells: CSV files and workbooks here, Google
//! Sheets in [`crate::sheets`].

use sha2::{Digest, Sha256};

use crate::LabelsError;
use crate::cells::Cell;
use crate::definition::{LabelSet, SourceDef};

/// The cells a source returned, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub rows: Vec<Vec<Cell>>,
    /// Sheet row number (1-based) of `rows[0]`.
    pub first_row: usize,
    /// Sheet column index (0 = A) of each row's first cell.
    pub first_col: usize,
    /// Where the grid came from, for messages (a file path, a spreadsheet range).
    pub origin: String,
}

impl Grid {
    /// A fingerprint of the content: equal grids give equal fingerprints, whatever the
    /// source format.
    pub fn fingerprint(&self, definition_json: &str) -> String {
        let mut h = Sha256::new();
        h.update(definition_json.as_bytes());
        h.update([0]);
        for row in &self.rows {
            for cell in row {
                // A tag, then the content's length and bytes: no two grids hash alike by
                // shifting bytes between cells.
                let mut field = |tag: u8, bytes: &[u8]| {
                    h.update([tag]);
                    h.update((bytes.len() as u64).to_le_bytes());
                    h.update(bytes);
                };
                match cell {
                    Cell::Empty => field(0, b""),
                    Cell::Text(t) => field(1, t.as_bytes()),
                    Cell::Number(n) => field(2, &n.to_bits().to_le_bytes()),
                    Cell::Bool(b) => field(3, &[*b as u8]),
                    Cell::DateTime(d) => field(4, &d.and_utc().timestamp_micros().to_le_bytes()),
                    Cell::Error(e) => field(5, e.as_bytes()),
                }
            }
            h.update([0xff]);
        }
        hex::encode(h.finalize())
    }
}

/// Spreadsheet column letters for a 0-based index: 0 → A, 26 → AA.
pub fn column_letters(mut index: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

/// Read the source of `set` (files only; Google Sheets goes through [`crate::sheets`]).
pub fn read_file_source(set: &LabelSet) -> Result<Grid, LabelsError> {
    match &set.source {
        SourceDef::Csv { path, encoding, .. } => read_csv(&set.resolve(path), encoding.as_deref()),
        SourceDef::Xlsx { path, sheet, .. } => read_workbook(&set.resolve(path), sheet.as_deref()),
        SourceDef::GoogleSheets { .. } => unreachable!("Google Sheets is read by crate::sheets"),
    }
}

fn source_err(origin: &str, message: impl Into<String>) -> LabelsError {
    LabelsError::Source {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// Read a CSV file: every cell is text. `encoding` is a WHATWG label (`shift_jis`, …);
/// UTF-8 (with or without a byte-order mark) when unset.
pub fn read_csv(path: &std::path::Path, encoding: Option<&str>) -> Result<Grid, LabelsError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        source_err(
            &origin,
            format!("cannot read it: {e}; `path` is relative to the project folder"),
        )
    })?;
    let text = match encoding {
        None => match std::str::from_utf8(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes)) {
            Ok(t) => t.to_string(),
            Err(e) => {
                return Err(source_err(
                    &origin,
                    format!(
                        "is not UTF-8 (byte {} is invalid); if Excel saved it, add \
                         `encoding = \"shift_jis\"` to [source]",
                        e.valid_up_to()
                    ),
                ));
            }
        },
        Some(label) => {
            let enc = encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                source_err(
                    &origin,
                    format!("unknown encoding `{label}`; try `shift_jis` or `utf-8`"),
                )
            })?;
            let (text, _, had_errors) = enc.decode(&bytes);
            if had_errors {
                return Err(source_err(
                    &origin,
                    format!("is not valid {}; check `encoding`", enc.name()),
                ));
            }
            text.into_owned()
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let at = e
                .position()
                .map(|p| format!(" at line {}", p.line()))
                .unwrap_or_default();
            source_err(&origin, format!("is not valid CSV{at}: {e}"))
        })?;
        rows.push(
            record
                .iter()
                .map(|f| {
                    if f.is_empty() {
                        Cell::Empty
                    } else {
                        Cell::Text(f.to_string())
                    }
                })
                .collect(),
        );
    }
    Ok(Grid {
        rows,
        first_row: 1,
        first_col: 0,
        origin,
    })
}

/// Read one sheet of an Excel or LibreOffice workbook (the first sheet when `sheet` is
/// unset).
pub fn read_workbook(path: &std::path::Path, sheet: Option<&str>) -> Result<Grid, LabelsError> {
    use calamine::{Data, Reader};
    let origin = path.display().to_string();
    let mut book = calamine::open_workbook_auto(path)
        .map_err(|e| source_err(&origin, format!("cannot open the workbook: {e}")))?;
    let names = book.sheet_names();
    let name = match sheet {
        Some(s) => {
            if !names.iter().any(|n| n == s) {
                return Err(source_err(
                    &origin,
                    format!("has no sheet `{s}`; its sheets are {}", names.join(", ")),
                ));
            }
            s.to_string()
        }
        None => names
            .first()
            .cloned()
            .ok_or_else(|| source_err(&origin, "has no sheets"))?,
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| source_err(&origin, format!("cannot read sheet `{name}`: {e}")))?;
    let (first_row, first_col) = range
        .start()
        .map(|(r, c)| (r as usize + 1, c as usize))
        .unwrap_or((1, 0));
    let rows = range
        .rows()
        .map(|row| {
            row.iter()
                .map(|d| match d {
                    Data::Empty => Cell::Empty,
                    Data::String(s) if s.is_empty() => Cell::Empty,
                    Data::String(s) => Cell::Text(s.clone()),
                    Data::Int(i) => Cell::Number(*i as f64),
                    Data::Float(f) => Cell::Number(*f),
                    Data::Bool(b) => Cell::Bool(*b),
                    Data::DateTime(dt) => excel_datetime(dt.as_f64())
                        .map(Cell::DateTime)
                        .unwrap_or(Cell::Number(dt.as_f64())),
                    Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
                    Data::Error(e) => Cell::Error(format!("#{e:?}")),
                })
                .collect()
        })
        .collect();
    Ok(Grid {
        rows,
        first_row,
        first_col,
        origin: format!("{origin} sheet {name}"),
    })
}

/// A workbook's serial date-time (days since 1899-12-30) as a date-time.
fn excel_datetime(serial: f64) -> Option<chrono::NaiveDateTime> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)?.and_hms_opt(0, 0, 0)?;
    let ms = (serial * 86_400_000.0).round();
    if !ms.is_finite() || ms.abs() > 1e15 {
        return None;
    }
    epoch.checked_add_signed(chrono::Duration::milliseconds(ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_follow_spreadsheets() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    #[test]
    fn csv_reads_utf8_with_bom_and_shift_jis_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "\u{feff}id,名前\n1,\"醤油, 濃口\"\n".as_bytes()).unwrap();
        let g = read_csv(&p, None).unwrap();
        assert_eq!(g.rows[0][1], Cell::Text("名前".into()));
        assert_eq!(g.rows[1][1], Cell::Text("醤油, 濃口".into()));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("id,名前\n1,味噌\n");
        std::fs::write(&p, &sjis).unwrap();
        let err = read_csv(&p, None).unwrap_err().to_string();
        assert!(err.contains("encoding = \"shift_jis\""), "{err}");
        let g = read_csv(&p, Some("shift_jis")).unwrap();
        assert_eq!(g.rows[1][1], Cell::Text("味噌".into()));
    }

    #[test]
    fn fingerprints_depend_on_content_and_definition_only() {
        let g = |t: &str| Grid {
            rows: vec![vec![Cell::Text(t.into()), Cell::Number(1.0)]],
            first_row: 1,
            first_col: 0,
            origin: "x".into(),
        };
        assert_eq!(g("a").fingerprint("d"), g("a").fingerprint("d"));
        assert_ne!(g("a").fingerprint("d"), g("b").fingerprint("d"));
        assert_ne!(g("a").fingerprint("d"), g("a").fingerprint("e"));
    }
}
