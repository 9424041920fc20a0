//! The path from an accepted batch to the store, in two threads. The appender groups the
//! batches waiting, appends them to the disk buffer with one sync (group commit) and
//! acknowledges them: from then on a crash loses none. The loader (`loader.rs`) moves them
//! into the event store in large transactions behind the acknowledgement, holding each
//! batch's room in the admission budget until it is stored — a slow store fills the budget
//! and new batches are refused, never queued without bound.

use std::{
    path::Path,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use xdr_mesh::{error::ErrorCode, store::StoreFailure};
use xdr_proto::pb::Event;

use crate::{
    buffer::{Batch, DiskBuffer},
    loader::{self, Loaded},
    store::{EventStore, EventStoreError},
};

/// Batches appended with one sync at most, and events: the batches after wait for it.
const MAX_GROUP_BATCHES: usize = 256;
const MAX_GROUP_EVENTS: usize = 50_000;
/// Batches queued for the appender at most; the admission budget upstream bounds their bytes.
const QUEUE: usize = 1024;

struct Job {
    events: Vec<Event>,
    /// Each event encoded, when the caller has that already.
    encoded: Option<Vec<Bytes>>,
    room: Option<OwnedSemaphorePermit>,
    done: oneshot::Sender<Result<u64, EventStoreError>>,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// The last sequence appended to the buffer, and the last the store holds.
    appended: Arc<AtomicU64>,
    loaded: watch::Receiver<u64>,
    loader: loader::Handle,
}

impl Writer {
    /// Opens the disk buffer in `buffer_dir`, has the loader store what it holds that `store`
    /// does not, and starts both threads; they end when every `Writer` is dropped.
    pub fn start(store: Arc<dyn EventStore>, buffer_dir: &Path) -> Result<Self, EventStoreError> {
        let through = store.loaded_through()?;
        let (buffer, replayed) =
            DiskBuffer::open(buffer_dir, through).map_err(|e| buffer_failure(&e))?;
        if !replayed.is_empty() {
            tracing::info!(
                batches = replayed.len(),
                "batches acknowledged before the last stop are being stored"
            );
        }
        let appended = Arc::new(AtomicU64::new(
            replayed.last().map_or(through, |r| r.sequence),
        ));
        let buffer = Arc::new(Mutex::new(buffer));
        let (loaded, to_load) = loader::start(store, buffer.clone(), through);
        for batch in replayed {
            loaded.send(Loaded {
                sequence: batch.sequence,
                events: batch.events,
                room: None,
            });
        }
        let (jobs, queue) = mpsc::channel(QUEUE);
        let appending = appended.clone();
        let loader = loaded.clone();
        thread::Builder::new()
            .name("event-appender".into())
            .spawn(move || append_groups(&buffer, &loaded, &appending, queue))
            .expect("a thread starts");
        Ok(Writer {
            jobs,
            appended,
            loaded: to_load,
            loader,
        })
    }

    /// Appends `events` to the disk buffer, returning once they are synced (or failed, all of
    /// them); `room` (their share of the admission budget) is given back once they are stored.
    /// `encoded`, when given, holds each event encoded (what the buffer writes).
    pub async fn write(
        &self,
        events: Vec<Event>,
        encoded: Option<Vec<Bytes>>,
        room: Option<OwnedSemaphorePermit>,
    ) -> Result<u64, EventStoreError> {
        let (done, written) = oneshot::channel();
        let gone = || stopped("the event writer has stopped");
        let encoded = encoded.filter(|encoded| encoded.len() == events.len());
        self.jobs
            .send(Job {
                events,
                encoded,
                room,
                done,
            })
            .await
            .map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }

    /// Waits (at most `limit`) until the store holds every batch acknowledged so far: a
    /// search sees what its caller was told is stored.
    pub async fn caught_up(&self, limit: Duration) -> bool {
        let target = self.appended.load(Ordering::Acquire);
        let mut loaded = self.loaded.clone();
        if *loaded.borrow() < target {
            self.loader.flush();
        }
        tokio::time::timeout(limit, loaded.wait_for(|&through| through >= target))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

fn stopped(why: &str) -> EventStoreError {
    EventStoreError::Store(StoreFailure::with_code(ErrorCode::Unavailable, why))
}

fn buffer_failure(error: &std::io::Error) -> EventStoreError {
    stopped(&format!("the disk buffer: {error}"))
}

fn append_groups(
    buffer: &Mutex<DiskBuffer>,
    loader: &loader::Handle,
    appended: &AtomicU64,
    mut queue: mpsc::Receiver<Job>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut events = first.events.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_BATCHES && events < MAX_GROUP_EVENTS {
            match queue.try_recv() {
                Ok(job) => {
                    events += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<Batch<'_>> = (group.iter())
            .map(|job| Batch {
                events: &job.events,
                encoded: job.encoded.as_deref(),
            })
            .collect();
        let outcome = buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append_batches(&batches);
        crate::metrics::group_committed(group.len());
        match outcome {
            Ok(sequences) => {
                if let Some(&last) = sequences.last() {
                    appended.store(last, Ordering::Release);
                }
                for (job, sequence) in group.into_iter().zip(sequences) {
                    loader.send(Loaded {
                        sequence,
                        events: job.events,
                        room: job.room,
                    });
                    let _ = job.done.send(Ok(sequence));
                }
            }
            Err(error) => {
                tracing::warn!(%error, batches = group.len(), "batches could not be buffered");
                for job in group {
                    let _ = job.done.send(Err(buffer_failure(&error)));
                }
            }
        }
    }
}
