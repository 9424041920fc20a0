//! What the rules want of one batch's events and what they give back: the values each rule
//! looks up (each distinct value once), and the matches and statuses the answers leave on
//! each event.

use std::borrow::Cow;

use bytes::Bytes;
use prost::Message;
use rustc_hash::FxHashMap;
use xdr_filter::{field_texts, resources::Resources};
use xdr_proto::{
    pb::{EnrichmentStatus, Event, LookupObject, TiMatch},
    wire::{WireLookupResult, ti_match_for_field},
};

use crate::{
    catalog::ActiveRule,
    rule::{Rule, SHARED_TENANT},
};

/// One value of one event to look up for one rule.
pub struct Wanted {
    pub event: usize,
    /// The rule's mapping row the value came from.
    pub row: usize,
    pub object: usize,
}

/// What the rules did to each event of one batch so far.
pub struct BatchState {
    /// Whether some rule looked a value of the event up.
    pub touched: Vec<bool>,
    /// How the event's lookups ended, when it was touched.
    statuses: Vec<EnrichmentStatus>,
    /// The encoded matches to append to the event.
    pub added: Vec<Vec<Bytes>>,
}

impl BatchState {
    pub fn new(events: usize) -> Self {
        BatchState {
            touched: vec![false; events],
            statuses: vec![EnrichmentStatus::Complete; events],
            added: vec![Vec::new(); events],
        }
    }

    /// Adds `rule`'s answers to the events that wanted them; how many matches were added.
    pub fn answered(
        &mut self,
        rule: &Rule,
        events: &[Event],
        wanted: Vec<Wanted>,
        results: &[WireLookupResult],
    ) -> u64 {
        let mut matches = 0;
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
                if !self.added[w.event].contains(&found) && !already_carries(event, &found) {
                    self.added[w.event].push(found);
                    matches += 1;
                }
            }
        }
        matches
    }

    /// Marks the events that wanted answers which did not come.
    pub fn missed(&mut self, wanted: &[Wanted], status: EnrichmentStatus) {
        for w in wanted {
            // A source down outranks a timeout: it says more about what to fix.
            if self.statuses[w.event] != EnrichmentStatus::SourceUnavailable {
                self.statuses[w.event] = status;
            }
        }
    }

    pub fn final_statuses(&self) -> Vec<EnrichmentStatus> {
        (self.touched.iter().zip(&self.statuses))
            .map(|(&touched, &status)| {
                if touched {
                    status
                } else {
                    EnrichmentStatus::NotEnriched
                }
            })
            .collect()
    }
}

/// How many events `wanted` names (its entries come grouped by event).
pub fn distinct_events(wanted: &[Wanted]) -> u64 {
    let mut previous = None;
    wanted
        .iter()
        .filter(|w| previous.replace(w.event) != Some(w.event))
        .count() as u64
}

/// Whether `event` came carrying the encoded match `found` (enriched before, sent again).
fn already_carries(event: &Event, found: &Bytes) -> bool {
    !event.ti.is_empty() && TiMatch::decode(found.clone()).is_ok_and(|m| event.ti.contains(&m))
}

/// The distinct values `rule` looks up for `events`, and which event field wants each.
pub fn wanted_by(
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
            let kind = row.kind;
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

#[cfg(test)]
mod tests {
    use xdr_proto::pb::{EnrichmentRule, FieldMapping};

    use super::*;

    fn rule() -> Rule {
        Rule::of(&EnrichmentRule {
            name: "r".to_owned(),
            mapping: vec![FieldMapping {
                field: "RequestUrl".to_owned(),
                indicator_type: 2,
            }],
            ..Default::default()
        })
    }

    fn found(category: &str) -> TiMatch {
        TiMatch {
            value: "http://fakess123.nu".to_owned(),
            category: category.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn answers_add_each_match_once_and_not_those_an_event_already_carries() {
        let carried = TiMatch {
            field: "RequestUrl".to_owned(),
            ..found("old")
        };
        let events = vec![
            Event::default(),
            Event {
                ti: vec![carried],
                ..Default::default()
            },
        ];
        let wanted = |event| Wanted {
            event,
            row: 0,
            object: 0,
        };
        let result = WireLookupResult {
            matches: [found("old"), found("new"), found("new")]
                .iter()
                .map(|m| m.encode_to_vec().into())
                .collect(),
            error: String::new(),
        };
        let mut state = BatchState::new(2);
        let wanted = vec![wanted(0), wanted(1)];
        assert_eq!(distinct_events(&wanted), 2);
        let added = state.answered(&rule(), &events, wanted, &[result]);
        assert_eq!(
            added, 3,
            "old and new for the first event, new for the second"
        );
        let categories = |event: usize| -> Vec<String> {
            state.added[event]
                .iter()
                .map(|m| TiMatch::decode(m.clone()).unwrap())
                .inspect(|m| assert_eq!(m.field, "RequestUrl"))
                .map(|m| m.category)
                .collect()
        };
        assert_eq!(categories(0), ["old", "new"]);
        assert_eq!(categories(1), ["new"]);
    }

    #[test]
    fn a_missed_answer_marks_its_events_and_source_down_outranks_timeout() {
        let mut state = BatchState::new(3);
        state.touched = vec![true, true, false];
        let wanted = |event| Wanted {
            event,
            row: 0,
            object: 0,
        };
        state.missed(&[wanted(0)], EnrichmentStatus::SourceUnavailable);
        state.missed(&[wanted(0), wanted(1)], EnrichmentStatus::TimedOut);
        assert_eq!(
            state.final_statuses(),
            [
                EnrichmentStatus::SourceUnavailable,
                EnrichmentStatus::TimedOut,
                EnrichmentStatus::NotEnriched
            ]
        );
    }
}
