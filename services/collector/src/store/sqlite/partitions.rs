//! The events in partitions: tables of the same columns and indexes, filled one after the
//! other, each up to a number of events. Inserting into a B-tree at random keys (a URL, an
//! address) costs a page read and a page written per event once the index outgrows the page
//! cache: a single table of ten million events stored ~13 k events/s where a fresh one stored
//! ~60 k. Only the newest partition is written, so its indexes stay small whatever the store
//! holds; searches read every partition as one (`UNION ALL`, `search::sqlite`), and retention
//! drops whole partitions.
//!
//! Row ids are unique across partitions (each partition continues the last one's), so a TI
//! match names its event by row id alone; `event_ids` maps each event id to its row id,
//! keeping ids unique across partitions and finding an event by id. The first partition is the table stores made before partitions, `events`.

use rusqlite::Connection;

use crate::search::schema::{COLUMNS, ColumnType};

/// The first partition's table.
pub(super) const FIRST: &str = "events";
/// Events in a partition before the next one starts: its indexes (about 200 MB) stay in the
/// 256 MiB page cache.
pub(super) const PARTITION_EVENTS: u64 = 1_000_000;
/// Partitions at most: a search reads them as one compound SELECT, and SQLite takes at most
/// 500 terms in one. Past it the newest partition grows on (storing slows down, searches
/// keep working); retention makes room.
pub(super) const MAX_PARTITIONS: u64 = 400;

/// Makes what the partitions need: the partition list (the first partition `events`, made
/// or found from before partitions), every partition's columns and indexes as the schema has
/// them now, and the event-id set (filled once from a store made before it).
pub(super) fn ensure(connection: &Connection) -> rusqlite::Result<()> {
    if !table_exists(connection, "partitions")? {
        connection.execute_batch(&format!(
            "CREATE TABLE partitions (name TEXT PRIMARY KEY, first_rowid INTEGER NOT NULL);
             INSERT INTO partitions (name, first_rowid) VALUES ('{FIRST}', 1);"
        ))?;
    }
    for name in names(connection)? {
        if table_exists(connection, &name)? {
            add_missing_columns(connection, &name)?;
        }
        connection.execute_batch(&table_sql(&name))?;
    }
    // Event id and tenant → row id: an id stored once per tenant across partitions (a tenant
    // giving another's ids cannot have that tenant's events dropped as doubles), and found
    // without an index of its own in every partition (one B-tree less per event stored:
    // +13 % stored/s). A set made before (without the tenant or the row ids) is made again.
    let id_set_columns: i64 = connection.query_row(
        "SELECT count(*) FROM pragma_table_info('event_ids') WHERE name IN ('event', 'Tenant')",
        [],
        |row| row.get(0),
    )?;
    if id_set_columns < 2 {
        let tables = names(connection)?;
        let held = tables
            .iter()
            .map(|t| {
                connection.query_row(&format!("SELECT EXISTS (SELECT 1 FROM {t})"), [], |row| {
                    row.get::<_, bool>(0)
                })
            })
            .collect::<rusqlite::Result<Vec<bool>>>()?;
        if held.contains(&true) {
            tracing::info!(
                "the event store builds its set of event ids (once; about a minute per ten million events)"
            );
        }
        connection.execute_batch(
            "DROP TABLE IF EXISTS event_ids;
             CREATE TABLE event_ids (\"Id\" TEXT NOT NULL, \"Tenant\" TEXT NOT NULL,
                 event INTEGER NOT NULL, PRIMARY KEY (\"Id\", \"Tenant\")) WITHOUT ROWID;",
        )?;
        for table in &tables {
            connection.execute_batch(&format!(
                "INSERT OR IGNORE INTO event_ids (\"Id\", \"Tenant\", event) SELECT \"Id\", \"Tenant\", rowid FROM {table}"
            ))?;
        }
    }
    for table in names(connection)? {
        connection.execute_batch(&format!("DROP INDEX IF EXISTS {table}_id"))?;
    }
    Ok(())
}

fn table_exists(connection: &Connection, name: &str) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        [name],
        |row| row.get(0),
    )
}

/// Columns the schema gained since `table` was made, added (empty for events before).
fn add_missing_columns(connection: &Connection, table: &str) -> rusqlite::Result<()> {
    let mut statement = connection.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let present: Vec<String> = statement
        .query_map([table], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for column in COLUMNS
        .iter()
        .filter(|c| !present.iter().any(|p| p == c.name))
    {
        connection.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN \"{}\" {}",
            column.name,
            sql_type(column.kind)
        ))?;
    }
    Ok(())
}

