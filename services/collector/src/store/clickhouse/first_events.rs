//! The first events of a search that names a value (the seed's `SELECT * … WHERE RequestUrl
//! = '…' ORDER BY Timestamp DESC LIMIT 250`), read shard by shard. Through the `Distributed`
//! table each shard reads the granules of its own first N times: 2N granules for N events
//! over two shards, and a `SELECT *` granule is some 70 files in 18.16. Here each shard's
//! lookup answers its first N times, the first N of all of them say which shard holds which,
//! and each shard reads only the granules of its share (the seed's SELECT over 20 M events
//! took 243–245 ms against 416–546 ms, `xdr-bench collector`, runs alternated), and of them
//! only the tenant, the time, the raw event and each event's packed row (`rows`), not every
//! column. The rows are held, filtered and ordered here, so only short answers go this way.

use bytes::Bytes;
use futures_util::future::try_join_all;

use serde_json::{Map, Value};

use super::{
    ClickHouseStore,
    answer::{Answer, row_of, unpacked},
    http::ClickHouseError,
    json_rows,
    rows::BESIDE_PACKED,
    schema::PACKED_ROW,
    store_error, text_of,
};
use crate::{
    search::{
        clickhouse::{Narrowing, identifier, quoted, render},
        lookup::Lookup,
        query::Search,
    },
    store::{EventStoreError, Found},
};

/// Most events a search may ask for to be read this way.
pub(super) const MOST_FIRST: u64 = 1_000;
/// Most bytes of rows held to be ordered; past it the search is read the usual way.
const MOST_HELD_BYTES: usize = 64 << 20;

