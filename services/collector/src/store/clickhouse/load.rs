//! Loading batches: the events' lookup rows into the lookup table of the server that takes
//! them, then one `RowBinary` insert through the events table (every shard holds its rows
//! when ClickHouse answers), the ids of a load that may repeat an uncertain one looked up
//! first, and the disk buffer's sequence kept beside it.

use std::{collections::HashSet, sync::atomic::Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use xdr_proto::pb::Event;

use super::{
    ClickHouseStore, IDS_PER_LOOKUP, STATEMENT_TIMEOUT, http::ClickHouseError, io_failure,
    json_rows, rows, schema, text_of,
};
use crate::{
    search::clickhouse::{identifier, quoted},
    store::EventStoreError,
};

impl ClickHouseStore {
    /// Inserts `events` (the ones stored already left out when the last insert is uncertain).
    pub(super) async fn insert(&self, events: &[&Event]) -> Result<(), ClickHouseError> {
        self.ensure_ready().await?;
        let stored = if self.uncertain.load(Ordering::Acquire) {
            self.stored_ids(events).await?
        } else {
            HashSet::new()
        };
        let mut seen = HashSet::with_capacity(events.len());
        let mut fresh = Vec::with_capacity(events.len());
        let mut body = Vec::with_capacity(events.len() * 256);
        for event in events {
            // Keys borrowed: no copy per event unless ids were looked up.
            let doubled = !seen.insert((event.tenant.as_str(), event.id.as_str()));
            if doubled
                || (!stored.is_empty()
                    && stored.contains(&(event.tenant.clone(), event.id.clone())))
            {
                continue;
            }
            rows::encode(event, &self.nullable, &mut body);
            fresh.push(*event);
        }
        // The lookup rows first, and the events only once they are in: no event is stored
        // without its rows, so a search narrowed by a value finds every stored event. A row
        // whose event is not in yet (its insert failed) reads no event; it only takes a
        // place among the times a search's lookup keeps until the event follows, and is
        // written again then (a few doubled rows, only after a failure).
        let mut lookups = Vec::with_capacity(fresh.len() * 64);
        rows::encode_lookups(&fresh, &mut lookups);
        if !lookups.is_empty() {
            let sql = format!(
                "INSERT INTO {} (Tenant, Field, Value, Timestamp) FORMAT RowBinary",
                self.target.local_lookup_table()
            );
            self.insert_rows(&sql, false, lookups).await?;
        }
        if !body.is_empty() {
            let names: Vec<String> = schema::columns()
                .iter()
                .map(|(name, _)| identifier(name))
                .collect();
            let sql = format!(
                "INSERT INTO {} ({}) FORMAT RowBinary",
                self.target.table(),
                names.join(", ")
            );
            self.insert_rows(&sql, self.target.cluster.is_some(), body)
                .await?;
        }
        self.uncertain.store(false, Ordering::Release);
        Ok(())
    }

    /// Runs the insert `sql` of the rows `body` on the first host that takes it; with
    /// `distributed`, answered once every shard holds its rows.
    async fn insert_rows(
        &self,
        sql: &str,
        distributed: bool,
        body: Vec<u8>,
    ) -> Result<(), ClickHouseError> {
        let mut settings = vec![("query", sql)];
        if distributed {
            // Answered once every shard holds its rows, not once they are queued to go.
            settings.push(("insert_distributed_sync", "1"));
        }
        let body = Bytes::from(body);
        let mut last = None;
        for (i, host) in self.hosts().enumerate() {
            match self.http.send(host, &settings, body.clone()).await {
                Ok(answer) => {
                    // An insert answers nothing; its end says every row is in.
                    let read = tokio::time::timeout(
                        STATEMENT_TIMEOUT,
                        http_body_util::Limited::new(answer, 1 << 20).collect(),
                    )
                    .await;
                    if !matches!(read, Ok(Ok(_))) {
                        self.uncertain.store(true, Ordering::Release);
                        return Err(ClickHouseError::Protocol(
                            "the insert's answer did not end".into(),
                        ));
                    }
                    return Ok(());
                }
                Err(error) => {
                    self.uncertain.store(true, Ordering::Release);
                    self.preferred.fetch_add(i + 1, Ordering::Relaxed);
                    // A shard whose database or table is gone (made anew, say) has them
                    // made again before the next insert (cheap: statements that find them).
                    self.ready.store(false, Ordering::Release);
                    // Only a host that could not be reached was sent nothing: try the next.
                    if !matches!(error, ClickHouseError::Unreachable { .. }) {
                        return Err(error);
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.expect("a target has a host"))
    }

    /// Which of `events` ClickHouse holds already, as (tenant, id).
    async fn stored_ids(
        &self,
        events: &[&Event],
    ) -> Result<HashSet<(String, String)>, ClickHouseError> {
        let mut stored = HashSet::new();
        for chunk in events.chunks(IDS_PER_LOOKUP) {
            let tenants: HashSet<&str> = chunk.iter().map(|e| e.tenant.as_str()).collect();
            let from = chunk.iter().map(|e| e.timestamp_ms).min().unwrap_or(0);
            let to = chunk.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
            let list = |items: &mut dyn Iterator<Item = &str>| {
                items.map(quoted).collect::<Vec<_>>().join(", ")
            };
            let sql = format!(
                "SELECT Tenant, Id FROM {} WHERE Tenant IN ({}) AND Timestamp >= {from} AND Timestamp <= {to} AND Id IN ({}) FORMAT JSONEachRow",
                self.target.table(),
                list(&mut tenants.into_iter()),
                list(&mut chunk.iter().map(|e| e.id.as_str())),
            );
            let answer = self
                .execute_anywhere(&sql, &[("max_query_size", "1048576")])
                .await?;
            for row in json_rows(&answer)? {
                stored.insert((text_of(&row, "Tenant"), text_of(&row, "Id")));
            }
        }
        Ok(stored)
    }

    pub(super) fn record_loaded_through(&self, through: u64) -> Result<(), EventStoreError> {
        let temporary = self.loaded_through.with_extension("new");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, through.to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.loaded_through)?;
            if let Some(dir) = self.loaded_through.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| io_failure("recording what it holds", &e))
    }
}
