//! The configured warehouse as the destination of a result table's export.

use std::path::Path;
use std::sync::Arc;

use kondate_results::ResultTable;

use crate::Failure;

/// Loads an export's Parquet file into the declaration's `warehouse_table`.
pub struct WarehouseSink {
    wh: Arc<dyn kondate_warehouse::Warehouse>,
    table: kondate_warehouse::TableName,
    target: String,
}

impl WarehouseSink {
    /// A sink into `wh` for `decl`; `place` says where the warehouse is (the store for the
    /// embedded one, its URL without password otherwise): a change of kind, place or table
    /// makes the next export a full copy.
    pub fn new(
        wh: Arc<dyn kondate_warehouse::Warehouse>,
        decl: &ResultTable,
        place: String,
    ) -> Result<Self, Failure> {
        let table = kondate_warehouse::TableName::parse(&decl.warehouse_table).map_err(|e| {
            Failure::invalid(format!("{}: warehouse_table: {e}", decl.path.display()))
        })?;
        let kind = format!("{:?}", wh.kind()).to_lowercase();
        let target = format!("{kind}:{place}:{table}");
        Ok(Self { wh, table, target })
    }
}

impl kondate_results::ExportSink for WarehouseSink {
    fn target(&self) -> String {
        self.target.clone()
    }

    async fn load(&self, file: &Path, merge_key: Option<&[String]>) -> Result<(), String> {
        let opts = kondate_warehouse::LoadOptions {
            format: Some(kondate_warehouse::InputFormat::Parquet),
            merge_key: merge_key.map(<[String]>::to_vec),
            ..Default::default()
        };
        self.wh
            .load(&self.table, &[file.to_path_buf()], &opts)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
