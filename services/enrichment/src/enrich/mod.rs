//! Enriching one batch of events: each active rule whose tenant and filter take an event
//! contributes the event's mapped field values; each rule's values are looked up once per
//! batch (identical values together), held to the rule's RPS, through the rule's source, whose
//! gathering task joins them with other batches' values, all within the rule's timeout.
//! An event whose answers do not come in time, or whose source is down, goes on without
//! them, marked so: never dropped, never held past the timeout.
//!
//! Events are read from the bytes they came in, and answered as those same bytes followed by
//! their new matches (as the source encoded them) and status: nothing is encoded twice.

mod batch;

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prost::Message;
use tokio::task::JoinSet;
use xdr_mesh::tls::TlsMaterial;
use xdr_proto::{
    pb::{EnrichmentRule, EnrichmentStatus, Event, LookupObject, SourceKind},
    wire::{WireEnrichBatch, WireLookupResult, enriched_event},
};

use self::batch::{BatchState, distinct_events, wanted_by};
use crate::{
    catalog::SharedCatalog,
    metrics,
    rule::timeout_of,
    source::{
        CyberTraceSource, Gatherer, MAX_BATCH_OBJECTS, Source, ThreatIntelSource, Unavailable,
    },
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
type SourceKey = (i32, String, u32);

pub struct Enricher {
    catalog: Arc<SharedCatalog>,
    tls: TlsMaterial,
    /// The ThreatIntel service a rule without a server URL uses.
    default_threatintel: String,
    /// Sources by what they are, shared by every stream and every rule naming the same one;
    /// those no active rule uses are dropped when the rules change.
    sources: Mutex<HashMap<SourceKey, Arc<Gatherer>>>,
    /// Each rule's RPS ceiling, shared by every stream, by (rule id, RPS).
    limiters: Mutex<HashMap<(String, u32), Arc<DefaultDirectRateLimiter>>>,
    stats: Stats,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A rule's RPS as the bucket takes it (0, never stored, would be no lookups at all).
fn rps_of(rule: &EnrichmentRule) -> NonZeroU32 {
    NonZeroU32::new(rule.rps).unwrap_or(NonZeroU32::MIN)
}

impl Enricher {
    /// The enricher, and a task dropping its sources and RPS buckets when no active rule uses
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
            limiters: Mutex::new(HashMap::new()),
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

    fn source_key(&self, rule: &EnrichmentRule) -> SourceKey {
        let target = if rule.server_url.is_empty() {
            self.default_threatintel.clone()
        } else {
            rule.server_url.clone()
        };
        (rule.source_kind, target, rule.connections)
    }

    /// A new source: its lanes and connections live as long as it does.
    fn new_source(&self, (kind, target, connections): &SourceKey) -> Result<Gatherer, Unavailable> {
        Ok(match SourceKind::try_from(*kind) {
            Ok(SourceKind::Cybertrace) => {
                Source::CyberTrace(CyberTraceSource::new(target, *connections))
            }
            _ => Source::ThreatIntel(
                ThreatIntelSource::connect(target, *connections, &self.tls)
                    .map_err(|e| Unavailable(e.to_string()))?,
            ),
        }
        .gathered())
    }

    fn source(&self, rule: &EnrichmentRule) -> Result<Arc<Gatherer>, Unavailable> {
        let key = self.source_key(rule);
        let mut sources = locked(&self.sources);
        if let Some(source) = sources.get(&key) {
            return Ok(source.clone());
        }
        let source = Arc::new(self.new_source(&key)?);
        sources.insert(key, source.clone());
        Ok(source)
    }

    /// The token bucket holding `rule` to its RPS: a hard ceiling on lookups per second,
    /// with at most one second's worth at once.
    fn limiter(&self, rule: &EnrichmentRule) -> Arc<DefaultDirectRateLimiter> {
        let rps = rps_of(rule);
        locked(&self.limiters)
            .entry((rule.id.clone(), rps.get()))
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(rps))))
            .clone()
    }

    /// Drops the sources and RPS buckets no active rule uses. Batches still using one keep
    /// it until they are answered; then its tasks end and its connections close.
    fn prune(&self) {
        let active = self.catalog.active();
        let sources: HashSet<SourceKey> = (active.rules.iter())
            .map(|r| self.source_key(&r.rule))
            .collect();
        let limiters: HashSet<(String, u32)> = (active.rules.iter())
            .map(|r| (r.rule.id.clone(), rps_of(&r.rule).get()))
            .collect();
        locked(&self.sources).retain(|key, _| sources.contains(key));
        locked(&self.limiters).retain(|key, _| limiters.contains(key));
    }

    /// Whether `rule`'s source answers `probe` within the rule's timeout. A rule being
    /// drafted gets a source of its own, which ends with the test.
    pub async fn test(
        &self,
        rule: &EnrichmentRule,
        probe: Vec<LookupObject>,
    ) -> Result<(), String> {
        let key = self.source_key(rule);
        let kept = locked(&self.sources).get(&key).cloned();
        let source = match kept {
            Some(source) => source,
            None => Arc::new(self.new_source(&key).map_err(|e| e.to_string())?),
        };
        let bucket = Arc::new(RateLimiter::direct(Quota::per_second(rps_of(rule))));
        match look_up(source, (bucket, rule.rps), probe, timeout_of(rule)).await {
            Outcome::Answered(_) => Ok(()),
            Outcome::TimedOut => Err(format!("no answer within {:?}", timeout_of(rule))),
            Outcome::Unavailable(why) => Err(why),
        }
    }

    /// `batch`, enriched by every active rule that takes its events, and its events' statuses
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
        let active = self.catalog.active();
        let mut state = BatchState::new(events.len());
        let mut lookups = JoinSet::new();
        // What each lookup task is for, kept here: a task that panics still names its events.
        let mut for_rule = HashMap::new();
        for (rule_index, rule) in active.rules.iter().enumerate() {
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
            let source = self.source(&rule.rule);
            let limit = (self.limiter(&rule.rule), rule.rule.rps);
            let timeout = timeout_of(&rule.rule);
            let count = objects.len() as u64;
            let task = lookups.spawn(async move {
                match source {
                    Ok(source) => look_up(source, limit, objects, timeout).await,
                    Err(Unavailable(why)) => Outcome::Unavailable(why),
                }
            });
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
        };
        metrics::batch_enriched(started.elapsed());
        Ok((answer, counts))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Looks `objects` up in batches spread over the source's lanes, each batch sent once the
