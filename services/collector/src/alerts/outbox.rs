//! The "alerts" destination's own disk buffer: events that passed a collector's alert filter
//! are appended and synced here before their batch is acknowledged, then sent to the playbook
//! service (`RaiseAlerts`) behind it — at least once: a batch leaves the buffer only once
//! the playbook service answered for every event of it, and what it had not answered for
//! before a stop is sent again after the start (it drops event ids it has taken).
//!
//! While the playbook service is down events wait here, retried with backoff. What waits is
//! bounded: past `MAX_PENDING_EVENTS` new alert events are counted and left out (they are
//! still stored and searchable), rather than growing memory without end.

use std::{
    collections::VecDeque,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use xdr_mesh::replicas::Balanced;
use xdr_proto::pb::{Event, RaiseAlertsRequest, playbook_client::PlaybookClient};

use crate::buffer::DiskBuffer;

/// Events waiting to be sent at most, and their bytes (an event may be megabytes).
const MAX_PENDING_EVENTS: usize = 200_000;
const MAX_PENDING_BYTES: usize = 256 << 20;
/// One `RaiseAlerts` call carries at most this many events and about this many bytes (the
/// playbook service takes 4 MiB messages).
const CALL_EVENTS: usize = 1000;
const CALL_BYTES: usize = 3 << 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The file holding the last sequence the playbook service answered for.
const SENT_FILE: &str = "sent-through";

struct Pending {
    buffer: DiskBuffer,
    batches: VecDeque<(u64, Vec<Event>)>,
    events: usize,
    bytes: usize,
    left_out: u64,
}

pub struct AlertOutbox {
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Notify,
}

impl AlertOutbox {
    /// Opens the outbox in `dir`: what was appended and not answered for comes back pending.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let sent = match fs::read_to_string(dir.join(SENT_FILE)) {
            Ok(text) => text.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{SENT_FILE}: not a number"),
                )
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error),
        };
        let (buffer, replayed) = DiskBuffer::open(dir, sent)?;
        let batches: VecDeque<(u64, Vec<Event>)> = replayed
            .into_iter()
            .map(|r| (r.sequence, r.events))
            .collect();
        let events = batches.iter().map(|(_, e)| e.len()).sum();
        let bytes = batches.iter().map(|(_, e)| encoded_len(e)).sum();
        if events > 0 {
            tracing::info!(
                events,
                "alert events kept from before the stop are sent again"
            );
        }
        Ok(AlertOutbox {
            dir: dir.to_owned(),
            pending: Mutex::new(Pending {
                buffer,
                batches,
                events,
                bytes,
                left_out: 0,
            }),
            wake: Notify::new(),
        })
    }

    /// Appends `events` and syncs them (blocking: call off the runtime); the sender takes
    /// them from there. Past the bound they are left out and counted.
    pub fn push(&self, mut events: Vec<Event>) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // The alert needs the fields and matches, not the event as it arrived.
        for event in &mut events {
            event.raw.clear();
        }
        let size = encoded_len(&events);
        let mut pending = self.pending.lock().expect("outbox lock");
        if pending.events + events.len() > MAX_PENDING_EVENTS
            || pending.bytes + size > MAX_PENDING_BYTES
        {
            pending.left_out += events.len() as u64;
            crate::metrics::alert_events("left_out", events.len());
            tracing::warn!(
                left_out = pending.left_out,
                waiting = pending.events,
                "alert events left out: the playbook service has not taken what waits"
            );
            return Ok(());
        }
        let sequence = pending.buffer.append(&[&events])?[0];
        crate::metrics::alert_events("buffered", events.len());
        pending.events += events.len();
        pending.bytes += size;
        pending.batches.push_back((sequence, events));
        drop(pending);
        self.wake.notify_one();
        Ok(())
    }

    /// Events waiting to be sent.
    pub fn waiting(&self) -> usize {
        self.pending.lock().expect("outbox lock").events
    }

    /// Sends what waits to the playbook service over `channel` until `shutdown`.
    pub async fn deliver_forever(self: Arc<Self>, channel: Balanced, shutdown: CancellationToken) {
        let mut client = PlaybookClient::new(channel);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = self
                .pending
                .lock()
                .expect("outbox lock")
                .batches
                .front()
                .cloned();
            let Some((sequence, events)) = next else {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => continue,
                }
            };
            match send_batch(&mut client, &events).await {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    crate::metrics::alert_events("delivered", events.len());
                    self.sent(sequence, events.len());
                }
                // The playbook service refuses the events themselves: sending them again
                // cannot help, and would hold every later alert back.
                Err(status) if status.code() == Code::InvalidArgument => {
                    tracing::error!(%sequence, error = %status.message(), "alert events refused and dropped");
                    crate::metrics::alert_events("refused", events.len());
                    self.sent(sequence, events.len());
                }
                Err(status) => {
                    tracing::warn!(
                        error = %status.message(), code = ?status.code(), retry_in = ?backoff,
                        "alerts not delivered yet"
                    );
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Batch `sequence` is answered for: recorded, then dropped from memory and disk.
    fn sent(&self, sequence: u64, events: usize) {
        if let Err(error) = write_sent(&self.dir, sequence) {
            // The batch stays: it is sent again, which the playbook service takes as a double.
            tracing::warn!(%error, "the alert outbox position was not saved");
            return;
        }
        let mut pending = self.pending.lock().expect("outbox lock");
        if let Some((_, batch)) = pending.batches.pop_front() {
            pending.bytes -= encoded_len(&batch);
        }
        pending.events -= events;
        pending.buffer.release_through(sequence);
        tracing::debug!(sequence, events, "alert events delivered");
    }
}

/// Sends `events` in calls of bounded size; every call must succeed.
async fn send_batch(
    client: &mut PlaybookClient<Balanced>,
    events: &[Event],
) -> Result<(), tonic::Status> {
    let mut start = 0;
    while start < events.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < events.len() && end - start < CALL_EVENTS {
            let size = events[end].encoded_len();
            if end > start && bytes + size > CALL_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let mut request = tonic::Request::new(RaiseAlertsRequest {
            events: events[start..end].to_vec(),
        });
        request.set_timeout(CALL_TIMEOUT);
        client.raise_alerts(request).await?;
        start = end;
    }
    Ok(())
}

fn encoded_len(events: &[Event]) -> usize {
    events.iter().map(Message::encoded_len).sum()
}

fn write_sent(dir: &Path, sequence: u64) -> io::Result<()> {
    let temporary = dir.join(format!("{SENT_FILE}.new"));
    fs::write(&temporary, sequence.to_string())?;
    fs::File::open(&temporary)?.sync_all()?;
    fs::rename(&temporary, dir.join(SENT_FILE))
}
