//! The lookup table on each server (`schema::create_lookup`), made when absent. A store made
//! before it has its events' rows written first — an hour of events a statement, or a slice
//! of an hour of about a million, each well within the statement timeout — into a table of
//! another name renamed when whole: a start that stops midway makes them again, and no
//! search is narrowed by a lookup that misses events.

use super::{ClickHouseStore, http::ClickHouseError, json_rows, schema, text_of};
use crate::search::clickhouse::quoted;

const HOUR_MS: i64 = 3_600_000;
/// Events whose lookup rows one statement writes at most (2.3 s here for two fields each; the
/// statement timeout is 60 s).
const EVENTS_PER_STATEMENT: i64 = 1_000_000;

impl ClickHouseStore {
    /// Makes the lookup table on `host` when it has none, with the rows of the events there.
    pub(super) async fn ensure_lookup(&self, host: &str) -> Result<(), ClickHouseError> {
        let target = &self.target;
        let lookup = target.lookup_table();
        if self.table_exists(host, &lookup).await? {
            return Ok(());
        }
        let filling = format!("{lookup}_filling");
        self.execute(host, &format!("DROP TABLE IF EXISTS {filling}"), &[])
            .await?;
        self.execute(host, &schema::create_lookup(&filling), &[])
            .await?;
        let events = target.local_table();
        let hours = self
            .execute(
                host,
                &format!(
                    "SELECT intDiv(Timestamp, {HOUR_MS}) AS hour, count() AS events FROM {events} GROUP BY hour ORDER BY hour FORMAT JSONEachRow"
                ),
                &[],
            )
            .await?;
        let hours = json_rows(&hours)?;
        if !hours.is_empty() {
            tracing::info!(
                host,
                hours = hours.len(),
                "the event store writes the lookup rows of the events it held before it kept them (once)"
            );
        }
        for hour in hours {
            let number = |name| text_of(&hour, name).parse::<i64>().unwrap_or_default();
            // An hour of many events in equal slices of time, each well within a statement's
            // time limit.
            let slices = (number("events") / EVENTS_PER_STATEMENT + 1).min(HOUR_MS);
            let start = number("hour") * HOUR_MS;
            for slice in 0..slices {
                let (from, to) = (
                    start + HOUR_MS * slice / slices,
                    start + HOUR_MS * (slice + 1) / slices,
                );
                let within = format!(
                    "(SELECT * FROM {events} WHERE Timestamp >= {from} AND Timestamp < {to})"
                );
                self.execute(
                    host,
                    &format!("INSERT INTO {filling} {}", schema::lookups_of(&within)),
                    &[],
                )
                .await?;
            }
        }
        self.execute(host, &format!("RENAME TABLE {filling} TO {lookup}"), &[])
            .await?;
        Ok(())
    }

    async fn table_exists(&self, host: &str, table: &str) -> Result<bool, ClickHouseError> {
        let (database, name) = table.split_once('.').unwrap_or_default();
        let answer = self
            .execute(
                host,
                &format!(
                    "SELECT count() AS n FROM system.tables WHERE database = {} AND name = {} FORMAT JSONEachRow",
                    quoted(database),
                    quoted(name)
                ),
                &[],
            )
            .await?;
        Ok(json_rows(&answer)?
            .first()
            .is_some_and(|row| text_of(row, "n") != "0"))
    }
}
