//! Blocks with a lifetime: each value a block step added with `block_seconds` is written
//! here under its expiry time, and a sweep removes what is due from the appliance, then
//! from here. A sweep that fails keeps the record for the next one, so a block outlives an
//! appliance outage rather than being forgotten.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tokio_util::sync::CancellationToken;
use xdr_mesh::{quote::quoted, store::StoreFailure};

use super::runner::Runner;
use xdr_mesh::clock::now_ms;

use crate::usergate::{ListKind, Session};

/// `expiry (16 hex digits) \0 random id` → a [`TimedBlock`].
const TIMED_BLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("timed_blocks");
/// Blocks with a lifetime waiting at most: past it a launch's block stays until unblocked
/// (the run says so), rather than the table growing with every launch.
const MAX_PENDING: u64 = 100_000;
/// Records removed by one sweep at most.
const SWEEP_BATCH: usize = 1000;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimedBlock {
    #[prost(int64, tag = "1")]
    pub expires_at_ms: i64,
    #[prost(string, tag = "2")]
    pub tenant: String,
    #[prost(string, tag = "3")]
    pub secret: String,
    /// The network list (else the URL list).
    #[prost(bool, tag = "4")]
    pub network: bool,
    #[prost(string, tag = "5")]
    pub list: String,
    #[prost(string, tag = "6")]
    pub value: String,
}

pub struct TimedBlocks {
    db: Arc<Database>,
}

impl TimedBlocks {
    pub fn open(db: Arc<Database>) -> Result<Self, StoreFailure> {
        let write = db.begin_write().map_err(StoreFailure::new)?;
        write.open_table(TIMED_BLOCKS).map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        Ok(TimedBlocks { db })
    }

    pub fn add(&self, blocks: &[TimedBlock]) -> Result<(), StoreFailure> {
        if self.pending()? + blocks.len() as u64 > MAX_PENDING {
            return Err(StoreFailure::with_code(
                xdr_mesh::error::ErrorCode::ResourceExhausted,
                format!("{MAX_PENDING} blocks with a lifetime are waiting already"),
            ));
        }
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        {
            let mut table = write.open_table(TIMED_BLOCKS).map_err(StoreFailure::new)?;
            for block in blocks {
                let key = format!(
                    "{:016x}\0{}",
                    block.expires_at_ms.max(0),
                    xdr_mesh::id::new_uuid()
                );
                table
                    .insert(key.as_str(), block.encode_to_vec().as_slice())
                    .map_err(StoreFailure::new)?;
            }
        }
        write.commit().map_err(StoreFailure::new)
    }

    /// Records whose time has come, oldest first.
    fn due(&self, now_ms: i64) -> Result<Vec<(String, TimedBlock)>, StoreFailure> {
        let read = self.db.begin_read().map_err(StoreFailure::new)?;
        let table = read.open_table(TIMED_BLOCKS).map_err(StoreFailure::new)?;
        let end = format!("{:016x}\u{1}", now_ms.max(0));
        let mut due = Vec::new();
        for entry in table
            .range::<&str>(..end.as_str())
            .map_err(StoreFailure::new)?
        {
            let (key, bytes) = entry.map_err(StoreFailure::new)?;
            let block = TimedBlock::decode(bytes.value())
                .map_err(|e| StoreFailure::unreadable(format!("timed block: {e}")))?;
            due.push((key.value().to_owned(), block));
            if due.len() == SWEEP_BATCH {
                break;
            }
        }
        Ok(due)
    }

    fn remove(&self, keys: &[String]) -> Result<(), StoreFailure> {
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        {
            let mut table = write.open_table(TIMED_BLOCKS).map_err(StoreFailure::new)?;
            for key in keys {
                table.remove(key.as_str()).map_err(StoreFailure::new)?;
            }
        }
        write.commit().map_err(StoreFailure::new)
    }

    /// Records not yet removed.
    pub fn pending(&self) -> Result<u64, StoreFailure> {
        let read = self.db.begin_read().map_err(StoreFailure::new)?;
        let table = read.open_table(TIMED_BLOCKS).map_err(StoreFailure::new)?;
        table.len().map_err(StoreFailure::new)
    }
}

/// Sweeps every `interval` until `shutdown`.
pub async fn sweep_forever(
    blocks: Arc<TimedBlocks>,
    runner: Arc<Runner>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(error) = sweep(&blocks, &runner).await {
            tracing::warn!(%error, "removing expired blocks failed; retrying at the next sweep");
        }
    }
}

/// A tenant and the secret its blocks were made with: one appliance session.
type Appliance = (String, String);
/// Whether a network list (else a URL list), and its name.
type ListRef = (bool, String);
/// A record's key and the value it blocked.
type DueValue = (String, String);

async fn sweep(blocks: &TimedBlocks, runner: &Runner) -> Result<(), StoreFailure> {
    let due = blocks.due(now_ms())?;
    if due.is_empty() {
        return Ok(());
    }
    // One session per appliance (tenant and secret), one listing per list.
    let mut by_appliance: BTreeMap<Appliance, BTreeMap<ListRef, Vec<DueValue>>> = BTreeMap::new();
    for (key, block) in due {
        by_appliance
            .entry((block.tenant, block.secret))
            .or_default()
            .entry((block.network, block.list))
            .or_default()
            .push((key, block.value));
    }
    for ((tenant, secret), lists) in by_appliance {
        let credentials = match runner.secrets().credentials(&tenant, &secret) {
            Ok(credentials) => credentials,
            Err(error) => {
                // Nothing can ever remove these: say so once and let them go.
                tracing::warn!(%error, tenant = %quoted(&tenant), "expired blocks dropped");
                let keys: Vec<String> = lists.into_values().flatten().map(|(k, _)| k).collect();
                blocks.remove(&keys)?;
                continue;
            }
        };
        let Ok(mut session) = Session::new(credentials, runner.methods(), runner.timeout()) else {
            continue;
        };
        for ((network, list), entries) in lists {
            let kind = if network {
                ListKind::Network
            } else {
                ListKind::Url
            };
            match remove_values(&mut session, kind, &list, &entries).await {
                Ok(()) => {
                    let keys: Vec<String> = entries.into_iter().map(|(k, _)| k).collect();
                    blocks.remove(&keys)?;
                    tracing::info!(list = %quoted(&list), removed = keys.len(), "expired blocks removed");
                }
                Err(error) => {
                    tracing::warn!(%error, list = %quoted(&list), "expired blocks not removed yet");
                    if error.ends_session() {
                        break;
                    }
                }
            }
        }
        session.close().await;
    }
    Ok(())
}

async fn remove_values(
    session: &mut Session<'_>,
    kind: ListKind,
    list: &str,
    entries: &[(String, String)],
) -> Result<(), crate::usergate::CallError> {
    let Some(list_id) = session.find_list(kind, list).await? else {
        return Ok(());
    };
    let present = session.list_items(&list_id).await?;
    let doomed: Vec<_> = present
        .into_iter()
        .filter(|(_, value)| entries.iter().any(|(_, v)| v == value))
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    session.delete_items(&list_id, &doomed).await
}
