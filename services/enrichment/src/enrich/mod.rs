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
    collections::HashMap,
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

pub struct Enricher {
    catalog: Arc<SharedCatalog>,
    tls: TlsMaterial,
    /// The ThreatIntel service a rule without a server URL uses.
    default_threatintel: String,
    /// Sources by (kind, target, connections), shared by every stream.
    sources: Mutex<HashMap<(i32, String, u32), Arc<Gatherer>>>,
    /// Each rule's RPS ceiling, shared by every stream, by (rule id, RPS).
    limiters: Mutex<HashMap<(String, u32), Arc<DefaultDirectRateLimiter>>>,
    stats: Stats,
}

impl Enricher {
    pub fn new(catalog: Arc<SharedCatalog>, tls: TlsMaterial, default_threatintel: String) -> Self {
        Enricher {
            catalog,
            tls,
            default_threatintel,
            sources: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        }
    }

    fn source(&self, rule: &EnrichmentRule) -> Result<Arc<Gatherer>, Unavailable> {
        let target = if rule.server_url.is_empty() {
            self.default_threatintel.clone()
        } else {
            rule.server_url.clone()
        };
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (rule.source_kind, target, rule.connections);
        if let Some(source) = sources.get(&key) {
            return Ok(source.clone());
        }
        let source = Arc::new(
            match SourceKind::try_from(rule.source_kind) {
                Ok(SourceKind::Cybertrace) => {
                    Source::CyberTrace(CyberTraceSource::new(&key.1, key.2))
                }
                _ => Source::ThreatIntel(
                    ThreatIntelSource::connect(&key.1, key.2, &self.tls)
                        .map_err(|e| Unavailable(e.to_string()))?,
                ),
            }
            .gathered(),
        );
        sources.insert(key, source.clone());
        Ok(source)
    }

    /// The token bucket holding `rule` to its RPS: a hard ceiling on lookups per second,
    /// with at most one second's worth at once.
    fn limiter(&self, rule: &EnrichmentRule) -> Arc<DefaultDirectRateLimiter> {
        let rps = NonZeroU32::new(rule.rps).unwrap_or(NonZeroU32::MIN);
        self.limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((rule.id.clone(), rps.get()))
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(rps))))
            .clone()
    }

    /// Whether `rule`'s source answers `probe` within the rule's timeout.
    pub async fn test(
        &self,
        rule: &EnrichmentRule,
        probe: Vec<LookupObject>,
    ) -> Result<(), String> {
        let source = self.source(rule).map_err(|e| e.to_string())?;
        match look_up(
            source,
            (self.limiter(rule), rule.rps),
            probe,
            timeout_of(rule),
        )
        .await
        {
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
            lookups.spawn(async move {
                let outcome = match source {
                    Ok(source) => look_up(source, limit, objects, timeout).await,
                    Err(Unavailable(why)) => Outcome::Unavailable(why),
                };
                (rule_index, wanted, count, outcome)
            });
        }
        while let Some(done) = lookups.join_next().await {
            let (rule_index, wanted, lookups, outcome) =
                done.expect("a lookup task does not panic");
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
            if limiter.until_n_ready(tokens).await.is_err() {
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
            let (n, answer) = done.expect("a lookup task does not panic");
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