impl ClickHouseStore {
    /// Answers `search`, a `SELECT *` whose `lookup` wants the first `count` events in time
    /// order (newest first when `descending`). `Ok(false)`: the rows were too large to hold,
    /// and nothing was handed to `sink`.
    pub(super) async fn first_events(
        &self,
        search: &Search,
        lookup: &Lookup<'_>,
        (descending, count): (bool, u64),
        settings: &[(&str, &str)],
        piece_bytes: usize,
        sink: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
    ) -> Result<bool, EventStoreError> {
        let hosts = &self.target.hosts;
        let order = if descending { "DESC" } else { "ASC" };
        let values: Vec<String> = lookup.values.iter().map(|v| quoted(v)).collect();
        let sql = format!(
            "SELECT DISTINCT Timestamp FROM {} WHERE Tenant = {} AND Field = {} AND Value IN ({}) \
             ORDER BY Timestamp {order} LIMIT {count} FORMAT JSONEachRow",
            self.target.lookup_table(),
            quoted(lookup.tenant),
            quoted(lookup.field),
            values.join(", ")
        );
        let answers = try_join_all(hosts.iter().map(|host| self.execute(host, &sql, settings)))
            .await
            .map_err(store_error)?;
        let mut times: Vec<(i64, usize)> = Vec::new();
        for (shard, answer) in answers.iter().enumerate() {
            for row in json_rows(answer).map_err(store_error)? {
                if let Ok(time) = text_of(&row, "Timestamp").parse() {
                    times.push((time, shard));
                }
            }
        }
        let in_order = |a: i64, b: i64| if descending { b.cmp(&a) } else { a.cmp(&b) };
        times.sort_unstable_by(|a, b| in_order(a.0, b.0));
        // The first `count`, and those at the same time as the last of them (which of the
        // events of one time come first is the engine's to choose).
        let last = times
            .get((count as usize).saturating_sub(1))
            .map(|&(t, _)| t);
        let first: Vec<(i64, usize)> = (times.iter().enumerate())
            .take_while(|&(i, &(time, _))| (i as u64) < count || Some(time) == last)
            .map(|(_, &found)| found)
            .collect();

        // Each shard's rows of its own times, in the search's order; the offset is applied
        // once they are together.
        let mut each = search.clone();
        each.offset = 0;
        each.limit = count;
        let local = self.target.local_table();
        let reads = (hosts.iter().enumerate()).filter_map(|(shard, host)| {
            let own: Vec<i64> = (first.iter())
                .filter(|(_, s)| *s == shard)
                .map(|(t, _)| *t)
                .collect();
            (!own.is_empty()).then(|| self.rows_at(host, &each, lookup, &local, own, settings))
        });
        let Some(answers) = try_join_all(reads)
            .await?
            .into_iter()
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(false);
        };
        // The lookup's filter holds for each row (packed rows are read by time alone), and
        // its time orders it.
        let mut rows = Vec::new();
        for row in answers.into_iter().flatten() {
            if found_by(lookup, &row) {
                let time = row.get("Timestamp").and_then(Value::as_i64).unwrap_or(0);
                rows.push((time, row));
            }
        }
        rows.sort_by(|a, b| in_order(a.0, b.0));
        let mut answer = Answer::new(None, piece_bytes);
        for (_, row) in rows
            .into_iter()
            .skip(search.offset as usize)
            .take(search.limit as usize)
        {
            answer.take_row(row, sink)?;
        }
        answer.finish(sink)?;
        Ok(true)
    }

    /// The rows of the tenant's events at `times` on `host`'s `local` table: read from
    /// their packed rows, or, where the store holds events from before packed rows (an empty
    /// one), every column of those `search` finds. Packed rows are read by time alone: the
    /// search's filter (the lookup's) is then a look at each row here, and ClickHouse reads
    /// no column of it (a URL is some 20 KB a granule). `None`: the answer is too large to
    /// hold, and the search is read the usual way.
    async fn rows_at(
        &self,
        host: &str,
        search: &Search,
        lookup: &Lookup<'_>,
        local: &str,
        times: Vec<i64>,
        settings: &[(&str, &str)],
    ) -> Result<Option<Vec<Map<String, Value>>>, EventStoreError> {
        let at: Vec<String> = times.iter().map(i64::to_string).collect();
        let beside: Vec<String> = BESIDE_PACKED.iter().map(|c| identifier(c)).collect();
        let packed = format!(
            "SELECT {}, {PACKED_ROW} FROM {local} WHERE Tenant = {} AND Timestamp IN ({}) \
             FORMAT JSONEachRow",
            beside.join(", "),
            quoted(lookup.tenant),
            at.join(", ")
        );
        let Some(answer) = self.held_answer(host, packed, settings).await? else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        for line in answer.lines() {
            match row_of(line.as_bytes())?.map(unpacked).transpose()? {
                Some(Some(row)) => rows.push(row),
                Some(None) => {
                    let sql = render(search, local, Some(Narrowing::Times(&times)));
                    let Some(answer) = self.held_answer(host, sql, settings).await? else {
                        return Ok(None);
                    };
                    let rows = answer.lines().map(|line| row_of(line.as_bytes()));
                    return Ok(Some(
                        rows.filter_map(Result::transpose)
                            .collect::<Result<_, _>>()?,
                    ));
                }
                None => {}
            }
        }
        Ok(Some(rows))
    }

    /// The answer to `sql` on `host`, read whole; `None` when larger than a shard's share of
    /// what is held here.
    async fn held_answer(
        &self,
        host: &str,
        sql: String,
        settings: &[(&str, &str)],
    ) -> Result<Option<String>, EventStoreError> {
        match self.http.text(host, settings, Bytes::from(sql)).await {
            // Each shard's share of what is held at most.
            Ok(answer) if answer.len() <= MOST_HELD_BYTES / self.target.hosts.len() => {
                Ok(Some(answer))
            }
            // Larger than one answer read whole may be (16 MiB), or than is held.
            Ok(_) | Err(ClickHouseError::Protocol(_)) => Ok(None),
            Err(error) => Err(store_error(error)),
        }
    }
}

/// Whether an event's row holds the lookup's tenant and one of its values: when the lookup
/// is the search's whole filter (`Lookup::first`), whether the search finds the event.
fn found_by(lookup: &Lookup<'_>, row: &Map<String, Value>) -> bool {
    let text = |name: &str| row.get(name).and_then(Value::as_str);
    text("Tenant") == Some(lookup.tenant)
        && text(lookup.field).is_some_and(|value| lookup.values.contains(&value))
}
