//! One batch of events through the collector: the collector found, room made for the batch
//! (or `RESOURCE_EXHAUSTED` with a retry hint), each raw piece parsed and each event checked —
//! refused alone with its index and reason — then enriched through the collector's stream,
//! written to the store, and answered only once durable.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prost::Message;
use tokio::sync::Semaphore;
use tonic::{Status, metadata::MetadataValue};
use xdr_mesh::{
    caller::{Action, Caller, Role},
    error::ServiceError,
    id::new_uuid,
    quote::quoted,
};
use xdr_proto::pb::{
    CollectorConfig, DestinationKind, Event, EventError, IngestReply, IngestRequest,
};

use crate::{
    collectors::CollectorCatalog, enrich_link::EnrichmentLink, normalize::Normalizer, stats::Stats,
    writer::Writer,
};

/// Events in one request at most (raw pieces and structured events together).
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Bytes of events the collector holds between receiving and storing them, across every
/// request: past it callers are told to come back (the store or enrichment is slow).
const BUDGET_BYTES: usize = 256 << 20;
/// How long a batch may wait for room before it is refused, and how many may wait.
const ADMISSION_WAIT: Duration = Duration::from_secs(2);
const MAX_WAITING: usize = 64;
/// What a refused batch is told: come back after this long.
const RETRY_AFTER_MS: u64 = 1000;
/// Ids the client gives at most this long.
const MAX_ID_BYTES: usize = 128;

pub struct Ingest {
    pub collectors: Arc<CollectorCatalog>,
    link: EnrichmentLink,
    writer: Writer,
    pub stats: Stats,
    budget: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Ingest {
    pub fn new(collectors: Arc<CollectorCatalog>, link: EnrichmentLink, writer: Writer) -> Self {
        Ingest {
            collectors,
            link,
            writer,
            stats: Stats::default(),
            budget: Arc::new(Semaphore::new(BUDGET_BYTES)),
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

    /// `request` through `collector`: its reply once every accepted event is durable.
    pub async fn batch(
        &self,
        collector: Arc<CollectorConfig>,
        request: IngestRequest,
    ) -> Result<IngestReply, Status> {
        let size = request.raw.len()
            + request
                .events
                .iter()
                .map(Message::encoded_len)
                .sum::<usize>();
        let _room = match self.room(size).await {
            Ok(room) => room,
            Err(status) => {
                self.stats.refused_batch(&collector, request.events.len());
                return Err(status);
            }
        };
        let batch_id = request.batch_id;
        let parsing = collector.clone();
        let (events, errors) = tokio::task::spawn_blocking(move || events_of(&parsing, request))
            .await
            .map_err(|e| Status::internal(format!("parsing failed: {e}")))??;
        let refused = errors.len();
        let events = self
            .link
            .enrich(&collector.id, &collector.rule_ids, events)
            .await;
        let stores =
            (collector.destinations.iter()).any(|d| d.kind == DestinationKind::Storage as i32);
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        self.stats.answered(&collector, refused, &events);
        if stores && !events.is_empty() {
            let count = events.len();
            if let Err(failed) = self.writer.write(events).await {
                tracing::warn!(collector = %collector.name, error = %failed, events = count, "a batch was not stored");
                self.stats.refused_batch(&collector, 0);
                return Err(failed.to_status());
            }
        }
        Ok(IngestReply {
            accepted: ids.len() as u32,
            ids,
            batch_id,
            refused: refused as u32,
            errors,
        })
    }

    /// Room for `bytes` of events, waiting a little when the collector is full.
    async fn room(&self, bytes: usize) -> Result<tokio::sync::SemaphorePermit<'_>, Status> {
        let permits = u32::try_from(bytes.clamp(1, BUDGET_BYTES)).unwrap_or(u32::MAX);
        if let Ok(room) = self.budget.try_acquire_many(permits) {
            return Ok(room);
        }
        let full = || {
            busy(format!(
                "the collector holds {} MiB of events not yet stored (the store or enrichment is slow)",
                BUDGET_BYTES >> 20
            ))
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(full());
        }
        let room = tokio::time::timeout(ADMISSION_WAIT, self.budget.acquire_many(permits)).await;
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The events of `request` as `collector` takes them, and the ones it refuses.
fn events_of(
    collector: &CollectorConfig,
    request: IngestRequest,
) -> Result<(Vec<Event>, Vec<EventError>), Status> {
    let normalizer = Normalizer::of(collector);
    let pieces: Vec<&[u8]> = normalizer.split(&request.raw).collect();
    let first = pieces.len();
    let total = first + request.events.len();
    if total > MAX_BATCH_EVENTS {
        return Err(Status::invalid_argument(format!(
            "events: {total} in one request; at most {MAX_BATCH_EVENTS}"
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
    for (index, piece) in pieces.into_iter().enumerate() {
        match normalizer.parse(piece) {
            Ok(parsed) => events.push(Event {
                id: new_uuid(),
                timestamp_ms: if parsed.timestamp_ms == 0 {
                    now
                } else {
                    parsed.timestamp_ms
                },
                tenant: collector.tenant.clone(),
                collector: collector.name.clone(),
                fields: parsed.fields,
                raw: parsed.raw,
                ..Default::default()
            }),
            Err(reason) => refuse(index, reason),
        }
    }
    for (offset, mut event) in request.events.into_iter().enumerate() {
        let index = first + offset;
        if let Err(reason) = structured(collector, &normalizer, &mut event, now) {
            refuse(index, reason);
            continue;
        }
        // An id twice in one request: the second is refused, the first kept.
        if events.iter().any(|e: &Event| e.id == event.id) {
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
        event.id = new_uuid();
    }
    if event.timestamp_ms == 0 {
        event.timestamp_ms = now;
    }
    Ok(())
}
