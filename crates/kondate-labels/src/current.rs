//! What the table holds, as the diff reads it: rows read out of the database, or the columns
//! of the last snapshot. Reading a snapshot's columns avoids materialising a million rows
//! (and freeing them again), which was most of a sync's time.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type};

use crate::LabelsError;
use crate::cells::LabelValue;
use crate::definition::{LabelSet, LabelType};
use crate::key::{FastMap, KeyRef, same};

/// The table's rows, in one of two forms.
#[derive(Debug)]
pub enum Current {
    Rows(Vec<Vec<LabelValue>>),
    Columns(Columns),
}

/// A snapshot's columns, concatenated, in the definition's column order.
#[derive(Debug)]
pub struct Columns {
    len: usize,
    cols: Vec<Col>,
}

#[derive(Debug)]
enum Col {
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Date(Date32Array),
    Text(StringArray),
}

fn epoch() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

impl Col {
    fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Int(a) => a.is_null(i),
            Col::Float(a) => a.is_null(i),
            Col::Bool(a) => a.is_null(i),
            Col::Date(a) => a.is_null(i),
            Col::Text(a) => a.is_null(i),
        }
    }

    fn value(&self, i: usize) -> LabelValue {
        if self.is_null(i) {
            return LabelValue::Null;
        }
        match self {
            Col::Int(a) => LabelValue::Int(a.value(i)),
            Col::Float(a) => LabelValue::Float(a.value(i)),
            Col::Bool(a) => LabelValue::Bool(a.value(i)),
            Col::Date(a) => LabelValue::Date(epoch() + chrono::Duration::days(a.value(i) as i64)),
            Col::Text(a) => LabelValue::Text(a.value(i).to_string()),
        }
    }

    /// Whether row `i` holds `v`, without building a value.
    fn same(&self, i: usize, v: &LabelValue) -> bool {
        match (self, v) {
            (_, LabelValue::Null) => self.is_null(i),
            _ if self.is_null(i) => false,
            (Col::Int(a), LabelValue::Int(x)) => a.value(i) == *x,
            (Col::Float(a), LabelValue::Float(_)) => same(&LabelValue::Float(a.value(i)), v),
            (Col::Bool(a), LabelValue::Bool(x)) => a.value(i) == *x,
            (Col::Date(a), LabelValue::Date(d)) => a.value(i) == crate::cells::epoch_days(*d),
            (Col::Text(a), LabelValue::Text(t)) => a.value(i) == t.as_str(),
            _ => false,
        }
    }

    /// Hash row `i`'s value exactly as [`crate::key`] hashes the equal [`LabelValue`].
    fn hash<H: Hasher>(&self, i: usize, h: &mut H) {
        if self.is_null(i) {
            return crate::key::hash_value(&LabelValue::Null, h);
        }
        match self {
            Col::Int(a) => crate::key::hash_value(&LabelValue::Int(a.value(i)), h),
            Col::Bool(a) => crate::key::hash_value(&LabelValue::Bool(a.value(i)), h),
            Col::Float(a) => crate::key::hash_value(&LabelValue::Float(a.value(i)), h),
            Col::Date(a) => crate::key::hash_date_days(a.value(i), h),
            Col::Text(a) => crate::key::hash_text(a.value(i), h),
        }
    }
}

impl Columns {
    /// The columns of a snapshot of `set` (same definition).
    pub fn from_batches(set: &LabelSet, batches: &[RecordBatch]) -> Result<Columns, LabelsError> {
        let bad = |message: String| LabelsError::Snapshot {
            key: set.name.clone(),
            message,
        };
        let schema = crate::snapshot::schema(set);
        let batch = arrow::compute::concat_batches(&schema, batches)
            .map_err(|e| bad(format!("does not match the definition: {e}")))?;
        let mut cols = Vec::with_capacity(set.columns.len());
        for c in &set.columns {
            let a = batch
                .column_by_name(&c.name)
                .ok_or_else(|| bad(format!("has no column `{}`", c.name)))?;
            let wrong = || bad(format!("column `{}` has type {}", c.name, a.data_type()));
            cols.push(match c.ty {
                LabelType::Integer => {
                    Col::Int(a.as_primitive_opt::<Int64Type>().ok_or_else(wrong)?.clone())
                }
                LabelType::Float => Col::Float(
                    a.as_primitive_opt::<Float64Type>()
                        .ok_or_else(wrong)?
                        .clone(),
                ),
                LabelType::Boolean => Col::Bool(a.as_boolean_opt().ok_or_else(wrong)?.clone()),
                LabelType::Date => Col::Date(
                    a.as_primitive_opt::<Date32Type>()
                        .ok_or_else(wrong)?
                        .clone(),
                ),
                LabelType::String | LabelType::Enum => {
                    Col::Text(a.as_string_opt::<i32>().ok_or_else(wrong)?.clone())
                }
            });
        }
        Ok(Columns {
            len: batch.num_rows(),
            cols,
        })
    }
}

impl Current {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Current::Rows(r) => r.len(),
            Current::Columns(c) => c.len,
        }
    }

    /// The value of row `i`, column `col`.
    pub fn value(&self, i: usize, col: usize) -> LabelValue {
        match self {
            Current::Rows(r) => r[i][col].clone(),
            Current::Columns(c) => c.cols[col].value(i),
        }
    }

    /// Whether row `i`, column `col` holds `v`.
    pub fn same(&self, i: usize, col: usize, v: &LabelValue) -> bool {
        match self {
            Current::Rows(r) => same(&r[i][col], v),
            Current::Columns(c) => c.cols[col].same(i, v),
        }
    }

    fn hash_key(&self, i: usize, keys: &[usize], state: &foldhash::fast::FixedState) -> u64 {
        match self {
            Current::Rows(r) => state.hash_one(KeyRef { row: &r[i], keys }),
            Current::Columns(c) => {
                let mut h = state.build_hasher();
                for &k in keys {
                    c.cols[k].hash(i, &mut h);
                }
                h.finish()
            }
        }
    }

    /// An index from key to row: hash → the last row with that hash, chained through
    /// `next` for the rare rows whose 64-bit hashes collide.
    pub fn index(self: &Arc<Self>, keys: &[usize]) -> KeyIndex {
        let state = foldhash::fast::FixedState::default();
        let n = self.len();
        let mut head: FastMap<u64, u32> = FastMap::with_capacity_and_hasher(n, Default::default());
        let mut next = vec![u32::MAX; n];
        for (i, link) in next.iter_mut().enumerate() {
            let h = self.hash_key(i, keys, &state);
            if let Some(prev) = head.insert(h, i as u32) {
                *link = prev;
            }
        }
        KeyIndex {
            current: self.clone(),
            keys: keys.to_vec(),
            state,
            head,
            next,
        }
    }
}

/// Rows of the table by key.
pub struct KeyIndex {
    current: Arc<Current>,
    keys: Vec<usize>,
    state: foldhash::fast::FixedState,
    head: FastMap<u64, u32>,
    next: Vec<u32>,
}

impl KeyIndex {
    /// The table row whose key equals `row`'s key (`row` in definition order).
    pub fn find(&self, row: &[LabelValue]) -> Option<usize> {
        let h = self.state.hash_one(KeyRef {
            row,
            keys: &self.keys,
        });
        let mut i = *self.head.get(&h)?;
        while i != u32::MAX {
            let idx = i as usize;
            if self
                .keys
                .iter()
                .all(|&k| self.current.same(idx, k, &row[k]))
            {
                return Some(idx);
            }
            i = self.next[idx];
        }
        None
    }
}
