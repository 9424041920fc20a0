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
    borrow::Cow,
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prost::Message;
use rustc_hash::FxHashMap;
use tokio::task::JoinSet;
use xdr_mesh::tls::TlsMaterial;
use xdr_proto::{
    pb::{EnrichmentRule, EnrichmentStatus, Event, LookupObject, SourceKind, TiMatch},
    wire::{WireEnrichBatch, WireLookupResult, enriched_event, ti_match_for_field},
};

use crate::{
    catalog::{ActiveRule, SharedCatalog},
    filter::field_texts,
    resources::Resources,
    rule::{SHARED_TENANT, mapping_kind, timeout_of},
    source::{
        CyberTraceSource, Gatherer, MAX_BATCH_OBJECTS, Source, ThreatIntelSource, Unavailable,
    },
};

/// How one rule's lookups for a batch ended.
enum Outcome {
    Answered(Vec<WireLookupResult>),
    TimedOut,
    Unavailable(String),
}

/// One value of one event to look up for one rule.
struct Wanted {
    event: usize,
    /// The rule's mapping row the value came from.
    row: usize,
    object: usize,
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
}

impl Enricher {
    pub fn new(catalog: Arc<SharedCatalog>, tls: TlsMaterial, default_threatintel: String) -> Self {
        Enricher {
            catalog,
            tls,
            default_threatintel,
            sources: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
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

    /// `batch`, enriched by every active rule that takes its events.
    pub async fn enrich(&self, batch: WireEnrichBatch) -> Result<WireEnrichBatch, InvalidEvent> {
        let events = batch
            .events
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                Event::decode(bytes.clone()).map_err(|source| InvalidEvent { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let active = self.catalog.active();
        let mut touched = vec![false; events.len()];
        let mut statuses = vec![EnrichmentStatus::Complete; events.len()];
        let mut added: Vec<Vec<Bytes>> = vec![Vec::new(); events.len()];
        let mut lookups = JoinSet::new();
        for (rule_index, rule) in active.rules.iter().enumerate() {
            let (objects, wanted) = wanted_by(rule, &active.resources, &events);
            for w in &wanted {
                touched[w.event] = true;
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
            lookups.spawn(async move {
                let outcome = match source {
                    Ok(source) => look_up(source, limit, objects, timeout).await,
                    Err(Unavailable(why)) => Outcome::Unavailable(why),
                };
                (rule_index, wanted, outcome)
            });
        }
        while let Some(done) = lookups.join_next().await {
            let (rule_index, wanted, outcome) = done.expect("a lookup task does not panic");
            let rule = &active.rules[rule_index].rule;
            let results = match outcome {
                Outcome::Answered(results) => results,
                Outcome::TimedOut | Outcome::Unavailable(_) => {
                    let status = match &outcome {
                        Outcome::TimedOut => EnrichmentStatus::TimedOut,
                        _ => EnrichmentStatus::SourceUnavailable,
                    };
                    if let Outcome::Unavailable(why) = &outcome {
                        tracing::warn!(rule = %rule.name, error = %why, events = wanted.len(), "events go on without threat intel");
                    }
                    for w in &wanted {
                        // A source down outranks a timeout: it says more about what to fix.
                        if statuses[w.event] != EnrichmentStatus::SourceUnavailable {
                            statuses[w.event] = status;
                        }
                    }
                    continue;
                }
            };
            for w in wanted {
                let Some(result) = results.get(w.object) else {
                    continue;
                };
                let (event, field) = (&events[w.event], &rule.mapping[w.row].field);
                if rule.debug {
                    tracing::debug!(rule = %rule.name, event = %event.id, field = %field, matches = result.matches.len(), error = %result.error, "enrichment answer");
                }
                for found in &result.matches {
                    let found = ti_match_for_field(found, field);
                    if !added[w.event].contains(&found) && !already_carries(event, &found) {
                        added[w.event].push(found);
                    }
                }
            }
        }
        let enriched = (batch.events.iter().zip(added))
            .zip(touched.into_iter().zip(statuses))
            .map(|((bytes, ti), (touched, status))| {
                let status = if touched {
                    status
                } else {
                    EnrichmentStatus::NotEnriched
                };
                enriched_event(bytes, &ti, status as i32)
            })
            .collect();
        Ok(WireEnrichBatch {
            batch_id: batch.batch_id,
            events: enriched,
        })
    }
}

/// Whether `event` came carrying the encoded match `found` (enriched before, sent again).
fn already_carries(event: &Event, found: &Bytes) -> bool {
    !event.ti.is_empty() && TiMatch::decode(found.clone()).is_ok_and(|m| event.ti.contains(&m))
}

/// The distinct values `rule` looks up for `events`, and which event field wants each.
fn wanted_by(
    rule: &ActiveRule,
    resources: &Resources,
    events: &[Event],
) -> (Vec<LookupObject>, Vec<Wanted>) {
    let mut objects = Vec::new();
    // Keyed by the events' own text: a value is copied once, into its lookup object.
    let mut index: FxHashMap<(i32, Cow<'_, str>), usize> = FxHashMap::default();
    let mut wanted = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if rule.rule.tenant != SHARED_TENANT && rule.rule.tenant != event.tenant {
            continue;
        }
        if rule
            .filter
            .as_ref()
            .is_some_and(|f| !f.matches(event, resources))
        {
            continue;
        }
        for (row_index, row) in rule.rule.mapping.iter().enumerate() {
            let kind = mapping_kind(row);
            for value in field_texts(event, &row.field) {
                if value.trim().is_empty() {
                    continue;
                }
                let object = *index.entry((kind as i32, value)).or_insert_with_key(|key| {
                    objects.push(LookupObject {
                        r#type: kind as i32,
                        value: key.1.clone().into_owned(),
                    });
                    objects.len() - 1
                });
                wanted.push(Wanted {
                    event: i,
                    row: row_index,
                    object,
                });
            }
        }
    }
    (objects, wanted)
}

/// Looks `objects` up in batches spread over the source's lanes, each batch sent once the
/// rule's bucket holds a token per object, all within `timeout`.
async fn look_up(
    source: Arc<Gatherer>,
    (limiter, rps): (Arc<DefaultDirectRateLimiter>, u32),
    objects: Vec<LookupObject>,
    timeout: Duration,
) -> Outcome {
    // A batch never asks for more tokens than the bucket holds: one second's worth.
    let chunk_size = MAX_BATCH_OBJECTS.min(rps as usize).max(1);
    let mut chunks = JoinSet::new();
    for (n, chunk) in objects.chunks(chunk_size).enumerate() {
        let (source, limiter, chunk) = (source.clone(), limiter.clone(), chunk.to_vec());
        chunks.spawn(async move {
            let tokens = NonZeroU32::new(chunk.len() as u32).expect("chunks are not empty");
            if limiter.until_n_ready(tokens).await.is_err() {
                return (
                    n,
                    Err(Unavailable("a batch larger than the rule's RPS".to_owned())),
                );
            }
            (n, source.lookup(chunk).await)
        });
    }
    let all = async {
        let mut parts = vec![Vec::new(); objects.len().div_ceil(chunk_size)];
        while let Some(done) = chunks.join_next().await {
            let (n, answer) = done.expect("a lookup task does not panic");
            parts[n] = answer?;
        }
        Ok::<_, Unavailable>(parts.concat())
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(Ok(results)) => Outcome::Answered(results),
        Ok(Err(Unavailable(why))) => Outcome::Unavailable(why),
        Err(_) => Outcome::TimedOut,
    }
}
