//! The loader: batches from the disk buffer into the event store, as many as are waiting in
//! one transaction, after a short wait for more when few are (the store's [`Grouping`]) —
//! large transactions are what make an indexed store fast, and a column store merge less.
//! A search waiting for what was acknowledged ends the wait. A store that fails is retried, the
//! batches safe in the buffer; a batch the store refuses for good is logged and skipped so
//! the rest go on. Once stored, a batch's room in the admission budget is given back and the
//! buffer segments it fills are deleted.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, watch};
use xdr_mesh::error::{ErrorCode, ServiceError};
use xdr_proto::pb::Event;

use crate::{
    buffer::DiskBuffer,
    store::{EventStore, Grouping},
};

const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

/// A batch in the buffer, to be stored.
pub struct Loaded {
    pub sequence: u64,
    pub events: Vec<Event>,
    /// Its share of the admission budget (none for batches read back at start).
    #[expect(
        dead_code,
        reason = "held until the batch is stored: dropping it gives the room back"
    )]
    pub room: Option<OwnedSemaphorePermit>,
}

enum Message {
    Batch(Loaded),
    /// Someone waits for the batches sent so far: store them without waiting for more.
    Flush,
}

/// Where batches for the loader go.
#[derive(Clone)]
pub struct Handle {
    sender: mpsc::Sender<Message>,
    /// A flush is queued and not yet seen: searches waiting on a stalled store queue one, not
    /// one each.
    flushing: Arc<AtomicBool>,
}

impl Handle {
    pub fn send(&self, batch: Loaded) {
        // The loader ends only when every handle is gone.
        let _ = self.sender.send(Message::Batch(batch));
    }

    /// Has the loader store what it was sent without lingering for more.
    pub fn flush(&self) {
        if !self.flushing.swap(true, Ordering::AcqRel) {
            let _ = self.sender.send(Message::Flush);
        }
    }
}

/// Starts the loader over `store`, which holds the buffer's batches through `through`; the
/// receiver tells the last sequence stored.
pub fn start(
    store: Arc<dyn EventStore>,
    buffer: Arc<Mutex<DiskBuffer>>,
    through: u64,
) -> (Handle, watch::Receiver<u64>) {
    let (sender, incoming) = mpsc::channel();
    let (loaded, watching) = watch::channel(through);
    let flushing = Arc::new(AtomicBool::new(false));
    let seen = flushing.clone();
    thread::Builder::new()
        .name("event-loader".into())
        .spawn(move || run(&*store, &buffer, &incoming, &seen, &loaded))
        .expect("a thread starts");
    (Handle { sender, flushing }, watching)
}

fn run(
    store: &dyn EventStore,
    buffer: &Mutex<DiskBuffer>,
    incoming: &mpsc::Receiver<Message>,
    flushing: &AtomicBool,
    loaded: &watch::Sender<u64>,
) {
    let grouping = store.grouping();
    while let Ok(message) = incoming.recv() {
        let Message::Batch(first) = message else {
            flushing.store(false, Ordering::Release);
            continue;
        };
        let group = gather(first, incoming, flushing, &grouping);
        let through = group.last().expect("a group has a batch").sequence;
        store_group(store, &group);
        loaded.send_replace(through);
        buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release_through(through);
        // Dropping the group gives its room back.
    }
}

/// `first` and the batches that follow it within the limits.
fn gather(
    first: Loaded,
    incoming: &mpsc::Receiver<Message>,
    flushing: &AtomicBool,
    grouping: &Grouping,
) -> Vec<Loaded> {
    let mut events = first.events.len();
    let mut group = vec![first];
    let linger_until = Instant::now() + grouping.linger;
    let mut linger = true;
    while events < grouping.max_events {
        let next = match incoming.try_recv() {
            Ok(message) => Some(message),
            Err(_) if linger && events < grouping.few_events => incoming
                .recv_timeout(linger_until.saturating_duration_since(Instant::now()))
                .ok(),
            Err(_) => None,
        };
        match next {
            Some(Message::Batch(batch)) => {
                events += batch.events.len();
                group.push(batch);
            }
            // What is queued still joins; nothing more is waited for.
            Some(Message::Flush) => {
                flushing.store(false, Ordering::Release);
                linger = false;
            }
            None => break,
        }
    }
    group
}

/// Stores `group` in one transaction, retrying while the store is unavailable; when it
/// refuses the group otherwise, batch by batch, skipping the ones it refuses.
fn store_group(store: &dyn EventStore, group: &[Loaded]) {
    let batches: Vec<&[Event]> = group.iter().map(|b| b.events.as_slice()).collect();
    let through = group.last().map(|b| b.sequence);
    let mut wait = RETRY_FIRST;
    loop {
        match store.load(&batches, through) {
            Ok(()) => return,
            Err(error) if error.code() == ErrorCode::Unavailable => {
                tracing::warn!(%error, retry_in = ?wait, "the event store is unavailable; the batches wait in the disk buffer");
                thread::sleep(wait);
                wait = (wait * 2).min(RETRY_MOST);
            }
            Err(error) => {
                tracing::warn!(%error, "the event store refused a group; storing it batch by batch");
                break;
            }
        }
    }
    for batch in group {
        if let Err(error) = store.load(&[&batch.events], Some(batch.sequence)) {
            tracing::error!(sequence = batch.sequence, events = batch.events.len(), %error, "a buffered batch the event store refuses is skipped");
            let _ = store.load(&[], Some(batch.sequence));
        }
    }
}
