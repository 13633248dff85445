//! Row keys, borrowed: hashed and compared on the key columns only, so that indexing a
//! million rows allocates nothing per row.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::cells::{self, LabelValue};

/// A hash map with a fast, fixed-seed hasher: keys come from the project's own sheet, not
/// from an adversary who could aim for collisions.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The key of `row`: the values at positions `keys`.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub row: &'a [LabelValue],
    pub keys: &'a [usize],
}

/// Hash a date given as days since 1970-01-01, as [`hash_value`] hashes a date.
pub(crate) fn hash_date_days<H: Hasher>(days: i32, h: &mut H) {
    h.write_u8(4);
    h.write_i32(days);
}

/// Hash text as [`hash_value`] hashes a text value.
pub(crate) fn hash_text<H: Hasher>(t: &str, h: &mut H) {
    h.write_u8(5);
    t.hash(h);
}

/// Hash one value of a key.
pub(crate) fn hash_value<H: Hasher>(v: &LabelValue, h: &mut H) {
    match v {
        LabelValue::Null => h.write_u8(0),
        LabelValue::Int(i) => {
            h.write_u8(1);
            h.write_i64(*i);
        }
        LabelValue::Float(f) => {
            h.write_u8(2);
            h.write_u64(f.to_bits());
        }
        LabelValue::Bool(b) => {
            h.write_u8(3);
            h.write_u8(*b as u8);
        }
        LabelValue::Date(d) => hash_date_days(cells::epoch_days(*d), h),
        LabelValue::Text(t) => hash_text(t, h),
    }
}

/// Same value, with floats compared by bit pattern so that NaN equals itself.
pub fn same(a: &LabelValue, b: &LabelValue) -> bool {
    match (a, b) {
        (LabelValue::Float(x), LabelValue::Float(y)) => x.to_bits() == y.to_bits() || x == y,
        _ => a == b,
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for &k in self.keys {
            hash_value(&self.row[k], h);
        }
    }
}

impl PartialEq for KeyRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.keys
            .iter()
            .zip(other.keys)
            .all(|(&a, &b)| same(&self.row[a], &other.row[b]))
    }
}

impl Eq for KeyRef<'_> {}

fn rank(v: &LabelValue) -> u8 {
    match v {
        LabelValue::Null => 0,
        LabelValue::Bool(_) => 1,
        LabelValue::Int(_) => 2,
        LabelValue::Float(_) => 3,
        LabelValue::Date(_) => 4,
        LabelValue::Text(_) => 5,
    }
}

/// Order two values: NULL first, then by value within a type.
pub fn cmp_value(a: &LabelValue, b: &LabelValue) -> Ordering {
    match (a, b) {
        (LabelValue::Int(x), LabelValue::Int(y)) => x.cmp(y),
        (LabelValue::Text(x), LabelValue::Text(y)) => x.cmp(y),
        (LabelValue::Date(x), LabelValue::Date(y)) => x.cmp(y),
        (LabelValue::Bool(x), LabelValue::Bool(y)) => x.cmp(y),
        (LabelValue::Float(x), LabelValue::Float(y)) => x.total_cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Order two rows by their keys.
pub fn cmp_rows(a: &[LabelValue], b: &[LabelValue], keys: &[usize]) -> Ordering {
    for &k in keys {
        match cmp_value(&a[k], &b[k]) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_and_compare_on_key_columns_only() {
        use std::hash::BuildHasher;
        let s = foldhash::fast::FixedState::default();
        let a = [LabelValue::Int(1), LabelValue::Text("x".into())];
        let b = [LabelValue::Int(1), LabelValue::Text("y".into())];
        let ka = KeyRef {
            row: &a,
            keys: &[0],
        };
        let kb = KeyRef {
            row: &b,
            keys: &[0],
        };
        assert_eq!(ka, kb);
        assert_eq!(s.hash_one(ka), s.hash_one(kb));
        let both = [0, 1];
        assert_ne!(
            KeyRef {
                row: &a,
                keys: &both
            },
            KeyRef {
                row: &b,
                keys: &both
            }
        );
        assert_eq!(cmp_rows(&a, &b, &both), Ordering::Less);
        assert_eq!(
            cmp_value(&LabelValue::Null, &LabelValue::Int(0)),
            Ordering::Less
        );
    }
}
