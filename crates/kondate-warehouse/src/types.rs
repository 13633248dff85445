//! Mapping engine types to the Redshift type names the manifest carries — only the names the
//! public `queuery-client` can cast (`smallint`, `integer`, `bigint`, `numeric`,
//! `double precision`, `character`, `character varying`, `boolean`, `date`,
//! `timestamp without time zone`, `timestamp with time zone`).

use arrow::datatypes::{DataType, TimeUnit};

/// Redshift base type for an Arrow type.
pub fn redshift_type_for_arrow(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        // UInt64: DataFusion's row_number, rank and counts, which PostgreSQL types bigint.
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "double precision",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        _ => "character varying",
    }
}

/// Redshift base type for a PostgreSQL type name (as sqlx reports it, e.g. `INT8`).
pub fn redshift_type_for_postgres(name: &str) -> &'static str {
    match name.to_ascii_uppercase().as_str() {
        "INT2" | "SMALLINT" => "smallint",
        "INT4" | "INT" | "INTEGER" | "OID" => "integer",
        "INT8" | "BIGINT" => "bigint",
        "NUMERIC" | "DECIMAL" => "numeric",
        "FLOAT4" | "FLOAT8" | "REAL" | "DOUBLE PRECISION" => "double precision",
        "BOOL" | "BOOLEAN" => "boolean",
        "DATE" => "date",
        "TIMESTAMP" => "timestamp without time zone",
        "TIMESTAMPTZ" => "timestamp with time zone",
        "BPCHAR" | "CHAR" => "character",
        _ => "character varying",
    }
}

/// Arrow type of a PostgreSQL result column in a Parquet result (`format=parquet`).
///
/// Integers, floats, booleans, dates and timestamps keep their type; everything else —
/// `numeric` included, whose exact digits no float can hold — is the text PostgreSQL prints.
pub fn arrow_type_for_postgres(name: &str) -> DataType {
    match name.to_ascii_uppercase().as_str() {
        "INT2" | "SMALLINT" => DataType::Int16,
        "INT4" | "INT" | "INTEGER" => DataType::Int32,
        "INT8" | "BIGINT" | "OID" => DataType::Int64,
        "FLOAT4" | "REAL" => DataType::Float32,
        "FLOAT8" | "DOUBLE PRECISION" => DataType::Float64,
        "BOOL" | "BOOLEAN" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMPTZ" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_types_map_to_castable_names() {
        assert_eq!(redshift_type_for_arrow(&DataType::Int64), "bigint");
        assert_eq!(
            redshift_type_for_arrow(&DataType::Float32),
            "double precision"
        );
        assert_eq!(
            redshift_type_for_arrow(&DataType::Utf8View),
            "character varying"
        );
        assert_eq!(
            redshift_type_for_arrow(&DataType::Timestamp(TimeUnit::Microsecond, None)),
            "timestamp without time zone"
        );
        assert_eq!(redshift_type_for_arrow(&DataType::Date32), "date");
    }

    #[test]
    fn postgres_types_map_to_castable_names() {
        assert_eq!(redshift_type_for_postgres("INT8"), "bigint");
        assert_eq!(
            redshift_type_for_postgres("TIMESTAMPTZ"),
            "timestamp with time zone"
        );
        assert_eq!(redshift_type_for_postgres("JSONB"), "character varying");
        assert_eq!(redshift_type_for_postgres("BPCHAR"), "character");
    }

    #[test]
    fn postgres_types_map_to_parquet_columns() {
        assert_eq!(arrow_type_for_postgres("INT4"), DataType::Int32);
        assert_eq!(arrow_type_for_postgres("FLOAT4"), DataType::Float32);
        assert_eq!(
            arrow_type_for_postgres("TIMESTAMPTZ"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        // Exact decimals stay exact: text, not a float.
        assert_eq!(arrow_type_for_postgres("NUMERIC"), DataType::Utf8);
        assert_eq!(arrow_type_for_postgres("JSONB"), DataType::Utf8);
    }
}
