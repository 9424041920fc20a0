//! Retention in ClickHouse: whole day partitions of the events and of their lookup rows
//! dropped on every shard once all of their day is past the cutoff.

use super::{ClickHouseStore, http::ClickHouseError, json_rows, text_of};
use crate::search::clickhouse::quoted;

impl ClickHouseStore {
    /// Drops on every host the day partitions wholly before `cutoff_ms`; the rows dropped.
    /// (A partition is named by its day, which sorts as text; the parts' `max_date` is not
    /// kept for a partition key of our own in 18.16. ClickHouse names the cutoff's day.)
    pub(super) async fn drop_days_before(&self, cutoff_ms: i64) -> Result<u64, ClickHouseError> {
        let mut dropped = 0;
        for host in &self.target.hosts {
            dropped += self
                .drop_partitions_before(host, &self.target.local_table(), cutoff_ms)
                .await?;
            // The lookup rows of those days go with them (their rows are not events).
            self.drop_partitions_before(host, &self.target.lookup_table(), cutoff_ms)
                .await?;
        }
        Ok(dropped)
    }

    /// Drops the day partitions of `local` on `host` wholly before `cutoff_ms`; their rows.
    async fn drop_partitions_before(
        &self,
        host: &str,
        local: &str,
        cutoff_ms: i64,
    ) -> Result<u64, ClickHouseError> {
        let (database, table) = local.split_once('.').unwrap_or_default();
        let mut dropped = 0;
        let parts = self
            .execute(
                host,
                &format!(
                    "SELECT partition, sum(rows) AS rows FROM system.parts WHERE database = {} AND table = {} AND active AND partition < toString(toDate(toDateTime(intDiv({cutoff_ms}, 1000)))) GROUP BY partition FORMAT JSONEachRow",
                    quoted(database),
                    quoted(table),
                ),
                &[],
            )
            .await?;
        for part in json_rows(&parts)? {
            let partition = text_of(&part, "partition");
            self.execute(
                host,
                &format!("ALTER TABLE {local} DROP PARTITION {}", quoted(&partition)),
                &[],
            )
            .await?;
            dropped += text_of(&part, "rows").parse::<u64>().unwrap_or(0);
        }
        Ok(dropped)
    }
}
