//! The events table in ClickHouse, from the one schema (`search::schema`): a `MergeTree`
//! partitioned by day and ordered by (tenant, time), so a search — always within a tenant,
//! mostly over recent time — reads only its tenant's rows of the days it names, and
//! retention drops whole days. `Extra` and the TI matches are `Nested` columns. Only types
//! ClickHouse 18.16 has: the time is milliseconds in an `Int64` (no `DateTime64` there).

use crate::search::{
    clickhouse::identifier,
    schema::{COLUMNS, ColumnType},
};

/// Columns that always hold a value; the others are `Nullable`, as SQLite's are.
const NOT_NULL: &[&str] = &["Id", "Timestamp", "Tenant", "Collector", "Raw"];

/// Every column with its ClickHouse type, in the order rows are written.
pub fn columns() -> Vec<(String, &'static str)> {
    let mut columns: Vec<(String, &'static str)> = COLUMNS
        .iter()
        .map(|column| {
            let nullable = !NOT_NULL.contains(&column.name);
            let kind = match (column.kind, nullable) {
                (ColumnType::Text, false) => "String",
                (ColumnType::Text, true) => "Nullable(String)",
                (ColumnType::Integer | ColumnType::Timestamp, false) => "Int64",
                (ColumnType::Integer | ColumnType::Timestamp, true) => "Nullable(Int64)",
            };
            (column.name.to_owned(), kind)
        })
        .collect();
    for (name, kind) in [
        ("Extra.key", "Array(String)"),
        ("Extra.value", "Array(String)"),
        ("TI.field", "Array(String)"),
        ("TI.value", "Array(String)"),
        ("TI.category", "Array(String)"),
        ("TI.indicator", "Array(String)"),
        ("TI.supplier", "Array(String)"),
        ("TI.indicator_type", "Array(Int32)"),
        ("TI.context", "Array(String)"),
    ] {
        columns.push((name.to_owned(), kind));
    }
    columns
}

/// The table of each server's own events.
pub fn create_local(table: &str) -> String {
    // The schema's columns; the arrays are made by the `Nested` declarations.
    let mut columns: Vec<String> = self::columns()
        .into_iter()
        .filter(|(name, _)| !name.contains('.'))
        .map(|(name, kind)| format!("{} {kind}", identifier(&name)))
        .collect();
    columns.push("Extra Nested(key String, value String)".into());
    columns.push(
        "TI Nested(field String, value String, category String, indicator String, supplier String, indicator_type Int32, context String)"
            .into(),
    );
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({}) ENGINE = MergeTree \
         PARTITION BY toDate(toDateTime(intDiv(Timestamp, 1000))) \
         ORDER BY (Tenant, Timestamp)",
        columns.join(", ")
    )
}

/// The `Distributed` table over every shard's local table; rows go to a shard by their id.
pub fn create_distributed(table: &str, local: &str, cluster: &str, database: &str) -> String {
    let local_name = local.rsplit('.').next().unwrap_or(local);
    format!(
        "CREATE TABLE IF NOT EXISTS {table} AS {local} \
         ENGINE = Distributed({cluster}, {database}, {local_name}, cityHash64(Id))"
    )
}

/// The columns the schema gained since `table` was made, as `ALTER TABLE … ADD COLUMN`s;
/// `present` are the names it has.
pub fn missing_columns(table: &str, present: &[String]) -> Vec<String> {
    columns()
        .into_iter()
        .filter(|(name, _)| !name.contains('.') && !present.iter().any(|p| p == name))
        .map(|(name, kind)| {
            format!(
                "ALTER TABLE {table} ADD COLUMN {} {kind}",
                identifier(&name)
            )
        })
        .collect()
}
