//! `export::export` with sinks standing in for the warehouse (the real warehouses are
//! tested through the CLI in crates/kondate/tests/results_export.rs): a warehouse that fails
//! records nothing, so the next export copies the same rows; incremental exports hand the
//! key for a merge; an export of a table whose declaration changed is refused.

use std::path::Path;
use std::sync::Mutex;

use kondate_db::Database;
use kondate_results::read_csv;
use kondate_results::write;
use kondate_results::{ExportOptions, ExportSink, export};
use kondate_results::{ResultTable, ResultsError, WriteMeta, WriteOptions};

const DECL: &str = "key = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory = { type = \"string\" }\n";

fn decl(text: &str) -> ResultTable {
    ResultTable::parse("cats", Path::new("results/cats.toml"), text).unwrap()
}

/// Records what it was asked to load (rows in the file, merge key), or fails.
struct Sink {
    fail: bool,
    loads: Mutex<Vec<(usize, Option<Vec<String>>)>>,
}

impl ExportSink for Sink {
    fn target(&self) -> String {
        "test:cats".into()
    }

    async fn load(&self, file: &Path, merge_key: Option<&[String]>) -> Result<(), String> {
        if self.fail {
            return Err("the warehouse is read-only today".into());
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let rows = reader.map(|b| b.unwrap().num_rows()).sum();
        self.loads
            .lock()
            .unwrap()
            .push((rows, merge_key.map(<[String]>::to_vec)));
        Ok(())
    }
}

fn sink(fail: bool) -> Sink {
    Sink {
        fail,
        loads: Mutex::new(Vec::new()),
    }
}

#[tokio::test]
async fn a_failed_load_records_nothing_and_changed_declarations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let d = decl(DECL);
    let opts = ExportOptions::default();

    let e = export(&db, &d, &sink(false), opts, dir.path(), 1)
        .await
        .unwrap_err();
    assert!(matches!(e, ResultsError::Input(_)), "{e}");

    let rows = read_csv(
        &d,
        "recipe_id,category\n1,主菜\n2,副菜\n".as_bytes(),
        "a.csv",
    )
    .unwrap();
    write(
        &db,
        &d,
        &rows,
        &WriteMeta::default(),
        WriteOptions::default(),
        1_000,
    )
    .await
    .unwrap();

    let e = export(&db, &d, &sink(true), opts, dir.path(), 2_000)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("the warehouse is read-only today"), "{e}");
    assert!(
        e.contains("the next export copies the same rows again"),
        "{e}"
    );

    // Nothing was recorded: the next export is still the first, and copies everything.
    let ok = sink(false);
    let r = export(&db, &d, &ok, opts, dir.path(), 3_000).await.unwrap();
    assert_eq!(
        (r.mode, r.reason.as_deref(), r.rows),
        ("full", Some("first export"), 2)
    );
    assert_eq!(*ok.loads.lock().unwrap(), [(2, None)]);

    // A later write is copied alone, merged by the key.
    let rows = read_csv(&d, "recipe_id,category\n2,主食\n".as_bytes(), "b.csv").unwrap();
    write(
        &db,
        &d,
        &rows,
        &WriteMeta::default(),
        WriteOptions::default(),
        4_000,
    )
    .await
    .unwrap();
    let r = export(&db, &d, &ok, opts, dir.path(), 5_000).await.unwrap();
    assert_eq!((r.mode, r.rows), ("incremental", 1));
    assert_eq!(
        ok.loads.lock().unwrap()[1],
        (1, Some(vec!["recipe_id".to_string()]))
    );
    // No temporary Parquet file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The declaration gained a column the table does not have yet.
    let changed = decl(&format!("{DECL}score = {{ type = \"float\" }}\n"));
    let e = export(&db, &changed, &ok, opts, dir.path(), 6_000)
        .await
        .unwrap_err();
    assert!(matches!(e, ResultsError::Changed(_)), "{e}");
    assert!(e.to_string().contains("--migrate"), "{e}");
}
