//! Loading batches: a share of the events to each server, as `Native` inserts into its
//! own tables — the share's lookup rows, then its events — all answered before the load
//! is; the ids of a load that may repeat an uncertain one looked up first, and the disk
//! buffer's sequence kept beside it.

use std::{collections::HashSet, sync::atomic::Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use xdr_proto::pb::Event;

use super::{
    BLOCK_HEADER_ROOM, ClickHouseStore, IDS_PER_LOOKUP, STATEMENT_TIMEOUT, http::ClickHouseError,
    io_failure, json_rows, rows, text_of,
};
use crate::{search::clickhouse::quoted, store::EventStoreError};

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
        let fresh: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|event| {
                // Keys borrowed: no copy per event unless ids were looked up.
                let doubled = !seen.insert((event.tenant.as_str(), event.id.as_str()));
                !doubled
                    && (stored.is_empty()
                        || !stored.contains(&(event.tenant.clone(), event.id.clone())))
            })
            .collect();
        // Each server is sent its share into its own tables, all at once. Through the
        // `Distributed` table, the server taking the insert parsed every row and sent each
        // other shard its share over TCP, waiting for it (about half of a shard's CPU in
        // `perf` during `xdr-bench collector`). Where an event lies matters to no search
        // (they read every shard), but it is always the same server for the same event: an
        // event sent again after a failed load lands where its lookup rows may already be,
        // never leaving rows on a server without their event.
        let hosts = &self.target.hosts;
        let mut shares: Vec<Vec<&Event>> = vec![Vec::new(); hosts.len()];
        for event in fresh {
            shares[shard_of(event, hosts.len())].push(event);
        }
        // In the table's order: ClickHouse sorts an insert that is not, copying every
        // column (its `permute` was a tenth of an insert's time in `perf`); a share is
        // mostly in order already (the batches of each stream are), which this sort finds.
        for share in &mut shares {
            share.sort_by(|a, b| {
                (a.tenant.as_str(), a.timestamp_ms).cmp(&(b.tenant.as_str(), b.timestamp_ms))
            });
        }
        let inserts = (hosts.iter().zip(&shares))
            .filter(|(_, events)| !events.is_empty())
            .map(|(host, events)| self.insert_on(host, events));
        // Every server's insert is seen to its end, failed or not: stopping the others at the
        // first failure would leave inserts landing unseen while the retry looks its ids up,
        // and those events would be stored twice.
        let ends = futures_util::future::join_all(inserts).await;
        ends.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.uncertain.store(false, Ordering::Release);
        Ok(())
    }

    /// Inserts `events` into the local tables of `host`: their lookup rows, then the events.
    /// The events go only once their rows are in: no event is stored without them, so a
    /// search narrowed by a value finds every stored event. A row whose event is not in yet
    /// (its insert failed) reads no event; it only takes a place among the times a search's
    /// lookup keeps until the event follows, and is written again then (a few doubled rows,
    /// only after a failure).
    async fn insert_on(&self, host: &str, events: &[&Event]) -> Result<(), ClickHouseError> {
        // The events' block is made in the columns kept from the last load, then copied
        // into a body with room for it whole (growing a body of a hundred thousand rows
        // copied it over and over, a fifth of the loader's time in `perf`). The lookup rows
        // are gathered as the events are added, and sent first.
        let mut block = self.spare_block.take();
        let mut lookup_rows = rows::LookupRows::default();
        for event in events {
            block.push(event, &self.nullable, &mut lookup_rows);
        }
        let mut body = self.spare_bodies.take(block.len() + BLOCK_HEADER_ROOM);
        block.write_to(&mut body);
        self.spare_block.keep(block);
        let mut lookups = self
            .spare_bodies
            .take(lookup_rows.most_bytes() + BLOCK_HEADER_ROOM);
        lookup_rows.encode(&mut lookups);
        if !lookups.is_empty() {
            let sql = format!("INSERT INTO {} FORMAT Native", self.target.lookup_table());
            self.insert_rows(host, &sql, lookups).await?;
        }
        let sql = format!("INSERT INTO {} FORMAT Native", self.target.local_table());
        self.insert_rows(host, &sql, body).await
    }

    /// Runs the insert `sql` of the rows `body` on `host`. A failure leaves the store
    /// uncertain of what landed, and has the tables looked for again before the next insert
    /// (a server whose database or table is gone, made anew say, has them made again; cheap:
    /// statements that find them).
    async fn insert_rows(
        &self,
        host: &str,
        sql: &str,
        body: Vec<u8>,
    ) -> Result<(), ClickHouseError> {
        let failed = |error| {
            self.uncertain.store(true, Ordering::Release);
            self.ready.store(false, Ordering::Release);
            error
        };
        let body = Bytes::from(body);
        let answer = self
            .http
            .send(host, &[("query", sql)], body.clone())
            .await
            .map_err(failed)?;
        // An insert answers nothing; its end says every row is in.
        let read = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            http_body_util::Limited::new(answer, 1 << 20).collect(),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) {
            return Err(failed(ClickHouseError::Protocol(
                "the insert's answer did not end".into(),
            )));
        }
        self.keep_body(body);
        Ok(())
    }

    /// Keeps `body`, sent, for a later insert, once the HTTP exchange has let go of it.
    fn keep_body(&self, body: Bytes) {
        if let Ok(body) = body.try_into_mut() {
            self.spare_bodies.keep(body.into());
        }
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

/// The server of `shards` an event goes to: by its tenant and id, FNV-1a (a fixed function,
/// so the same event goes to the same server after a restart or an upgrade).
fn shard_of(event: &Event, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in (event.tenant.bytes()).chain([0]).chain(event.id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_goes_to_the_same_shard_every_time_and_events_spread() {
        let event = |id: &str| Event {
            id: id.into(),
            tenant: "Main".into(),
            ..Default::default()
        };
        let first = shard_of(&event("e-1"), 2);
        assert!((0..10).all(|_| shard_of(&event("e-1"), 2) == first));
        let on_first = (0..1000)
            .filter(|k| shard_of(&event(&format!("e-{k}")), 2) == 0)
            .count();
        assert!(
            (400..600).contains(&on_first),
            "{on_first} of 1000 on shard 0"
        );
        assert_eq!(shard_of(&event("e-1"), 1), 0);
    }
}
