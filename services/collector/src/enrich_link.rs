//! The collector's side of enrichment: one long-lived `Enrich` stream per collector, opened on
//! its first batch and again after a failure, each batch naming the rules the collector links
//! (so a change of links applies from the next batch). Streams go to the enrichment replicas
//! that serve (`xdr_mesh::replicas`); when a stream breaks, its replica is passed over and
//! the batches it had not answered are sent again on a new stream — to another replica — a
//! few times within their wait. A batch the enrichment service does not answer in time, or
//! cannot take, goes on without threat intel, its events marked `TIMED_OUT` or
//! `SOURCE_UNAVAILABLE` — never dropped.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tonic::client::Grpc;
use xdr_mesh::replicas::{Balanced, ReplicaKey, Replicas};
use xdr_proto::{
    codec::XdrCodec,
    pb::{EnrichmentStatus, Event, RuleSelection},
    wire::WireEnrichBatch,
};

/// Batches of one stream at the enrichment service at once: as many as it works on (it reads
/// no more), so answers are always being read while batches wait.
const BATCHES_IN_FLIGHT: usize = 8;
/// How long opening a stream may take before its batches go on without threat intel.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Streams a batch is sent on at most (a broken stream's batches go again on the next).
const MAX_SENDS: u32 = 4;
/// The pause before a stream is opened again after a failure, doubling up to a second.
const REOPEN_FIRST: Duration = Duration::from_millis(100);
const REOPEN_MOST: Duration = Duration::from_secs(1);
/// A stream no batch used for this long is closed (a deleted collector's with it).
const IDLE: Duration = Duration::from_secs(300);
/// The largest answer taken: the enrichment service takes batches up to this size too.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The enriched events, encoded, or why there are none.
type Answer = Result<Vec<Bytes>, (EnrichmentStatus, String)>;

struct Pending {
    batch: WireEnrichBatch,
    answer: oneshot::Sender<Answer>,
    /// Streams it was sent on so far.
    sends: u32,
}

/// A batch sent on a stream and not answered yet.
struct InFlight {
    id: u64,
    pending: Pending,
}

