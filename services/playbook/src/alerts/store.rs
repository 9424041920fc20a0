//! Alerts and incidents in the service's redb file. Records are keyed `tenant \0 id` with
//! time-ordered ids, so a tenant's listing is one range read backwards, newest first, and no
//! tenant's request reads another's records.

use std::{
    collections::HashMap,
    ops::Bound,
    sync::{Arc, Mutex},
};

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use xdr_mesh::{quote::truncated, store::StoreFailure};
use xdr_proto::pb::{
    Alert, AlertStatus, HistoryEntry, Incident, PageInfo, PageRequest, PlaybookRun,
    history_entry::Change,
};

use super::{error::AlertError, raise::RaisePolicy};
use xdr_mesh::clock::now_ms;

pub(super) type Table = TableDefinition<'static, &'static str, &'static [u8]>;
pub(super) const ALERTS: Table = TableDefinition::new("alerts");
pub(super) const INCIDENTS: Table = TableDefinition::new("incidents");
/// `tenant \0 event id` → the raising time (8 bytes, big-endian ms) and the alert's id.
pub(super) const RAISED: Table = TableDefinition::new("raised_events");
/// `tenant \0 grouping key` → the open alert that events with that key join.
pub(super) const OPEN_GROUPS: Table = TableDefinition::new("open_alert_groups");

/// Alerts one tenant may hold; past it raising is refused until some are deleted.
pub(super) const MAX_ALERTS_PER_TENANT: usize = 1_000_000;
/// History entries an alert or incident keeps; past it changes and launches are refused.
pub const MAX_HISTORY: usize = 1000;
/// An alert or incident record at most, encoded: a GetAlert answer stays under the 4 MiB a
/// gRPC client takes. Past it no more history is written.
pub const MAX_RECORD_BYTES: usize = 3 << 20;
/// One launch as the history keeps it, encoded, at most: the items past it are counted, not
/// kept (the launch's own answer has them all).
const MAX_LAUNCH_ENTRY_BYTES: usize = 16 << 10;
/// One listing page's records, encoded, at most; the page ends there.
const MAX_PAGE_BYTES: usize = 2 << 20;
/// Records read for one listing page at most (a filter that matches little stops there and
/// hands back a token to go on from).
const MAX_SCANNED: usize = 20_000;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub struct AlertStore {
    pub(super) db: Arc<Database>,
    pub(super) policy: RaisePolicy,
    /// Alerts per tenant, counted at open and kept up to date by raising.
    pub(super) counts: Mutex<HashMap<String, usize>>,
    /// Incidents per tenant, likewise.
    pub(super) incident_counts: Mutex<HashMap<String, usize>>,
}

pub(super) fn key(tenant: &str, id: &str) -> String {
    format!("{tenant}\0{id}")
}

/// Which alerts (or incidents) a listing wants.
#[derive(Default)]
pub struct AlertFilter {
    pub statuses: Vec<i32>,
    pub min_severity: i32,
    pub since_ms: i64,
    pub until_ms: i64,
    pub assignee: String,
}

impl AlertFilter {
    /// Whether an alert or incident with these fields is wanted.
    pub(super) fn admits(
        &self,
        status: i32,
        severity: i32,
        created_at_ms: i64,
        assignee: &str,
    ) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && severity >= self.min_severity
            && (self.since_ms == 0 || created_at_ms >= self.since_ms)
            && (self.until_ms == 0 || created_at_ms < self.until_ms)
            && (self.assignee.is_empty() || assignee == self.assignee)
    }
}

impl AlertStore {
    pub fn open(db: Arc<Database>, policy: RaisePolicy) -> Result<Self, AlertError> {
        let write = db.begin_write().map_err(StoreFailure::new)?;
        for table in [ALERTS, INCIDENTS, RAISED, OPEN_GROUPS] {
            write.open_table(table).map_err(StoreFailure::new)?;
        }
        write.commit().map_err(StoreFailure::new)?;
        let counts = count_by_tenant(&db, ALERTS)?;
        let incident_counts = count_by_tenant(&db, INCIDENTS)?;
        Ok(AlertStore {
            db,
            policy,
            counts: Mutex::new(counts),
            incident_counts: Mutex::new(incident_counts),
        })
    }

    pub fn get(&self, tenant: &str, id: &str) -> Result<Alert, AlertError> {
        read_record(&self.db, ALERTS, &key(tenant, id))?.ok_or_else(|| AlertError::NotFound {
            what: "alert",
            id: id.to_owned(),
        })
    }

