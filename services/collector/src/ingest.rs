//! One batch of events through the collector: the collector found, room made for the batch
//! (or `RESOURCE_EXHAUSTED` with a retry hint), each raw piece parsed and each event checked —
//! refused alone with its index and reason — then enriched through the collector's stream,
//! appended to the disk buffer, and answered only once durable there (`writer.rs`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, metadata::MetadataValue};
use tracing::Instrument;
use xdr_mesh::{
    caller::{Action, Caller, Role},
    error::ServiceError,
    id::new_time_ordered_uuid,
    quote::quoted,
};
use xdr_proto::pb::{
    CollectorConfig, DestinationKind, Event, EventError, IngestReply, IngestRequest,
};

use crate::{
    alerts::{AlertFilters, AlertOutbox, passing},
    collectors::CollectorCatalog,
    enrich_link::{Enriched, EnrichmentLink},
    normalize::Normalizer,
    stats::{Stats, Tally},
    writer::Writer,
};

/// Events in one request at most (raw pieces and structured events together).
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Batches waiting for room at most; more are refused at once.
const MAX_WAITING: usize = 64;

/// What the collector holds at most between receiving events and storing them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of events in the pipeline, across every request: past it callers are told to
    /// come back (the store or enrichment is slow).
    pub budget_bytes: usize,
    /// How long a batch may wait for room before it is refused.
    pub admission_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            budget_bytes: 256 << 20,
            admission_wait: Duration::from_secs(2),
        }
    }
}
/// What a refused batch is told: come back after this long.
const RETRY_AFTER_MS: u64 = 1000;
/// Ids the client gives at most this long.
pub const MAX_ID_BYTES: usize = 128;

