//! The one writer of the event store: batches from every request queue here and are written
//! together — each batch all or none on its own, the group sharing one commit, so many small
//! acknowledged batches cost one sync to disk (group commit). A batch's sender hears back
//! only once its events are durable.

use std::{sync::Arc, thread};

use tokio::sync::{mpsc, oneshot};
use xdr_proto::pb::Event;

use crate::store::{EventStore, EventStoreError};

/// Batches written in one commit at most, and events: a group is one transaction, and
/// the batches after it wait for it.
const MAX_GROUP_BATCHES: usize = 256;
const MAX_GROUP_EVENTS: usize = 50_000;
/// Batches queued for the writer at most; the admission budget upstream bounds their bytes.
const QUEUE: usize = 1024;

struct Job {
    events: Vec<Event>,
    done: oneshot::Sender<Result<(), EventStoreError>>,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread over `store`; it ends when every `Writer` is dropped.
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_groups(&*store, queue))
            .expect("a thread starts");
        Writer { jobs }
    }

    /// Stores `events`, returning once they are durable (or failed, all of them).
    pub async fn write(&self, events: Vec<Event>) -> Result<(), EventStoreError> {
        let (done, written) = oneshot::channel();
        let gone = || {
            EventStoreError::Store(xdr_mesh::store::StoreFailure::with_code(
                xdr_mesh::error::ErrorCode::Unavailable,
                "the event writer has stopped",
            ))
        };
        self.jobs
            .send(Job { events, done })
            .await
            .map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }
}

fn write_groups(store: &dyn EventStore, mut queue: mpsc::Receiver<Job>) {
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
        let batches: Vec<&[Event]> = group.iter().map(|job| job.events.as_slice()).collect();
        let outcomes = store.insert_batches(&batches);
        crate::metrics::group_committed(group.len());
        for (job, outcome) in group.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::Found;

    /// Counts the groups it was given.
    #[derive(Default)]
    struct Groups(Mutex<Vec<usize>>);

    impl EventStore for Groups {
        fn insert_batches(&self, batches: &[&[Event]]) -> Vec<Result<(), EventStoreError>> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.0.lock().unwrap().push(batches.len());
            batches.iter().map(|_| Ok(())).collect()
        }
        fn delete_older_than(&self, _: i64) -> Result<u64, EventStoreError> {
            Ok(0)
        }
        fn search_pieces(
            &self,
            _: &crate::search::query::Search,
            _: usize,
            _: &mut dyn FnMut(Found, bool) -> Result<(), EventStoreError>,
        ) -> Result<(), EventStoreError> {
            unreachable!()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_that_wait_together_share_one_commit() {
        let store = Arc::new(Groups::default());
        let writer = Writer::start(store.clone());
        let writes: Vec<_> = (0..50)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(vec![Event::default()]).await })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        let groups = store.0.lock().unwrap().clone();
        assert_eq!(groups.iter().sum::<usize>(), 50);
        assert!(
            groups.len() < 50,
            "some batches shared a commit: {groups:?}"
        );
    }
}
