//! The one schema of stored events: every column a search may name, with its type. The SQL
//! checker reads it to refuse unknown names, and every storage engine builds its table from
//! it. A mapped field outside it is kept in `Extra` (`Extra['name']`); TI matches are the
//! `TI.*` columns, one row per match.

/// How a column's values compare and sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
}

/// A column of the events table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnType::Text,
    }
}

const fn integer(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnType::Integer,
    }
}

/// The event columns, in the order `SELECT *` answers them.
pub const COLUMNS: &[Column] = &[
    text("Id"),
    Column {
        name: "Timestamp",
        kind: ColumnType::Timestamp,
    },
    text("Tenant"),
    text("Collector"),
    text("Name"),
    text("Message"),
    text("DeviceVendor"),
    text("DeviceProduct"),
    text("RequestUrl"),
    text("RequestMethod"),
    text("SourceAddress"),
    integer("SourcePort"),
    text("SourceUserName"),
    text("DestinationAddress"),
    integer("DestinationPort"),
    text("DestinationHostName"),
    text("FileName"),
    text("FileHash"),
    text("DeviceCustomString1"),
    text("DeviceCustomString1Label"),
    text("DeviceCustomString2"),
    text("DeviceCustomString2Label"),
    text("DeviceCustomString3"),
    text("DeviceCustomString3Label"),
    text("DeviceCustomString4"),
    text("DeviceCustomString4Label"),
    text("DeviceCustomString5"),
    text("DeviceCustomString5Label"),
    text("DeviceCustomString6"),
    text("DeviceCustomString6Label"),
    text("Raw"),
    // How enrichment ended for the event: NOT_ENRICHED, COMPLETE, TIMED_OUT or
    // SOURCE_UNAVAILABLE (ours; KUMA has no such column).
    text("EnrichmentStatus"),
];

/// The columns of an event's TI matches, named `TI.<name>`.
pub const TI_COLUMNS: &[&str] = &["field", "value", "category", "indicator", "supplier"];

/// The column named `name` (as KUMA spells it; names are case-sensitive, as in ClickHouse).
pub fn column(name: &str) -> Option<Column> {
    COLUMNS.iter().copied().find(|c| c.name == name)
}

/// The TI column named `name` (`category` for `TI.category`).
pub fn ti_column(name: &str) -> Option<&'static str> {
    TI_COLUMNS.iter().copied().find(|c| *c == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let mut names: Vec<_> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
        assert_eq!(column("SourcePort").unwrap().kind, ColumnType::Integer);
        assert!(column("sourceport").is_none());
        assert_eq!(ti_column("category"), Some("category"));
    }
}
