//! The collector's side of enrichment: one long-lived `Enrich` stream per collector, opened on
//! its first batch and again after a failure, each batch naming the rules the collector links
//! (so a change of links applies from the next batch). A batch the enrichment service does
//! not answer in time, or cannot take, goes on without threat intel, its events marked
//! `TIMED_OUT` or `SOURCE_UNAVAILABLE` — never dropped.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::{client::Grpc, transport::Channel};
use xdr_proto::{
    codec::XdrCodec,
    pb::{EnrichBatch, EnrichmentStatus, Event, RuleSelection},
    wire::WireEnrichBatch,
};

/// Batches of one stream at the enrichment service at once: as many as it works on (it reads
/// no more), so answers are always being read while batches wait.
const BATCHES_IN_FLIGHT: usize = 8;
/// How long opening a stream may take before its batches go on without threat intel.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// A stream no batch used for this long is closed (a deleted collector's with it).
const IDLE: Duration = Duration::from_secs(300);
/// The largest answer taken: the enrichment service takes batches up to this size too.
const MAX_ANSWER_BYTES: usize = 64 << 20;

type Answer = Result<Vec<Event>, (EnrichmentStatus, String)>;

struct Pending {
    batch: WireEnrichBatch,
    answer: oneshot::Sender<Answer>,
}