fn sql_type(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "TEXT",
        ColumnType::Integer | ColumnType::Timestamp => "INTEGER",
    }
}

/// A partition table `name` and its indexes. Every search is within one tenant, so the
/// indexes for equality on the common fields lead with it and end with the time (the seed's
/// `WHERE RequestUrl = … ORDER BY Timestamp DESC` reads exactly its rows, in order); they
/// leave out events without the field. Time alone is indexed without the tenant: most
/// events belong to a few tenants, and a tenant-led time index made SQLite read a whole
/// tenant through it, row by row, where a scan is several times faster (a `GROUP BY` over
/// ten million events: 14 s against 8.7 s); retention deletes by time through it.
fn table_sql(name: &str) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("\"{}\" {}", c.name, sql_type(c.kind)))
        .collect();
    let by = |suffix: &str, field: &str| {
        format!(
            "CREATE INDEX IF NOT EXISTS {name}_by_{suffix} ON {name} (\"Tenant\", \"{field}\", \"Timestamp\") WHERE \"{field}\" IS NOT NULL;"
        )
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (rowid INTEGER PRIMARY KEY, {}, \"Extra\" TEXT);
         CREATE INDEX IF NOT EXISTS {name}_by_time ON {name} (\"Timestamp\");
         {} {} {} {}",
        columns.join(", "),
        by("url", "RequestUrl"),
        by("source", "SourceAddress"),
        by("destination", "DestinationAddress"),
        by("hash", "FileHash"),
    )
}

/// The partition tables, oldest first.
pub(super) fn names(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        connection.prepare_cached("SELECT name FROM partitions ORDER BY first_rowid")?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}

/// Where the writer inserts: the newest partition, how full it is, the next row id.
#[derive(Debug)]
pub(super) struct Newest {
    pub name: String,
    events: u64,
    next_rowid: i64,
    limit: u64,
    /// Partitions in the store.
    partitions: u64,
    /// The insert statement's text for `name`.
    pub insert_sql: String,
}

impl Newest {
    /// Reads the newest partition of the store on `connection`; `limit` events fill one.
    pub(super) fn load(connection: &Connection, limit: u64) -> rusqlite::Result<Self> {
        let (name, first_rowid): (String, i64) = connection.query_row(
            "SELECT name, first_rowid FROM partitions ORDER BY first_rowid DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let partitions: i64 =
            connection.query_row("SELECT count(*) FROM partitions", [], |row| row.get(0))?;
        let (events, last): (i64, Option<i64>) = connection.query_row(
            &format!("SELECT count(*), max(rowid) FROM {name}"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(Newest {
            insert_sql: insert_sql(&name),
            name,
            events: events as u64,
            next_rowid: last.map_or(first_rowid, |l| l + 1),
            limit,
            partitions: partitions as u64,
        })
    }

    /// Reads the newest partition again (after a failed transaction: what was counted in it,
    /// or a partition started, is gone).
    pub(super) fn reload(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        *self = Self::load(connection, self.limit)?;
        Ok(())
    }

    /// The row id of the next event, starting a partition first when this one is full.
    pub(super) fn next_rowid(&mut self, connection: &Connection) -> rusqlite::Result<i64> {
        if self.events >= self.limit && self.partitions < MAX_PARTITIONS {
            self.start_next(connection)?;
        }
        Ok(self.next_rowid)
    }

    /// Counts the event just inserted at [`Self::next_rowid`].
    pub(super) fn inserted(&mut self) {
        self.events += 1;
        self.next_rowid += 1;
    }

    fn start_next(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        // Numbered past every name used before (retention drops the oldest).
        let mut number = self.partitions;
        let name = loop {
            let name = format!("events_p{number}");
            let taken: bool = connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = ?1)",
                [&name],
                |row| row.get(0),
            )?;
            if !taken {
                break name;
            }
            number += 1;
        };
        connection.execute_batch(&table_sql(&name))?;
        connection.execute(
            "INSERT INTO partitions (name, first_rowid) VALUES (?1, ?2)",
            rusqlite::params![name, self.next_rowid],
        )?;
        tracing::info!(partition = %name, first_rowid = self.next_rowid, "event store partition started");
        self.insert_sql = insert_sql(&name);
        self.name = name;
        self.events = 0;
        self.partitions += 1;
        Ok(())
    }
}

fn insert_sql(table: &str) -> String {
    let names: Vec<String> = COLUMNS.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let marks = vec!["?"; COLUMNS.len() + 2].join(", ");
    format!(
        "INSERT INTO {table} (rowid, {}, \"Extra\") VALUES ({marks})",
        names.join(", ")
    )
}