    /// A page of `tenant`'s alerts that `filter` admits, newest first.
    pub fn list(
        &self,
        tenant: &str,
        filter: &AlertFilter,
        page: Option<&PageRequest>,
    ) -> Result<(Vec<Alert>, PageInfo), AlertError> {
        list_records(&self.db, ALERTS, tenant, page, |a: &Alert| {
            filter.admits(a.status, a.severity, a.created_at_ms, &a.assignee)
        })
    }

    /// Sets the status and the assignee when given, each change written to the history.
    pub fn update(
        &self,
        tenant: &str,
        id: &str,
        status: Option<AlertStatus>,
        assignee: Option<String>,
        by: &str,
    ) -> Result<Alert, AlertError> {
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        let alert = modify(
            &write,
            ALERTS,
            &key(tenant, id),
            "alert",
            id,
            |alert: &mut Alert| {
                let changes = record_changes(
                    &mut alert.history,
                    &mut alert.status,
                    &mut alert.assignee,
                    status,
                    assignee,
                    by,
                )?;
                Ok(changes)
            },
        )?;
        if alert.status == AlertStatus::Closed as i32 {
            // A closed alert takes no more events: the next one with its key opens a new one.
            let mut groups = write.open_table(OPEN_GROUPS).map_err(StoreFailure::new)?;
            let group = key(tenant, &alert.grouping_key);
            let points_here = groups
                .get(group.as_str())
                .map_err(StoreFailure::new)?
                .is_some_and(|v| v.value() == alert.id.as_bytes());
            if points_here {
                groups.remove(group.as_str()).map_err(StoreFailure::new)?;
            }
        }
        write.commit().map_err(StoreFailure::new)?;
        Ok(alert)
    }

    /// Writes a playbook run to the history of the alert or the incident it ran on.
    pub fn record_launch(&self, tenant: &str, run: &PlaybookRun) -> Result<(), AlertError> {
        let entry = kept_in_history(run);
        let launched = |history: &mut Vec<HistoryEntry>| {
            push_history(history, &run.launched_by, Change::Launch(entry.clone())).map(|()| true)
        };
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        if run.incident_id.is_empty() {
            let id = &run.alert_id;
            modify(
                &write,
                ALERTS,
                &key(tenant, id),
                "alert",
                id,
                |a: &mut Alert| launched(&mut a.history),
            )?;
        } else {
            let id = &run.incident_id;
            modify(
                &write,
                INCIDENTS,
                &key(tenant, id),
                "incident",
                id,
                |i: &mut Incident| launched(&mut i.history),
            )?;
        }
        write.commit().map_err(StoreFailure::new)?;
        Ok(())
    }
}

impl AlertStore {
    /// Forgets the raised event ids taken before `before_ms` (a collector sends again within
    /// minutes, not weeks), in transactions of at most 10,000; how many.
    pub fn forget_raised_before(&self, before_ms: i64) -> Result<usize, AlertError> {
        const CHUNK: usize = 10_000;
        let mut forgotten = 0;
        loop {
            let doomed: Vec<String> = {
                let read = self.db.begin_read().map_err(StoreFailure::new)?;
                let table = read.open_table(RAISED).map_err(StoreFailure::new)?;
                let mut doomed = Vec::new();
                for entry in table.iter().map_err(StoreFailure::new)? {
                    let (key, value) = entry.map_err(StoreFailure::new)?;
                    let at = value
                        .value()
                        .get(..8)
                        .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                    if (at as i64) < before_ms {
                        doomed.push(key.value().to_owned());
                        if doomed.len() == CHUNK {
                            break;
                        }
                    }
                }
                doomed
            };
            if doomed.is_empty() {
                return Ok(forgotten);
            }
            let write = self.db.begin_write().map_err(StoreFailure::new)?;
            {
                let mut table = write.open_table(RAISED).map_err(StoreFailure::new)?;
                for key in &doomed {
                    table.remove(key.as_str()).map_err(StoreFailure::new)?;
                }
            }
            write.commit().map_err(StoreFailure::new)?;
            forgotten += doomed.len();
        }
    }
}