/// Every collector's `Enrich` stream, over one channel to the enrichment service.
pub struct EnrichmentLink {
    channel: Channel,
    /// How long a batch waits for its answer: the collector's bound over the rules' timeouts.
    wait: Duration,
    streams: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl EnrichmentLink {
    pub fn new(channel: Channel, wait: Duration) -> Self {
        EnrichmentLink {
            channel,
            wait,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// `events` enriched by the rules `rule_ids` names, through `collector`'s stream; with
    /// no rules, marked not enriched.
    pub async fn enrich(
        &self,
        collector: &str,
        rule_ids: &[String],
        events: Vec<Event>,
    ) -> Vec<Event> {
        if rule_ids.is_empty() || events.is_empty() {
            return marked(events, EnrichmentStatus::NotEnriched);
        }
        let batch = WireEnrichBatch {
            batch_id: 0,
            events: events
                .iter()
                .map(|e| Bytes::from(e.encode_to_vec()))
                .collect(),
            rules: Some(RuleSelection {
                rule_ids: rule_ids.to_vec(),
            }),
            traceparent: xdr_mesh::trace::current(),
        };
        let (answer, answered) = oneshot::channel();
        let mut pending = Pending { batch, answer };
        // A stream whose task ended (idle, or the service shutting down) is started again.
        for _ in 0..2 {
            let stream = self.stream(collector);
            match stream.send(pending).await {
                Ok(()) => break,
                Err(mpsc::error::SendError(back)) => {
                    pending = back;
                    self.forget(collector, &stream);
                }
            }
        }
        match tokio::time::timeout(self.wait, answered).await {
            Ok(Ok(Ok(enriched))) if enriched.len() == events.len() => enriched,
            Ok(Ok(Ok(enriched))) => {
                tracing::warn!(
                    collector,
                    sent = events.len(),
                    answered = enriched.len(),
                    "enrichment answered another number of events"
                );
                marked(events, EnrichmentStatus::SourceUnavailable)
            }
            Ok(Ok(Err((status, why)))) => {
                tracing::warn!(collector, error = %why, events = events.len(), "events go on without threat intel");
                marked(events, status)
            }
            Ok(Err(_)) => marked(events, EnrichmentStatus::SourceUnavailable),
            Err(_) => {
                tracing::warn!(collector, wait = ?self.wait, events = events.len(), "enrichment did not answer in time; events go on without threat intel");
                marked(events, EnrichmentStatus::TimedOut)
            }
        }
    }

    fn stream(&self, collector: &str) -> mpsc::Sender<Pending> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stream) = streams.get(collector).filter(|s| !s.is_closed()) {
            return stream.clone();
        }
        let (sender, batches) = mpsc::channel(BATCHES_IN_FLIGHT);
        tokio::spawn(run_stream(
            self.channel.clone(),
            collector.to_owned(),
            batches,
        ));
        streams.insert(collector.to_owned(), sender.clone());
        sender
    }

    /// Closes collector `id`'s stream (deleted): its task ends once its batches are answered.
    pub fn forget_collector(&self, id: &str) {
        (self.streams.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    fn forget(&self, collector: &str, stream: &mpsc::Sender<Pending>) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if streams
            .get(collector)
            .is_some_and(|s| s.same_channel(stream))
        {
            streams.remove(collector);
        }
    }
}

fn marked(mut events: Vec<Event>, status: EnrichmentStatus) -> Vec<Event> {
    for event in &mut events {
        event.enrichment_status = status as i32;
    }
    events
}

/// One collector's stream: opened at its first batch, its answers paired with its batches in
/// order; when it fails, every batch waiting is answered with the failure and the next batch
/// opens a new one.
async fn run_stream(channel: Channel, collector: String, mut batches: mpsc::Receiver<Pending>) {
    let mut next_id = 0_u64;
    let mut waiting: VecDeque<(u64, oneshot::Sender<Answer>)> = VecDeque::new();
    'open: loop {
        let first = match tokio::time::timeout(IDLE, batches.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) | Err(_) => return,
        };
        let (requests, outgoing) = mpsc::channel::<WireEnrichBatch>(BATCHES_IN_FLIGHT + 1);
        let mut send = |pending: Pending, waiting: &mut VecDeque<_>| {
            next_id += 1;
            let batch = WireEnrichBatch {
                batch_id: next_id,
                ..pending.batch
            };
            waiting.push_back((next_id, pending.answer));
            // Never full: at most BATCHES_IN_FLIGHT are sent and not answered.
            requests.try_send(batch).is_ok()
        };
        send(first, &mut waiting);
        let mut answers =
            match tokio::time::timeout(OPEN_TIMEOUT, open(channel.clone(), outgoing)).await {
                Ok(Ok(answers)) => answers,
                Ok(Err(status)) => {
                    fail(
                        &mut waiting,
                        EnrichmentStatus::SourceUnavailable,
                        &status.to_string(),
                    );
                    continue 'open;
                }
                Err(_) => {
                    fail(
                        &mut waiting,
                        EnrichmentStatus::SourceUnavailable,
                        "the Enrich stream did not open in time",
                    );
                    continue 'open;
                }
            };
        tracing::debug!(collector, "Enrich stream open");
        loop {
            tokio::select! {
                batch = batches.recv(), if waiting.len() < BATCHES_IN_FLIGHT => match batch {
                    Some(pending) => {
                        if !send(pending, &mut waiting) {
                            fail(&mut waiting, EnrichmentStatus::SourceUnavailable, "the Enrich stream closed");
                            continue 'open;
                        }
                    }
                    None => return,
                },
                answer = answers.message() => match answer {
                    Ok(Some(batch)) => match waiting.pop_front() {
                        Some((id, answer)) if id == batch.batch_id => {
                            let _ = answer.send(Ok(batch.events));
                        }
                        _ => {
                            fail(&mut waiting, EnrichmentStatus::SourceUnavailable, "the Enrich stream answered out of order");
                            continue 'open;
                        }
                    },
                    Ok(None) => {
                        fail(&mut waiting, EnrichmentStatus::SourceUnavailable, "the Enrich stream ended");
                        continue 'open;
                    }
                    Err(status) => {
                        fail(&mut waiting, EnrichmentStatus::SourceUnavailable, &status.to_string());
                        continue 'open;
                    }
                },
                _ = tokio::time::sleep(IDLE), if waiting.is_empty() => {
                    tracing::debug!(collector, "Enrich stream idle; closed");
                    return;
                }
            }
        }
    }
}

fn fail(
    waiting: &mut VecDeque<(u64, oneshot::Sender<Answer>)>,
    status: EnrichmentStatus,
    why: &str,
) {
    for (_, answer) in waiting.drain(..) {
        let _ = answer.send(Err((status, why.to_owned())));
    }
}

async fn open(
    channel: Channel,
    batches: mpsc::Receiver<WireEnrichBatch>,
) -> Result<tonic::Streaming<EnrichBatch>, tonic::Status> {
    let mut grpc = Grpc::new(channel)
        .max_decoding_message_size(MAX_ANSWER_BYTES)
        .max_encoding_message_size(MAX_ANSWER_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("the enrichment service: {e}")))?;
    let path = http::uri::PathAndQuery::from_static("/xdr.v1.Enrichment/Enrich");
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(batches));
    let response = grpc
        .streaming(
            request,
            path,
            XdrCodec::<WireEnrichBatch, EnrichBatch>::default(),
        )
        .await?;
    Ok(response.into_inner())
}
