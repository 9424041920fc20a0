//! The events table in ClickHouse, from the one schema (`search::schema`): a `MergeTree`
//! partitioned by day and ordered by (tenant, time), so a search — always within a tenant,
//! mostly over recent time — reads only its tenant's rows of the days it names, and
//! retention drops whole days. `Extra` and the TI matches are `Nested` columns. Only types
//! ClickHouse 18.16 has: the time is milliseconds in an `Int64` (no `DateTime64` there).

use crate::search::{
    clickhouse::{identifier, quoted},
    lookup::LOOKUP_FIELDS,
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
        // Not a search column: each event's other columns as one JSON text (`rows`).
        // Empty in the rows of a store made before it.
        (PACKED_ROW, "String"),
    ] {
        columns.push((name.to_owned(), kind));
    }
    columns
}

/// The column of each event's packed row.
pub const PACKED_ROW: &str = "PackedRow";

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
         ORDER BY (Tenant, Timestamp) SETTINGS index_granularity = {EVENTS_GRANULE}",
        columns.join(", ")
    )
}

/// Rows in a granule of the events table, the least ClickHouse reads. A search naming a
/// value reads the granules holding the times its lookup finds (`search::lookup`): the
/// seed's 250 newest events are 250 granules wherever they lie, and of each the whole of
/// the packed rows' compressed block, a granule's worth (about 250 bytes an event). At
/// 2,048 one shard decompressed 75 MB of packed rows for its 125 events; at 512, a fourth.
/// Smaller granules cost an index (marks) of 16 bytes a granule a column file: about 4 MB
/// a file per 100 M events. Columns of a few bytes an event (the time, the tenant) are
/// read a 64 KiB compressed block at a time whatever the granule.
const EVENTS_GRANULE: u32 = 512;

/// The lookup table of a server: for each of its events and each field of `search::lookup`'s
/// `LOOKUP_FIELDS` the event holds, its tenant, the field's name, its value and its time,
/// ordered so that a value's times are one range. Partitioned by day as the events, so
/// retention drops both alike. A value's times are a few rows in each part: small granules
/// (a lookup reads at least one a part).
pub fn create_lookup(table: &str) -> String {
    let columns: Vec<String> = (LOOKUP_TABLE_COLUMNS.iter())
        .map(|(name, kind)| format!("{name} {kind}"))
        .collect();
    let key: Vec<&str> = LOOKUP_TABLE_COLUMNS.iter().map(|(name, _)| *name).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({}) ENGINE = MergeTree \
         PARTITION BY toDate(toDateTime(intDiv(Timestamp, 1000))) \
         ORDER BY ({}) SETTINGS index_granularity = 1024",
        columns.join(", "),
        key.join(", ")
    )
}

/// The lookup table's columns with their types, in the order of its key and of its rows.
pub const LOOKUP_TABLE_COLUMNS: [(&str, &str); 4] = [
    ("Tenant", "String"),
    ("Field", "String"),
    ("Value", "String"),
    ("Timestamp", "Int64"),
];

/// The lookup rows `events` (an events table) hold, for `INSERT INTO lookup …`.
pub fn lookups_of(events: &str) -> String {
    let selects: Vec<String> = LOOKUP_FIELDS
        .iter()
        .map(|field| {
            let field = identifier(field);
            format!(
                "SELECT Tenant, {} AS Field, assumeNotNull({field}) AS Value, Timestamp \
                 FROM {events} WHERE isNotNull({field})",
                quoted(field.trim_matches('`'))
            )
        })
        .collect();
    selects.join(" UNION ALL ")
}

/// The `Distributed` table over every shard's local table, searched (the collector writes
/// to each shard's own; rows written through it would go to a shard by their id).
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
