//! Enriching one batch of events: each active rule whose tenant and filter take an event
//! contributes the event's mapped field values; each rule's values are looked up once per
//! batch (identical values together), held to the rule's RPS, through the rule's source, whose
//! gathering task joins them with other batches' values, all within the rule's timeout.
//! An event whose answers do not come in time, or whose source is down, goes on without
//! them, marked so: never dropped, never held past the timeout.
//!
//! Events are read from the bytes they came in, and answered as those same bytes followed by
//! their new matches (as the source encoded them) and status: nothing is encoded twice.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use prost::Message;
use tokio::task::JoinSet;
use tracing::Instrument;
use xdr_mesh::tls::TlsMaterial;
use xdr_proto::{
    pb::{EnrichmentStatus, Event, LookupObject, SourceKind},
    wire::{WireEnrichBatch, WireLookupResult, enriched_event},
};

use super::batch::{BatchState, distinct_events, wanted_by};
use crate::{
    catalog::SharedCatalog,
    metrics,
    rule::{Rule, SourceSpec},
    source::{Gatherer, Lanes, Unavailable, cybertrace, threatintel},
    stats::{RuleTally, Stats, StatusCounts},
};

/// How one rule's lookups for a batch ended.
enum Outcome {
    Answered(Vec<WireLookupResult>),
    TimedOut,
    Unavailable(String),
}

/// An event of a batch that does not decode: the batch is refused, naming it.
#[derive(Debug, thiserror::Error)]
#[error("events[{index}]: {source}")]
pub struct InvalidEvent {
    index: usize,
    source: prost::DecodeError,
}

/// What a source is: its kind, where it is, and how many connections it keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SourceKey {
    kind: SourceKind,
    target: String,
    connections: NonZeroU32,
}

/// A rule's gathering: the rule, its RPS and its source. A changed RPS or source is a new one.
type GathererKey = (String, NonZeroU32, SourceKey);