/// rule's bucket holds a token per object, all within `timeout`.
async fn look_up(
    source: Arc<Gatherer>,
    (limiter, rps): (Arc<DefaultDirectRateLimiter>, u32),
    objects: Vec<LookupObject>,
    timeout: Duration,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    // A batch never asks for more tokens than the bucket holds: one second's worth.
    let chunk_size = MAX_BATCH_OBJECTS.min(rps as usize).max(1);
    let count = objects.len().div_ceil(chunk_size);
    let mut chunks = JoinSet::new();
    let mut rest = objects;
    for n in 0..count {
        // The objects move into their chunks; the values are not copied again.
        let tail = rest.split_off(chunk_size.min(rest.len()));
        let chunk = std::mem::replace(&mut rest, tail);
        let (source, limiter) = (source.clone(), limiter.clone());
        chunks.spawn(async move {
            let tokens = NonZeroU32::new(chunk.len() as u32).expect("chunks are not empty");
            let waited = match limiter.check_n(tokens) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => {
                    let since = std::time::Instant::now();
                    let ready = limiter.until_n_ready(tokens).await;
                    metrics::throttled(tokens.get(), since.elapsed());
                    ready
                }
                Err(too_many) => Err(too_many),
            };
            if waited.is_err() {
                return (
                    n,
                    Err(Unavailable("a batch larger than the rule's RPS".to_owned())),
                );
            }
            (n, source.lookup(chunk, deadline).await)
        });
    }
    let all = async {
        let mut parts = vec![Vec::new(); count];
        while let Some(done) = chunks.join_next().await {
            let (n, answer) = done.map_err(|_| Unavailable("the lookup failed".to_owned()))?;
            parts[n] = answer?;
        }
        Ok::<_, Unavailable>(parts.concat())
    };
    match tokio::time::timeout_at(deadline, all).await {
        Ok(Ok(results)) => Outcome::Answered(results),
        // The source gives up on an exchange at the same deadline: past it, a failure is the
        // source being too slow, whichever of the two noticed first.
        Ok(Err(_)) if tokio::time::Instant::now() >= deadline => Outcome::TimedOut,
        Ok(Err(Unavailable(why))) => Outcome::Unavailable(why),
        Err(_) => Outcome::TimedOut,
    }
}
