//! Retention in ClickHouse: whole day partitions dropped on every shard once all of their
//! day is past the cutoff.

use super::{ClickHouseStore, http::ClickHouseError, unescape_tsv};
use crate::search::clickhouse::quoted;

impl ClickHouseStore {
    /// Drops the day partitions before `day` (`YYYY-MM-DD`) on every host; the rows dropped.
    /// (A partition is named by its day, which sorts as text; the parts' `max_date` is not
    /// kept for a partition key of our own in 18.16.)
    pub(super) async fn drop_days_before(&self, day: &str) -> Result<u64, ClickHouseError> {
        let local = self.target.local_table();
        let (database, table) = local.split_once('.').unwrap_or_default();
        let mut dropped = 0;
        for host in &self.target.hosts {
            let parts = self
                .execute(
                    host,
                    &format!(
                        "SELECT partition, sum(rows) FROM system.parts WHERE database = {} AND table = {} AND active AND partition < {} GROUP BY partition FORMAT TSV",
                        quoted(database),
                        quoted(table),
                        quoted(day)
                    ),
                    &[],
                )
                .await?;
            for line in parts.lines() {
                let Some((partition, rows)) = line.split_once('\t') else {
                    continue;
                };
                self.execute(
                    host,
                    &format!(
                        "ALTER TABLE {local} DROP PARTITION {}",
                        quoted(&unescape_tsv(partition))
                    ),
                    &[],
                )
                .await?;
                dropped += rows.parse::<u64>().unwrap_or(0);
            }
        }
        Ok(dropped)
    }
}

/// The UTC day of `timestamp_ms` as `YYYY-MM-DD`.
pub(super) fn chrono_day(timestamp_ms: i64) -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = timestamp_ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(chrono_day(0), "1970-01-01");
        assert_eq!(chrono_day(1_767_226_200_000), "2026-01-01");
        assert_eq!(chrono_day(951_782_400_000), "2000-02-29");
    }
}
