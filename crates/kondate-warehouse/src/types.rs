//! Mapping engine types to the Redshift type names the manifest carries — only the names the
//! public `queuery-client` can cast (`smallint`, `integer`, `bigint`, `numeric`,
//! `double precision`, `character`, `character varying`, `boolean`, `date`,
//! `timestamp without time zone`, `timestamp with time zone`).

use arrow::datatypes::DataType;

/// Redshift base type for an Arrow type.
pub fn redshift_type_for_arrow(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::UInt64
        | DataType::Decimal32(..)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

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
}