pub struct Ingest {
    pub collectors: Arc<CollectorCatalog>,
    link: EnrichmentLink,
    writer: Writer,
    alerts: Arc<AlertOutbox>,
    alert_filters: AlertFilters,
    pub stats: Stats,
    limits: Limits,
    budget: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Ingest {
    pub fn new(
        collectors: Arc<CollectorCatalog>,
        link: EnrichmentLink,
        writer: Writer,
        alerts: Arc<AlertOutbox>,
        limits: Limits,
    ) -> Self {
        let budget_bytes = limits.budget_bytes.clamp(1, u32::MAX as usize);
        Ingest {
            collectors,
            link,
            writer,
            alerts,
            alert_filters: AlertFilters::default(),
            stats: Stats::default(),
            limits: Limits {
                budget_bytes,
                ..limits
            },
            budget: Arc::new(Semaphore::new(budget_bytes)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The collector `key` names, as `caller` may send events to it.
    pub fn collector_for(
        &self,
        caller: &Caller,
        key: &str,
    ) -> Result<Arc<CollectorConfig>, Status> {
        if key.is_empty() {
            return Err(Status::invalid_argument(
                "collector: empty; name the collector receiving the events (its id or name)",
            ));
        }
        let tenant = match &caller.person {
            Some(person) if person.role != Role::MainAdministrator => person.tenant.as_str(),
            _ => "",
        };
        let collector = self
            .collectors
            .find(key, tenant)
            .map_err(|e| e.to_status())?;
        caller.may(Action::Read, &collector.tenant)?;
        Ok(collector)
    }

    /// `request` through `collector`: its reply once every accepted event is durable. Traced
    /// as a span of its own, a child of its first event's request (or of the call) and
    /// linked to the others'.
    pub async fn batch(
        &self,
        collector: Arc<CollectorConfig>,
        request: IngestRequest,
    ) -> Result<IngestReply, Status> {
        let contexts = (request
            .raw_traces
            .iter()
            .map(|run| run.traceparent.as_str()))
        .chain(request.events.iter().map(|e| e.traceparent.as_str()));
        let parent = contexts
            .clone()
            .find(|c| !c.is_empty())
            .map_or_else(xdr_mesh::trace::current, str::to_owned);
        let span = xdr_mesh::trace::batch(
            tracing::info_span!("ingest", otel.name = "collector.ingest", collector = %collector.name),
            &parent,
            contexts,
        );
        self.traced_batch(collector, request).instrument(span).await
    }

    async fn traced_batch(
        &self,
        collector: Arc<CollectorConfig>,
        request: IngestRequest,
    ) -> Result<IngestReply, Status> {
        let started = std::time::Instant::now();
        let size = request.raw.len()
            + request
                .events
                .iter()
                .map(Message::encoded_len)
                .sum::<usize>();
        let room = match self.room(size).await {
            Ok(room) => room,
            Err(status) => {
                self.stats.refused_batch(&collector, request.events.len());
                return Err(status);
            }
        };
        let batch_id = request.batch_id;
        let parsing = collector.clone();
        // Events that came with no request's context of their own were brought by this batch.
        let this_batch = xdr_mesh::trace::current();
        let (events, errors) =
            tokio::task::spawn_blocking(move || events_of(&parsing, request, &this_batch))
                .await
                .map_err(|e| Status::internal(format!("parsing failed: {e}")))??;
        let refused = errors.len();
        // The room taken was the request's size; decoded, its events hold several times
        // that (strings and maps of their own), and that is what waits for the store.
        let held: usize = events.iter().map(held_bytes).sum();
        let room = match self.more_room(room, held.saturating_sub(size)).await {
            Ok(room) => room,
            Err(status) => {
                self.stats.refused_batch(&collector, events.len() + refused);
                return Err(status);
            }
        };
        let Enriched { events, encoded } = self
            .link
            .enrich(&collector.id, &collector.rule_ids, events)
            .instrument(tracing::info_span!(
                "enrich",
                otel.name = "collector.enrich"
            ))
            .await;
        let stores =
            (collector.destinations.iter()).any(|d| d.kind == DestinationKind::Storage as i32);
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let tally = Tally::of(refused, &events);
        // Alert events are buffered first: a batch refused for a full or failing disk then
        // leaves nothing behind in the store to be doubled when it is sent again.
        let alerting = self
            .alert_filters
            .of(&collector)
            .map(|filter| passing(&filter, &events))
            .unwrap_or_default();
        if !alerting.is_empty() {
            let outbox = self.alerts.clone();
            let buffered = tokio::task::spawn_blocking(move || outbox.push(alerting))
                .await
                .map_err(|e| Status::internal(format!("buffering alert events failed: {e}")))?;
            if let Err(error) = buffered {
                tracing::warn!(collector = %collector.name, %error, "alert events were not buffered");
                self.stats.refused_batch(&collector, tally.received());
                return Err(Status::unavailable(format!("the alert buffer: {error}")));
            }
        }
        if stores
            && !events.is_empty()
            && let Err(failed) = (self.writer.write(events, encoded, Some(room)))
                .instrument(tracing::info_span!("store", otel.name = "collector.store"))
                .await
        {
            tracing::warn!(collector = %collector.name, error = %failed, events = ids.len(), "a batch was not stored");
            self.stats.refused_batch(&collector, tally.received());
            return Err(failed.to_status());
        }
        self.stats.answered(&collector, &tally);
        crate::metrics::batch_answered(started.elapsed());
        Ok(IngestReply {
            accepted: ids.len() as u32,
            ids,
            batch_id,
            refused: refused as u32,
            errors,
        })
    }

    /// Forgets what was kept for collector `id`, deleted: its counts and its stream.
    pub fn forget(&self, id: &str) {
        self.stats.forget(id);
        self.link.forget_collector(id);
    }

    /// Waits (at most `limit`) until the store holds every batch acknowledged so far.
    pub async fn caught_up(&self, limit: Duration) -> bool {
        self.writer.caught_up(limit).await
    }

    /// `room` and `bytes` more (none when the budget is taken whole already).
    async fn more_room(
        &self,
        mut room: OwnedSemaphorePermit,
        bytes: usize,
    ) -> Result<OwnedSemaphorePermit, Status> {
        let left = self.limits.budget_bytes.saturating_sub(room.num_permits());
        if bytes > 0 && left > 0 {
            room.merge(self.room(bytes.min(left)).await?);
        }
        Ok(room)
    }

    /// Room for `bytes` of events, waiting a little when the collector is full.
    async fn room(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Status> {
        let budget = self.limits.budget_bytes;
        let permits = u32::try_from(bytes.clamp(1, budget)).unwrap_or(u32::MAX);
        if let Ok(room) = self.budget.clone().try_acquire_many_owned(permits) {
            return Ok(room);
        }
        let full = || {
            busy(format!(
                "the collector holds {} MiB of events not yet stored (the store or enrichment is slow)",
                budget >> 20
            ))
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(full());
        }
        let room = tokio::time::timeout(
            self.limits.admission_wait,
            self.budget.clone().acquire_many_owned(permits),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match room {
            Ok(Ok(room)) => Ok(room),
            _ => Err(full()),
        }
    }
}

/// `RESOURCE_EXHAUSTED` saying when to come back, in the message and as `retry-after-ms`.
pub fn busy(why: String) -> Status {
    let mut status = Status::resource_exhausted(format!("{why}; retry in {RETRY_AFTER_MS} ms"));
    status
        .metadata_mut()
        .insert("retry-after-ms", MetadataValue::from(RETRY_AFTER_MS));
    status
}

use xdr_mesh::clock::now_ms;

/// About what `event` holds in memory: the struct, its strings, and per field the map's
/// entry with its name and value (a B-tree node slot, counted as twice the pair).
fn held_bytes(event: &Event) -> usize {
    const FIELD_ENTRY: usize = 2 * std::mem::size_of::<(String, xdr_proto::pb::FieldValue)>();
    let strings = event.id.capacity()
        + event.tenant.capacity()
        + event.collector.capacity()
        + event.raw.capacity()
        + event.traceparent.capacity();
    let fields: usize = (event.fields.iter())
        .map(|(name, value)| FIELD_ENTRY + name.capacity() + value.encoded_len())
        .sum();
    std::mem::size_of::<Event>() + strings + fields
}

/// A `traceparent` an event may carry: W3C's is 55 characters; a longer one is dropped
/// rather than kept and forwarded with the event.
const MAX_TRACEPARENT_BYTES: usize = 64;

/// The events of `request` as `collector` takes them, and the ones it refuses; those without
/// a trace context of their own get `this_batch`.
fn events_of(
    collector: &CollectorConfig,
    request: IngestRequest,
    this_batch: &str,
) -> Result<(Vec<Event>, Vec<EventError>), Status> {
    let normalizer = Normalizer::of(collector);
    // One past the limit is enough to refuse: a body of tiny pieces is never listed whole.
    let pieces: Vec<&[u8]> = (normalizer.split(&request.raw))
        .take(MAX_BATCH_EVENTS + 1)
        .collect();
    let first = pieces.len();
    let total = first + request.events.len();
    if total > MAX_BATCH_EVENTS {
        return Err(Status::invalid_argument(format!(
            "events: more than {MAX_BATCH_EVENTS} in one request"
        )));
    }
    let now = now_ms();
    let mut events = Vec::with_capacity(total);
    let mut errors = Vec::new();
    let mut refuse = |index: usize, reason: String| {
        errors.push(EventError {
            index: index as u32,
            reason,
        });
    };
    // Each raw piece's context: the runs in order, then this batch's.
    let mut runs = (request.raw_traces.iter())
        .flat_map(|run| std::iter::repeat_n(run.traceparent.as_str(), run.events as usize));
    let mut context_of_piece = move || {
        runs.next()
            .filter(|c| !c.is_empty() && c.len() <= MAX_TRACEPARENT_BYTES)
            .unwrap_or(this_batch)
            .to_owned()
    };
    for (index, piece) in pieces.into_iter().enumerate() {
        let traceparent = context_of_piece();
        match normalizer.parse(piece) {
            Ok(parsed) => events.push(Event {
                id: new_time_ordered_uuid(),
                timestamp_ms: if parsed.timestamp_ms == 0 {
                    now
                } else {
                    parsed.timestamp_ms
                },
                tenant: collector.tenant.clone(),
                collector: collector.name.clone(),
                fields: parsed.fields,
                raw: parsed.raw,
                traceparent,
                ..Default::default()
            }),
            Err(reason) => refuse(index, reason),
        }
    }
    let mut given_ids = std::collections::HashSet::new();
    for (offset, mut event) in request.events.into_iter().enumerate() {
        let index = first + offset;
        if event.traceparent.is_empty() || event.traceparent.len() > MAX_TRACEPARENT_BYTES {
            event.traceparent = this_batch.to_owned();
        }
        if let Err(reason) = structured(collector, &normalizer, &mut event, now) {
            refuse(index, reason);
            continue;
        }
        // An id twice in one request: the second is refused, the first kept. (The ids the
        // collector makes for raw pieces are new: only given ones are compared.)
        if !given_ids.insert(event.id.clone()) {
            refuse(index, format!("id {} is given twice", quoted(&event.id)));
            continue;
        }
        events.push(event);
    }
    Ok((events, errors))
}

/// Checks a structured event and fills in what the collector sets.
fn structured(
    collector: &CollectorConfig,
    normalizer: &Normalizer,
    event: &mut Event,
    now: i64,
) -> Result<(), String> {
    let size = event.encoded_len();
    if size > normalizer.max_event_bytes {
        return Err(format!(
            "{size} bytes; the collector takes events of at most {}",
            normalizer.max_event_bytes
        ));
    }
    if !event.tenant.is_empty() && event.tenant != collector.tenant {
        return Err(format!(
            "tenant {}: the collector's events belong to {}",
            quoted(&event.tenant),
            quoted(&collector.tenant)
        ));
    }
    if event.id.len() > MAX_ID_BYTES {
        return Err(format!("id: longer than {MAX_ID_BYTES} bytes"));
    }
    if let Some(name) = event
        .fields
        .keys()
        .find(|n| !crate::collectors::is_field_name(n))
    {
        return Err(format!(
            "field {}: not a field name (letters, digits, `_`)",
            quoted(name)
        ));
    }
    event.tenant = collector.tenant.clone();
    event.collector = collector.name.clone();
    if event.id.is_empty() {
        event.id = new_time_ordered_uuid();
    }
    if event.timestamp_ms == 0 {
        event.timestamp_ms = now;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use super::*;
    use crate::store::{EventStore, EventStoreError, Found};

    /// A store that holds every load until released: a slow disk.
    #[derive(Default)]
    struct Stalled {
        released: Mutex<bool>,
        changed: Condvar,
    }

    impl EventStore for Stalled {
        fn load(&self, _: &[&[Event]], _: Option<u64>) -> Result<(), EventStoreError> {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.changed.wait(released).unwrap();
            }
            Ok(())
        }
        fn loaded_through(&self) -> Result<u64, EventStoreError> {
            Ok(0)
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

    #[test]
    fn a_request_past_the_event_limit_is_refused_whole_and_given_ids_once() {
        let collector = CollectorConfig {
            name: "c".into(),
            tenant: "Main".into(),
            ..Default::default()
        };
        let many = IngestRequest {
            raw: "{}\n".repeat(MAX_BATCH_EVENTS + 1).into_bytes(),
            ..Default::default()
        };
        let refused = events_of(&collector, many, "").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let given = |id: &str| Event {
            id: id.into(),
            ..Default::default()
        };
        let twice = IngestRequest {
            events: vec![given("a"), given("b"), given("a")],
            ..Default::default()
        };
        let (events, errors) = events_of(&collector, twice, "").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((errors[0].index, errors.len()), (2, 1), "{errors:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_store_fills_the_budget_and_later_batches_are_told_to_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let collectors =
            Arc::new(CollectorCatalog::open(&dir.path().join("collectors.redb")).unwrap());
        let collector = Arc::new(
            collectors
                .save(
                    CollectorConfig {
                        name: "slow".into(),
                        tenant: "Main".into(),
                        ..Default::default()
                    },
                    true,
                )
                .unwrap(),
        );
        let store = Arc::new(Stalled::default());
        // Never dialled: the collector links no rules.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let replicas =
            xdr_mesh::replicas::Replicas::over(vec!["127.0.0.1:9".into()], vec![channel]);
        let ingest = Arc::new(Ingest::new(
            collectors,
            EnrichmentLink::new(replicas, Duration::from_secs(1)),
            Writer::start(store.clone(), &dir.path().join("buffer")).unwrap(),
            Arc::new(AlertOutbox::open(&dir.path().join("alerts")).unwrap()),
            Limits {
                budget_bytes: 1000,
                admission_wait: Duration::from_millis(100),
            },
        ));
        let batch = |n: usize| IngestRequest {
            raw: "{}\n".repeat(n).into_bytes(),
            ..Default::default()
        };
        // Acknowledged once in the disk buffer; its room held until the store has it: the
        // room of its decoded events, far more than its 600 bytes (capped at the budget).
        let first = ingest.batch(collector.clone(), batch(200)).await.unwrap();
        assert_eq!(first.accepted, 200);
        assert_eq!(
            ingest.budget.available_permits(),
            0,
            "the first batch holds the room of its decoded events"
        );
        // The first batch holds the budget while the store stalls: the second finds no
        // room (unbounded, it would wait on the store for ever: hence the timeout).
        let second = tokio::time::timeout(
            Duration::from_secs(5),
            ingest.batch(collector.clone(), batch(200)),
        );
        let refused = (second.await)
            .expect("refused within the admission wait")
            .expect_err("no room while the store stalls");
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert!(
            refused.message().contains("retry in 1000 ms"),
            "{refused:?}"
        );
        assert_eq!(refused.metadata().get("retry-after-ms").unwrap(), "1000");
        assert_eq!(ingest.stats.of(None)[0].refused_batches, 1);

        *store.released.lock().unwrap() = true;
        store.changed.notify_all();
        assert!(
            ingest.caught_up(Duration::from_secs(5)).await,
            "the store took the batch"
        );
        for _ in 0..500 {
            if ingest.budget.available_permits() == 1000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // With the room back, the next batch goes through.
        assert_eq!(
            ingest.batch(collector, batch(10)).await.unwrap().accepted,
            10
        );
    }
}
