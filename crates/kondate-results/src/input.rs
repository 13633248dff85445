//! Rows for a result table from CSV: a header naming every declared column (in any order),
//! each cell typed by its column. Every problem names the line and the column; a duplicate
//! key names both lines. Nothing is written until every row is good.

use std::collections::HashMap;
use std::io::Read;

use kondate_db::Value;

use crate::ResultsError;
use crate::declaration::{ResultTable, ResultType};

fn cell(ty: ResultType, raw: &str) -> Result<Value, String> {
    let s = raw.trim();
    match ty {
        ResultType::String => Ok(Value::Text(raw.to_string())),
        ResultType::Integer => s
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("`{s}` is not an integer")),
        ResultType::Float => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("`{s}` is not a finite number")),
        },
        ResultType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{s}` is not a boolean (true/false, 1/0)")),
        },
        ResultType::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| Value::Text(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
    }
}

/// Read every row of CSV `input` (named `source` in messages), values in the
/// declaration's column order. An empty cell is NULL, refused in key and non-nullable
/// columns.
pub fn read_csv(
    decl: &ResultTable,
    input: impl Read,
    source: &str,
) -> Result<Vec<Vec<Value>>, ResultsError> {
    let bad = |m: String| ResultsError::Input(format!("{source}: {m}"));
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let header = r
        .headers()
        .map_err(|e| bad(format!("cannot read the header: {e}")))?
        .clone();
    let mut index = Vec::with_capacity(decl.columns.len());
    for c in &decl.columns {
        let i = header
            .iter()
            .position(|h| h.trim() == c.name)
            .ok_or_else(|| {
                bad(format!(
                    "the header has no column `{}` (declared in {}); columns: {}",
                    c.name,
                    decl.path.display(),
                    header.iter().collect::<Vec<_>>().join(", ")
                ))
            })?;
        index.push(i);
    }
    if let Some(extra) = header
        .iter()
        .find(|h| !decl.columns.iter().any(|c| c.name == h.trim()))
    {
        return Err(bad(format!(
            "column `{extra}` is not declared in {}; declare it or drop it from the file",
            decl.path.display()
        )));
    }
    let keys = decl.key_indices();
    let mut seen: HashMap<Vec<String>, u64> = HashMap::new();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let mut row = Vec::with_capacity(decl.columns.len());
        for (c, &i) in decl.columns.iter().zip(&index) {
            let raw = rec.get(i).unwrap_or("");
            let v = if raw.trim().is_empty() && c.ty != ResultType::String
                || raw.is_empty() && c.ty == ResultType::String
            {
                if !c.nullable {
                    let why = if decl.key.contains(&c.name) {
                        "it is part of the key"
                    } else {
                        "the column is declared nullable = false"
                    };
                    return Err(bad(format!(
                        "line {line}, column `{}`: empty, but {why}",
                        c.name
                    )));
                }
                Value::NullOf(c.ty.column_type(false))
            } else {
                cell(c.ty, raw)
                    .map_err(|m| bad(format!("line {line}, column `{}`: {m}", c.name)))?
            };
            row.push(v);
        }
        let key: Vec<String> = keys.iter().map(|&k| format!("{:?}", row[k])).collect();
        if let Some(first) = seen.insert(key, line) {
            let shown: Vec<String> = keys
                .iter()
                .map(|&k| {
                    format!(
                        "{}={}",
                        decl.columns[k].name,
                        rec.get(index[k]).unwrap_or("")
                    )
                })
                .collect();
            return Err(bad(format!(
                "line {line} repeats the key ({}) of line {first}; a write holds each key once",
                shown.join(", ")
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn decl() -> ResultTable {
        ResultTable::parse(
            "rc",
            Path::new("results/rc.toml"),
            "key = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory = { type = \"string\" }\nscore = { type = \"float\" }\nok = { type = \"boolean\" }\nday = { type = \"date\" }\n",
        )
        .unwrap()
    }

    #[test]
    fn cells_are_typed_in_declaration_order() {
        let rows = read_csv(
            &decl(),
            "score,recipe_id,category,ok,day\n0.5,1,主菜,true,2026-11-27\n,2,,0,\n".as_bytes(),
            "in.csv",
        )
        .unwrap();
        assert_eq!(
            rows[0],
            vec![
                Value::Int(1),
                Value::Text("主菜".into()),
                Value::Float(0.5),
                Value::Bool(true),
                Value::Text("2026-11-27".into())
            ]
        );
        assert_eq!(rows[1][0], Value::Int(2));
        assert!(matches!(rows[1][1], Value::NullOf(_)));
        assert!(matches!(rows[1][2], Value::NullOf(_)));
    }

    #[test]
    fn problems_name_the_line_and_column() {
        let d = decl();
        let err = |csv: &str| {
            read_csv(&d, csv.as_bytes(), "in.csv")
                .unwrap_err()
                .to_string()
        };
        let h = "recipe_id,category,score,ok,day\n";
        let e = err(&format!(
            "{h}1,a,0.1,true,2026-01-01\nx,b,0.2,true,2026-01-01\n"
        ));
        assert!(
            e.contains("in.csv: line 3, column `recipe_id`: `x` is not an integer"),
            "{e}"
        );
        let e = err(&format!("{h},a,0.1,true,2026-01-01\n"));
        assert!(
            e.contains("line 2, column `recipe_id`: empty, but it is part of the key"),
            "{e}"
        );
        let e = err(&format!("{h}1,a,NaN,true,2026-01-01\n"));
        assert!(
            e.contains("column `score`: `NaN` is not a finite number"),
            "{e}"
        );
        let e = err(&format!(
            "{h}1,a,0.1,true,2026-01-01\n1,b,0.2,false,2026-01-02\n"
        ));
        assert!(
            e.contains("line 3 repeats the key (recipe_id=1) of line 2"),
            "{e}"
        );
        let e = err("recipe_id,category,score,ok\n1,a,0.1,true\n");
        assert!(e.contains("the header has no column `day`"), "{e}");
        let e = err("recipe_id,category,score,ok,day,extra
1,a,0.1,true,2026-01-01,z
");
        assert!(e.contains("column `extra` is not declared"), "{e}");
        let e = err(&format!("{h}1,a,0.1,maybe,2026-01-01\n"));
        assert!(e.contains("column `ok`: `maybe` is not a boolean"), "{e}");
    }
}