/// Forgets raised event ids older than `window`, every hour until `shutdown`.
pub async fn forget_old_event_ids(
    store: Arc<AlertStore>,
    window: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let before = now_ms() - window.as_millis() as i64;
        let pruning = store.clone();
        match tokio::task::spawn_blocking(move || pruning.forget_raised_before(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(forgotten)) => tracing::info!(forgotten, "old raised event ids forgotten"),
            Ok(Err(error)) => tracing::warn!(%error, "forgetting old raised event ids failed"),
            Err(error) => tracing::warn!(%error, "the pruning task failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}

/// `run` as the history keeps it: within [`MAX_LAUNCH_ENTRY_BYTES`], the items and calls
/// past it dropped and counted in the message.
fn kept_in_history(run: &PlaybookRun) -> PlaybookRun {
    let mut kept = run.clone();
    let (items, actions) = (kept.items.len(), kept.actions.len());
    // The calls go first (the items say what became of each value), then the items, each
    // one's encoded size taken off as it goes (re-encoding the run per drop is quadratic).
    use prost::encoding::{message, string};
    let mut size = kept.encoded_len();
    while size > MAX_LAUNCH_ENTRY_BYTES {
        size -= if let Some(action) = kept.actions.pop() {
            string::encoded_len(4, &action)
        } else if let Some(item) = kept.items.pop() {
            message::encoded_len(8, &item)
        } else if let Some(value) = kept.protected.pop() {
            string::encoded_len(9, &value)
        } else {
            break;
        };
    }
    let dropped = (items - kept.items.len(), actions - kept.actions.len());
    if dropped != (0, 0) {
        kept.message = truncated(
            &format!(
                "{} ({} items and {} calls not kept in the history)",
                kept.message, dropped.0, dropped.1
            ),
            MAX_LAUNCH_ENTRY_BYTES / 4,
        )
        .into_owned();
    }
    kept
}

/// Whether a record of `encoded` bytes may take one more launch.
pub fn has_room_for_a_launch(history: usize, encoded: usize) -> bool {
    history < MAX_HISTORY && encoded + MAX_LAUNCH_ENTRY_BYTES <= MAX_RECORD_BYTES
}

/// Applies a status and an assignee change, each as a history entry; whether anything
/// changed.
pub(super) fn record_changes(
    history: &mut Vec<HistoryEntry>,
    current_status: &mut i32,
    current_assignee: &mut String,
    status: Option<AlertStatus>,
    assignee: Option<String>,
    by: &str,
) -> Result<bool, AlertError> {
    let mut changed = false;
    if let Some(status) = status.filter(|s| *s as i32 != *current_status) {
        push_history(history, by, Change::Status(status as i32))?;
        *current_status = status as i32;
        changed = true;
    }
    if let Some(assignee) = assignee.filter(|a| a != current_assignee) {
        push_history(history, by, Change::Assignee(assignee.clone()))?;
        *current_assignee = assignee;
        changed = true;
    }
    Ok(changed)
}

pub(super) fn push_history(
    history: &mut Vec<HistoryEntry>,
    by: &str,
    change: Change,
) -> Result<(), AlertError> {
    if history.len() >= MAX_HISTORY {
        return Err(AlertError::HistoryFull(MAX_HISTORY));
    }
    history.push(HistoryEntry {
        at_ms: now_ms(),
        by: by.to_owned(),
        change: Some(change),
    });
    Ok(())
}

fn count_by_tenant(db: &Database, table: Table) -> Result<HashMap<String, usize>, AlertError> {
    let mut counts = HashMap::new();
    let read = db.begin_read().map_err(StoreFailure::new)?;
    for entry in read
        .open_table(table)
        .map_err(StoreFailure::new)?
        .iter()
        .map_err(StoreFailure::new)?
    {
        let (key, _) = entry.map_err(StoreFailure::new)?;
        let tenant = key
            .value()
            .split('\0')
            .next()
            .unwrap_or_default()
            .to_owned();
        *counts.entry(tenant).or_insert(0) += 1;
    }
    Ok(counts)
}

pub(super) fn read_record<T: Message + Default>(
    db: &Database,
    table: Table,
    key: &str,
) -> Result<Option<T>, AlertError> {
    let read = db.begin_read().map_err(StoreFailure::new)?;
    let table = read.open_table(table).map_err(StoreFailure::new)?;
    let Some(bytes) = table.get(key).map_err(StoreFailure::new)? else {
        return Ok(None);
    };
    decode(bytes.value()).map(Some)
}

pub(super) fn decode<T: Message + Default>(bytes: &[u8]) -> Result<T, AlertError> {
    T::decode(bytes).map_err(|e| AlertError::Store(StoreFailure::unreadable(e)))
}

/// Reads the record at `key`, lets `change` alter it, and writes it back when it says it
/// changed; the record as it now is.
pub(super) fn modify<T: Message + Default>(
    write: &WriteTransaction,
    table: Table,
    key: &str,
    what: &'static str,
    id: &str,
    change: impl FnOnce(&mut T) -> Result<bool, AlertError>,
) -> Result<T, AlertError> {
    let mut table = write.open_table(table).map_err(StoreFailure::new)?;
    let mut record: T = match table.get(key).map_err(StoreFailure::new)? {
        Some(bytes) => decode(bytes.value())?,
        None => {
            return Err(AlertError::NotFound {
                what,
                id: id.to_owned(),
            });
        }
    };
    if change(&mut record)? {
        table
            .insert(key, record.encode_to_vec().as_slice())
            .map_err(StoreFailure::new)?;
    }
    Ok(record)
}

/// A page of `tenant`'s records in `table` that `admits`, newest first; the page token is
/// the id the next page starts before.
pub(super) fn list_records<T: Message + Default>(
    db: &Database,
    table: Table,
    tenant: &str,
    page: Option<&PageRequest>,
    admits: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, PageInfo), AlertError> {
    let default = PageRequest::default();
    let page = page.unwrap_or(&default);
    let size = match page.page_size as usize {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    if page.page_token.len() > 64 || page.page_token.contains('\0') {
        return Err(
            xdr_mesh::error::invalid("page.page_token", "not a token this service gave").into(),
        );
    }
    let start = key(tenant, "");
    let end = if page.page_token.is_empty() {
        // Every key of the tenant sorts before `tenant \0 \u{7f}` (ids are hex and dashes).
        key(tenant, "\u{7f}")
    } else {
        key(tenant, &page.page_token)
    };
    let read = db.begin_read().map_err(StoreFailure::new)?;
    let table = read.open_table(table).map_err(StoreFailure::new)?;
    let range = table
        .range::<&str>((
            Bound::Included(start.as_str()),
            Bound::Excluded(end.as_str()),
        ))
        .map_err(StoreFailure::new)?;
    let (mut found, mut scanned, mut last, mut page_bytes) = (Vec::new(), 0, None, 0);
    for entry in range.rev() {
        let (key, bytes) = entry.map_err(StoreFailure::new)?;
        let id = key
            .value()
            .rsplit('\0')
            .next()
            .unwrap_or_default()
            .to_owned();
        scanned += 1;
        let record: T = decode(bytes.value())?;
        if admits(&record) {
            page_bytes += record.encoded_len();
            found.push(record);
        }
        last = Some(id);
        if found.len() == size || scanned == MAX_SCANNED || page_bytes >= MAX_PAGE_BYTES {
            break;
        }
    }
    // More may follow when the scan stopped early: hand back where it stopped. A last page
    // that ends exactly at the tenant's oldest record costs one empty page more.
    let stopped_early =
        found.len() == size || scanned == MAX_SCANNED || page_bytes >= MAX_PAGE_BYTES;
    let next_page_token = match last {
        Some(id) if stopped_early => id,
        _ => String::new(),
    };
    Ok((found, PageInfo { next_page_token }))
}

#[cfg(test)]
mod tests {
    use xdr_proto::pb::RunItem;

    use super::*;

    #[test]
    fn a_launch_is_kept_in_the_history_within_its_budget() {
        let run = PlaybookRun {
            message: "Block host via UserGate succeeded".into(),
            actions: vec!["v2.nlists.list.add.items(…)".into(); 500],
            items: (0..2000)
                .map(|i| RunItem {
                    value: format!("http://host-{i}.example/{}", "x".repeat(80)),
                    done: true,
                    ..RunItem::default()
                })
                .collect(),
            ..PlaybookRun::default()
        };
        let kept = kept_in_history(&run);
        assert!(
            kept.encoded_len() <= MAX_LAUNCH_ENTRY_BYTES,
            "{}",
            kept.encoded_len()
        );
        assert!(!kept.items.is_empty());
        assert!(
            kept.message.contains("not kept in the history"),
            "{}",
            kept.message
        );
        let small = PlaybookRun {
            message: "ok".into(),
            ..PlaybookRun::default()
        };
        assert_eq!(kept_in_history(&small), small);
        assert!(has_room_for_a_launch(0, 1000));
        assert!(!has_room_for_a_launch(0, MAX_RECORD_BYTES));
        assert!(!has_room_for_a_launch(MAX_HISTORY, 0));
    }
}