/// Every collector's `Enrich` stream, over the enrichment service's replicas.
pub struct EnrichmentLink {
    replicas: Replicas,
    /// How long a batch waits for its answer: the collector's bound over the rules' timeouts.
    wait: Duration,
    streams: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl EnrichmentLink {
    pub fn new(replicas: Replicas, wait: Duration) -> Self {
        EnrichmentLink {
            replicas,
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
    ) -> Enriched {
        if rule_ids.is_empty() || events.is_empty() {
            return marked(events, EnrichmentStatus::NotEnriched);
        }
        let sent: Vec<Bytes> = events
            .iter()
            .map(|e| Bytes::from(e.encode_to_vec()))
            .collect();
        let batch = WireEnrichBatch {
            batch_id: 0,
            events: sent.clone(),
            rules: Some(RuleSelection {
                rule_ids: rule_ids.to_vec(),
            }),
            traceparent: xdr_mesh::trace::current(),
        };
        let (answer, answered) = oneshot::channel();
        let mut pending = Pending {
            batch,
            answer,
            sends: 0,
        };
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
            Ok(Ok(Ok(enriched))) if enriched.len() == events.len() => {
                with_answers(collector, events, &sent, enriched)
            }
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
            self.replicas.clone(),
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

/// `events` with what their answers added. The enrichment service answers an event as it was
/// sent followed by its matches and status (`xdr_proto::wire::enriched_event`): only that
/// tail is decoded, into the event already held, rather than the whole event again (the
/// decode and the drop of the event sent were most of the collector's enrichment cost). An
/// answer that does not begin with what was sent is decoded whole; one that does not decode
/// leaves its event unenriched.
/// Events after enrichment.
pub struct Enriched {
    pub events: Vec<Event>,
    /// Each event encoded, when the enrichment service answered every one: its answers are
    /// the enriched events' encodings, so the disk buffer writes them as they came instead
    /// of encoding the events again.
    pub encoded: Option<Vec<Bytes>>,
}

fn with_answers(
    collector: &str,
    mut events: Vec<Event>,
    sent: &[Bytes],
    answers: Vec<Bytes>,
) -> Enriched {
    let mut all_decoded = true;
    for ((event, sent), answer) in events.iter_mut().zip(sent).zip(&answers) {
        let decoded = match answer.strip_prefix(sent.as_ref()) {
            // `sent` is the event encoded: the answer decodes to the event with `added`.
            Some(added) => event.merge(added),
            None => Event::decode(answer.as_ref()).map(|whole| *event = whole),
        };
        if let Err(error) = decoded {
            tracing::warn!(collector, %error, "enrichment answered an event that does not decode");
            event.ti.clear();
            event.enrichment_status = EnrichmentStatus::SourceUnavailable as i32;
            all_decoded = false;
        }
    }
    Enriched {
        events,
        encoded: all_decoded.then_some(answers),
    }
}

fn marked(mut events: Vec<Event>, status: EnrichmentStatus) -> Enriched {
    for event in &mut events {
        event.enrichment_status = status as i32;
    }
    Enriched {
        events,
        encoded: None,
    }
}

/// One collector's stream: opened at its first batch, its answers paired with its batches in
/// order. When it fails, its replica is passed over and the batches it had not answered are
/// sent on the next stream (up to [`MAX_SENDS`] streams each, while their caller still
/// waits); the others are answered with the failure.
async fn run_stream(replicas: Replicas, collector: String, mut batches: mpsc::Receiver<Pending>) {
    let mut next_id = 0_u64;
    let mut carried: VecDeque<Pending> = VecDeque::new();
    let mut reopen_after = REOPEN_FIRST;
    'open: loop {
        if carried.is_empty() {
            match tokio::time::timeout(IDLE, batches.recv()).await {
                Ok(Some(first)) => carried.push_back(first),
                Ok(None) | Err(_) => return,
            }
        } else {
            tokio::time::sleep(reopen_after).await;
            reopen_after = (reopen_after * 2).min(REOPEN_MOST);
        }
        let (requests, outgoing) = mpsc::channel::<WireEnrichBatch>(BATCHES_IN_FLIGHT + 1);
        let mut waiting: VecDeque<InFlight> = VecDeque::new();
        let mut send = |mut pending: Pending, waiting: &mut VecDeque<InFlight>| {
            next_id += 1;
            pending.sends += 1;
            let batch = WireEnrichBatch {
                batch_id: next_id,
                ..pending.batch.clone()
            };
            waiting.push_back(InFlight {
                id: next_id,
                pending,
            });
            // Never full: at most BATCHES_IN_FLIGHT are sent and not answered.
            requests.try_send(batch).is_ok()
        };
        for pending in carried.drain(..) {
            send(pending, &mut waiting);
        }
        let (mut answers, replica) =
            match tokio::time::timeout(OPEN_TIMEOUT, open(replicas.service(), outgoing)).await {
                Ok(Ok(opened)) => opened,
                // No replica serves, as the health asked just now says (the balanced service
                // asks again before it refuses): the batches go on without threat intel at
                // once rather than each wait for one.
                Ok(Err(status)) if replicas.any_serving() == Some(false) => {
                    fail(&mut waiting, &status.to_string());
                    continue 'open;
                }
                Ok(Err(status)) => {
                    carried = again(&mut waiting, &status.to_string());
                    continue 'open;
                }
                Err(_) => {
                    carried = again(&mut waiting, "the Enrich stream did not open in time");
                    continue 'open;
                }
            };
        tracing::debug!(collector, ?replica, "Enrich stream open");
        loop {
            tokio::select! {
                batch = batches.recv(), if waiting.len() < BATCHES_IN_FLIGHT => match batch {
                    Some(pending) => {
                        if !send(pending, &mut waiting) {
                            carried = broken(&replicas, replica, &collector, "the Enrich stream closed", &mut waiting);
                            continue 'open;
                        }
                    }
                    None => return,
                },
                answer = answers.message() => match answer {
                    Ok(Some(batch)) => match waiting.pop_front() {
                        Some(sent) if sent.id == batch.batch_id => {
                            let _ = sent.pending.answer.send(Ok(batch.events));
                            reopen_after = REOPEN_FIRST;
                        }
                        Some(sent) => {
                            waiting.push_front(sent);
                            carried = broken(&replicas, replica, &collector, "the Enrich stream answered out of order", &mut waiting);
                            continue 'open;
                        }
                        None => {
                            carried = broken(&replicas, replica, &collector, "the Enrich stream answered a batch it was not sent", &mut waiting);
                            continue 'open;
                        }
                    },
                    Ok(None) => {
                        carried = broken(&replicas, replica, &collector, "the Enrich stream ended", &mut waiting);
                        continue 'open;
                    }
                    Err(status) => {
                        carried = broken(&replicas, replica, &collector, status.to_string(), &mut waiting);
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

/// Passes over the replica of a stream that broke (when known); the batches to send again.
fn broken(
    replicas: &Replicas,
    replica: Option<ReplicaKey>,
    collector: &str,
    why: impl AsRef<str>,
    waiting: &mut VecDeque<InFlight>,
) -> VecDeque<Pending> {
    let why = why.as_ref();
    if let Some(replica) = replica {
        tracing::warn!(
            collector,
            replica = replicas.address(replica),
            error = why,
            "an Enrich stream broke; its batches go again on another"
        );
        replicas.eject(replica);
    }
    again(waiting, why)
}

/// Answers every batch of `waiting` `SOURCE_UNAVAILABLE` with `why`.
fn fail(waiting: &mut VecDeque<InFlight>, why: &str) {
    for InFlight { pending, .. } in waiting.drain(..) {
        let _ = pending
            .answer
            .send(Err((EnrichmentStatus::SourceUnavailable, why.to_owned())));
    }
}

/// The batches of a failed stream to send again: those sent fewer than [`MAX_SENDS`] times
/// whose caller still waits. The others are answered `SOURCE_UNAVAILABLE` with `why`.
fn again(waiting: &mut VecDeque<InFlight>, why: &str) -> VecDeque<Pending> {
    let mut carried = VecDeque::new();
    for InFlight { pending, .. } in waiting.drain(..) {
        if pending.answer.is_closed() {
            continue;
        }
        if pending.sends < MAX_SENDS {
            carried.push_back(pending);
        } else {
            let _ = pending
                .answer
                .send(Err((EnrichmentStatus::SourceUnavailable, why.to_owned())));
        }
    }
    carried
}

type Opened = Result<(tonic::Streaming<WireEnrichBatch>, Option<ReplicaKey>), tonic::Status>;

/// Opens an `Enrich` stream on a replica that serves: its answers, and which replica it is.
async fn open(service: Balanced, batches: mpsc::Receiver<WireEnrichBatch>) -> Opened {
    let mut grpc = Grpc::new(service)
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
            XdrCodec::<WireEnrichBatch, WireEnrichBatch>::default(),
        )
        .await?;
    let replica = response.extensions().get::<ReplicaKey>().copied();
    Ok((response.into_inner(), replica))
}

#[cfg(test)]
mod tests {
    use xdr_proto::{pb::TiMatch, wire::enriched_event};

    use super::*;

    fn event(id: &str) -> Event {
        Event {
            id: id.into(),
            tenant: "Main".into(),
            raw: r#"{"RequestUrl":"http://fakess123bn.nu"}"#.into(),
            ..Default::default()
        }
    }

    #[test]
    fn answers_add_their_matches_whether_they_repeat_the_event_or_not() {
        let events = vec![event("a"), event("b"), event("c")];
        let sent: Vec<Bytes> = events.iter().map(|e| e.encode_to_vec().into()).collect();
        let found = TiMatch {
            category: "KL_Malicious_URL".into(),
            ..Default::default()
        };
        let found_bytes = [Bytes::from(found.encode_to_vec())];
        let enriched = EnrichmentStatus::Complete as i32;
        // As the enrichment service answers: the event as sent, then what it adds.
        let appended = enriched_event(&sent[0], &found_bytes, enriched);
        // Another encoding of the same event with its match: decoded whole.
        let whole = Event {
            ti: vec![found.clone()],
            enrichment_status: enriched,
            ..event("b")
        };
        // Not an event at all: the event goes on unenriched.
        let broken = Bytes::from_static(&[0x0a, 0xff]);
        let good = [appended, whole.encode_to_vec().into()];
        let Enriched { events, encoded } = with_answers(
            "c",
            events,
            &sent,
            vec![good[0].clone(), good[1].clone(), broken],
        );
        let answered = events;
        // An event answered but not decoded is changed here: the answers are not its bytes.
        assert!(encoded.is_none());
        assert_eq!(answered[0].ti, vec![found.clone()]);
        assert_eq!(answered[0].enrichment_status, enriched);
        assert_eq!(answered[0].raw, event("a").raw, "the event itself is kept");
        assert_eq!(answered[1], whole);
        assert!(answered[2].ti.is_empty());
        assert_eq!(
            answered[2].enrichment_status,
            EnrichmentStatus::SourceUnavailable as i32
        );
        assert_eq!(answered[2].id, "c");

        // Every answer decoded: they are the enriched events' encodings, kept for the buffer.
        let Enriched { events, encoded } =
            with_answers("c", vec![event("a"), event("b")], &sent[..2], good.to_vec());
        let encoded = encoded.expect("every answer decoded");
        for (event, bytes) in events.iter().zip(&encoded) {
            assert_eq!(&Event::decode(bytes.as_ref()).unwrap(), event);
        }
    }
}