pub struct Enricher {
    catalog: Arc<SharedCatalog>,
    tls: TlsMaterial,
    /// The ThreatIntel service a rule without a server URL uses.
    default_threatintel: String,
    /// Sources' connections by what the source is, shared by every rule naming the same one.
    sources: Mutex<HashMap<SourceKey, Arc<Lanes>>>,
    /// Each rule's gathering, shared by every stream. Those no active rule uses (and the
    /// sources no gathering uses) are dropped when the rules change.
    gatherers: Mutex<HashMap<GathererKey, Arc<Gatherer>>>,
    stats: Stats,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Enricher {
    /// The enricher, and a task dropping its gatherings and sources when no active rule uses
    /// them any more (a changed target, connections or RPS, a deleted rule).
    pub fn start(
        catalog: Arc<SharedCatalog>,
        tls: TlsMaterial,
        default_threatintel: String,
    ) -> Arc<Self> {
        metrics::describe();
        let mut changes = catalog.changes();
        let enricher = Arc::new(Enricher {
            catalog,
            tls,
            default_threatintel,
            sources: Mutex::new(HashMap::new()),
            gatherers: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        });
        let weak = Arc::downgrade(&enricher);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(enricher) = weak.upgrade() else {
                    return;
                };
                enricher.prune();
            }
        });
        enricher
    }

    fn source_key(&self, source: &SourceSpec) -> SourceKey {
        SourceKey {
            kind: source.kind,
            target: (source.target.as_ref())
                .unwrap_or(&self.default_threatintel)
                .clone(),
            connections: source.connections,
        }
    }

    fn gatherer_key(&self, rule: &Rule) -> GathererKey {
        (rule.id.clone(), rule.rps, self.source_key(&rule.source))
    }

    /// A new source's lanes: its connections live as long as it does.
    fn new_source(&self, key: &SourceKey) -> Result<Lanes, Unavailable> {
        Ok(match key.kind {
            SourceKind::Cybertrace => cybertrace::lanes(&key.target, key.connections),
            _ => threatintel::lanes(&key.target, key.connections, &self.tls)
                .map_err(|e| Unavailable(e.to_string()))?,
        })
    }

    fn source(&self, key: &SourceKey) -> Result<Arc<Lanes>, Unavailable> {
        let mut sources = locked(&self.sources);
        if let Some(source) = sources.get(key) {
            return Ok(source.clone());
        }
        let source = Arc::new(self.new_source(key)?);
        sources.insert(key.clone(), source.clone());
        Ok(source)
    }

    /// `rule`'s gathering, made on its first batch.
    fn gatherer(&self, rule: &Rule) -> Result<Arc<Gatherer>, Unavailable> {
        let key = self.gatherer_key(rule);
        if let Some(gatherer) = locked(&self.gatherers).get(&key) {
            return Ok(gatherer.clone());
        }
        let lanes = self.source(&key.2)?;
        Ok(locked(&self.gatherers)
            .entry(key)
            .or_insert_with(|| Arc::new(Gatherer::new(lanes, rule.rps)))
            .clone())
    }

    /// Drops the gatherings and sources no active rule uses. Batches still using one keep
    /// it until they are answered; then its tasks end and its connections close.
    fn prune(&self) {
        let active = self.catalog.active();
        let gatherers: HashSet<GathererKey> = (active.rules.iter())
            .map(|r| self.gatherer_key(&r.rule))
            .collect();
        let sources: HashSet<&SourceKey> = gatherers.iter().map(|key| &key.2).collect();
        locked(&self.gatherers).retain(|key, _| gatherers.contains(key));
        locked(&self.sources).retain(|key, _| sources.contains(key));
    }

    /// Whether `rule`'s source answers `probe` within the rule's timeout. A rule being
    /// drafted gets a gathering of its own, which ends with the test.
    pub async fn test(&self, rule: &Rule, probe: Vec<LookupObject>) -> Result<(), String> {
        let key = self.source_key(&rule.source);
        let kept = locked(&self.sources).get(&key).cloned();
        let lanes = match kept {
            Some(lanes) => lanes,
            None => Arc::new(self.new_source(&key).map_err(|e| e.to_string())?),
        };
        let gatherer = Arc::new(Gatherer::new(lanes, rule.rps));
        match look_up(&gatherer, probe, rule.timeout).await {
            Outcome::Answered(_) => Ok(()),
            Outcome::TimedOut => Err(format!("no answer within {:?}", rule.timeout)),
            Outcome::Unavailable(why) => Err(why),
        }
    }

    /// `batch`, enriched by the active rules it selects (all when it names none) that take its events, and its events' statuses
    /// counted (for the caller to add to the stats once the batch is answered).
    pub async fn enrich(
        &self,
        batch: WireEnrichBatch,
    ) -> Result<(WireEnrichBatch, StatusCounts), InvalidEvent> {
        let started = std::time::Instant::now();
        let events = batch
            .events
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                Event::decode(bytes.clone()).map_err(|source| InvalidEvent { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A child of the sender's span for the batch, linked to each event's own request.
        let span = xdr_mesh::trace::batch(
            tracing::info_span!(
                "enrich",
                otel.name = "enrichment.enrich",
                events = events.len()
            ),
            &batch.traceparent,
            events.iter().map(|e| e.traceparent.as_str()),
        );
        self.enrich_events(batch, events, started)
            .instrument(span)
            .await
    }

    async fn enrich_events(
        &self,
        batch: WireEnrichBatch,
        events: Vec<Event>,
        started: std::time::Instant,
    ) -> Result<(WireEnrichBatch, StatusCounts), InvalidEvent> {
        let active = self.catalog.active();
        let mut state = BatchState::new(events.len());
        let mut lookups = JoinSet::new();
        // What each lookup task is for, kept here: a task that panics still names its events.
        let mut for_rule = HashMap::new();
        for rule_index in active.selected(batch.rules.as_ref()) {
            let rule = &active.rules[rule_index];
            let (objects, wanted) = wanted_by(rule, &active.resources, &events);
            for w in &wanted {
                state.touched[w.event] = true;
            }
            if objects.is_empty() {
                continue;
            }
            if rule.rule.debug {
                let ids: Vec<&str> = wanted.iter().map(|w| events[w.event].id.as_str()).collect();
                tracing::debug!(rule = %rule.rule.name, events = ?ids, values = ?objects.iter().map(|o| &o.value).collect::<Vec<_>>(), "enrichment request");
            }
            let gatherer = self.gatherer(&rule.rule);
            let timeout = rule.rule.timeout;
            let count = objects.len() as u64;
            let span = tracing::info_span!("lookup", otel.name = "enrichment.lookup", rule = %rule.rule.name, values = count);
            let task = lookups.spawn(
                async move {
                    match gatherer {
                        Ok(gatherer) => look_up(&gatherer, objects, timeout).await,
                        Err(Unavailable(why)) => Outcome::Unavailable(why),
                    }
                }
                .instrument(span),
            );
            for_rule.insert(task.id(), (rule_index, wanted, count));
        }
        while let Some(done) = lookups.join_next_with_id().await {
            let (id, outcome) = match done {
                Ok((id, outcome)) => (id, outcome),
                Err(failed) => (
                    failed.id(),
                    Outcome::Unavailable("the lookup failed".to_owned()),
                ),
            };
            let Some((rule_index, wanted, lookups)) = for_rule.remove(&id) else {
                continue;
            };
            let rule = &active.rules[rule_index].rule;
            let mut tally = RuleTally {
                events: distinct_events(&wanted),
                lookups,
                ..Default::default()
            };
            match outcome {
                Outcome::Answered(results) => {
                    tally.matches = state.answered(rule, &events, wanted, &results);
                }
                Outcome::TimedOut => {
                    tally.timed_out = tally.events;
                    state.missed(&wanted, EnrichmentStatus::TimedOut);
                }
                Outcome::Unavailable(why) => {
                    tracing::warn!(rule = %rule.name, error = %why, events = tally.events, "events go on without threat intel");
                    tally.source_unavailable = tally.events;
                    state.missed(&wanted, EnrichmentStatus::SourceUnavailable);
                }
            }
            self.stats.rule(&rule.id, &rule.name, tally);
        }
        let statuses = state.final_statuses();
        let counts = statuses.iter().copied().collect();
        let enriched = (batch.events.iter().zip(state.added))
            .zip(statuses)
            .map(|((bytes, ti), status)| enriched_event(bytes, &ti, status as i32))
            .collect();
        let answer = WireEnrichBatch {
            batch_id: batch.batch_id,
            events: enriched,
            rules: None,
            traceparent: String::new(),
        };
        metrics::batch_enriched(started.elapsed());
        Ok((answer, counts))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Looks `objects` up through the rule's gathering, all within `timeout`.
async fn look_up(gatherer: &Gatherer, objects: Vec<LookupObject>, timeout: Duration) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, gatherer.lookup(objects, deadline)).await {
        Ok(Ok(results)) => Outcome::Answered(results),
        // The source gives up on an exchange at the same deadline: past it, a failure is the
        // source being too slow, whichever of the two noticed first.
        Ok(Err(_)) if tokio::time::Instant::now() >= deadline => Outcome::TimedOut,
        Ok(Err(Unavailable(why))) => Outcome::Unavailable(why),
        Err(_) => Outcome::TimedOut,
    }
}
