//! Excel and LibreOffice workbooks as label sources. The workbooks are built here, part by
//! part, in the formats' documented shapes (Office Open XML SpreadsheetML with a date
//! number format and a merged header cell; OpenDocument spreadsheet with typed cells).

use std::io::Write;
use std::path::Path;

use kondate_labels::LabelSet;
use kondate_labels::read_workbook;
use kondate_labels::validate;
use kondate_labels::{Cell, LabelValue};

fn zip(path: &Path, parts: &[(&str, &str)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    for (name, body) in parts {
        // OpenDocument wants `mimetype` first and stored; everything else may be deflated.
        let method = if *name == "mimetype" {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        z.start_file(*name, opts).unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

/// A cell of SpreadsheetML: inline strings, numbers, booleans, or a date (style 1, whose
/// number format 14 is Excel's built-in short date).
fn xcell(r: &str, v: &str) -> String {
    if let Some(n) = v.strip_prefix('=') {
        format!(r#"<c r="{r}"><v>{n}</v></c>"#)
    } else if let Some(d) = v.strip_prefix("date:") {
        format!(r#"<c r="{r}" s="1"><v>{d}</v></c>"#)
    } else if let Some(b) = v.strip_prefix("bool:") {
        format!(r#"<c r="{r}" t="b"><v>{b}</v></c>"#)
    } else {
        format!(r#"<c r="{r}" t="inlineStr"><is><t xml:space="preserve">{v}</t></is></c>"#)
    }
}

fn xlsx(path: &Path, sheet: &str, rows: &[&[(&str, &str)]], merge: &str) {
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(i, cells)| {
            let cs: String = cells.iter().map(|(r, v)| xcell(r, v)).collect();
            format!(r#"<row r="{}">{cs}</row>"#, i + 1)
        })
        .collect();
    let sheet_xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{body}</sheetData><mergeCells count="1"><mergeCell ref="{merge}"/></mergeCells></worksheet>"#
    );
    let workbook = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Other" sheetId="1" r:id="rId2"/><sheet name="{sheet}" sheetId="2" r:id="rId1"/></sheets></workbook>"#
    );
    zip(
        path,
        &[
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#,
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
            ),
            ("xl/workbook.xml", &workbook),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
            ),
            (
                "xl/styles.xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font/></fonts><fills count="1"><fill/></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" xfId="0"/><xf numFmtId="14" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#,
            ),
            ("xl/worksheets/sheet1.xml", &sheet_xml),
            (
                "xl/worksheets/sheet2.xml",
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>"#,
            ),
        ],
    );
}

fn set(dir: &Path, source: &str) -> LabelSet {
    let text = format!(
        r#"
        table = "t"
        key = ["recipe_id"]
        [source]
        {source}
        [columns]
        recipe_id = {{ type = "integer", header = "レシピID" }}
        category  = {{ type = "enum", values = ["主菜", "副菜"], required = true }}
        day       = {{ type = "date" }}
        checked   = {{ type = "boolean" }}
        note      = {{ type = "string" }}
        "#
    );
    LabelSet::from_toml("w", &text, "w.toml", dir).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> LabelValue {
    LabelValue::Date(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

#[test]
fn xlsx_cells_keep_their_types_and_merged_headers_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.xlsx");
    xlsx(
        &p,
        "ラベル",
        &[
            // A merged header cell E1:F1: F1 has no value of its own.
            &[
                ("A1", "レシピID"),
                ("B1", "category"),
                ("C1", "day"),
                ("D1", "checked"),
                ("E1", "note"),
            ],
            &[
                ("A2", "=1"),
                ("B2", " 主菜 "),
                ("C2", "date:45293"),
                ("D2", "bool:1"),
                ("E2", "醤油"),
                ("F2", "merged"),
            ],
            &[
                ("A3", "２"),
                ("B3", "副菜"),
                ("C3", "2024/03/04"),
                ("E3", "=12"),
            ],
            &[],
            &[("A5", "   ")],
        ],
        "E1:F1",
    );
    let grid = read_workbook(&p, Some("ラベル")).unwrap();
    assert_eq!(grid.rows[1][0], Cell::Number(1.0));
    assert!(
        matches!(grid.rows[1][2], Cell::DateTime(_)),
        "{:?}",
        grid.rows[1][2]
    );
    let s = set(
        dir.path(),
        "type = \"xlsx\"\npath = \"labels.xlsx\"\nsheet = \"ラベル\"",
    );
    let v = validate(&s, &grid).unwrap();
    assert!(v.invalid.is_empty(), "{:?}", v.invalid);
    use LabelValue::{Bool, Int, Null, Text};
    assert_eq!(
        v.rows.iter().map(|r| r.values.clone()).collect::<Vec<_>>(),
        vec![
            vec![
                Int(1),
                Text("主菜".into()),
                date(2024, 1, 2),
                Bool(true),
                Text("醤油".into())
            ],
            vec![
                Int(2),
                Text("副菜".into()),
                date(2024, 3, 4),
                Null,
                Text("12".into())
            ],
        ]
    );
    assert_eq!(v.rows[1].line, 3);
    assert_eq!(v.empty_rows, 2, "the empty trailing rows");
    assert_eq!(v.unnamed_columns, ["F"]);

    let err = read_workbook(&p, Some("Labels")).unwrap_err().to_string();
    assert!(
        err.contains("has no sheet `Labels`; its sheets are Other, ラベル"),
        "{err}"
    );
}

#[test]
fn ods_workbooks_from_libreoffice_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.ods");
    let cell = |t: &str| {
        format!(
            "<table:table-cell office:value-type=\"string\"><text:p>{t}</text:p></table:table-cell>"
        )
    };
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Sheet1">
<table:table-row>{}{}{}{}{}</table:table-row>
<table:table-row><table:table-cell office:value-type="float" office:value="7"><text:p>7</text:p></table:table-cell>{}<table:table-cell office:value-type="date" office:date-value="2024-05-06"><text:p>2024/05/06</text:p></table:table-cell><table:table-cell office:value-type="boolean" office:boolean-value="false"><text:p>FALSE</text:p></table:table-cell><table:table-cell/></table:table-row>
</table:table></office:spreadsheet></office:body></office:document-content>"#,
        cell("レシピID"),
        cell("category"),
        cell("day"),
        cell("checked"),
        cell("note"),
        cell("副菜")
    );
    zip(
        &p,
        &[
            ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"),
            (
                "META-INF/manifest.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#,
            ),
            ("content.xml", &content),
        ],
    );
    let s = set(dir.path(), "type = \"xlsx\"\npath = \"labels.ods\"");
    let grid = read_workbook(&p, None).unwrap();
    let v = validate(&s, &grid).unwrap();
    assert!(v.invalid.is_empty(), "{:?}", v.invalid);
    use LabelValue::{Bool, Int, Null, Text};
    assert_eq!(
        v.rows[0].values,
        vec![
            Int(7),
            Text("副菜".into()),
            date(2024, 5, 6),
            Bool(false),
            Null
        ]
    );
}
