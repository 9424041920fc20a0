//! Micro-batching of HTTP input: the posts to one collector that arrive within a millisecond
//! share one `IngestStream` message, so thousands of one-event curls a second cost a few gRPC
//! messages. Each collector has a lane — a task owning one long-lived stream with a few
//! batches in flight — and each post is answered only from the reply to its own batch, with
//! its own events' ids and refusals, once the collector has acknowledged them (durable).
//! A stream that fails fails the posts waiting on it (the client is told to retry; none is
//! answered 200 for events the collector did not take) and the next batch opens a new one.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use xdr_mesh::replicas::Balanced as Channel;
use xdr_proto::pb::{
    EventError, IngestReply, IngestRequest, RawTraceRun, collector_client::CollectorClient,
};

use super::collectors::InputCollector;
use crate::problem::Problem;

/// How long the first post of a batch waits for others to join it.
const GATHER: Duration = Duration::from_millis(1);
/// A batch stops gathering at this many events or bytes (one post larger than that is a batch
/// of its own).
const BATCH_EVENTS: u32 = 1000;
const BATCH_BYTES: usize = 1 << 20;
/// Batches sent and not yet answered, per lane.
const WINDOW: usize = 8;
/// Posts queued for a lane; past it posters wait (their requests in flight are capped).
const QUEUE: usize = 4096;
/// A lane with nothing to do this long closes its stream and ends.
const LANE_IDLE: Duration = Duration::from_secs(60);
/// Longest the collector may take to start a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Lanes at most: one per collector receiving input.
const MAX_LANES: usize = 1024;

/// What the collector said of one post's events.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Ids of the accepted events, in the body's order.
    pub ids: Vec<String>,
    /// The refused ones, numbered from 0 in the body.
    pub errors: Vec<EventError>,
}

struct Posted {
    raw: Bytes,
    events: u32,
    answer: oneshot::Sender<Result<Outcome, Problem>>,
    /// The post's span's W3C `traceparent`, carried with its events (empty when spans are
    /// not exported).
    traceparent: String,
}

/// The lanes, one per collector.
pub struct Batcher {
    client: CollectorClient<Channel>,
    lanes: Mutex<HashMap<String, mpsc::Sender<Posted>>>,
}

impl Batcher {
    pub fn new(channel: Channel) -> Self {
        Batcher {
            client: CollectorClient::new(channel).max_encoding_message_size(64 << 20),
            lanes: Mutex::default(),
        }
    }

    /// Sends `events` events in `raw` (a body in `collector`'s delimiter) to `collector`, and
    /// answers once the collector has answered for them.
    pub async fn post(
        &self,
        collector: &InputCollector,
        mut raw: BytesMut,
        events: u32,
    ) -> Result<Outcome, Problem> {
        // Bodies are joined in a batch: each must end in the delimiter, or its last event
        // would run into the next body's first.
        if raw.last() != Some(&collector.delimiter) {
            raw.put_u8(collector.delimiter);
        }
        let (answer, answered) = oneshot::channel();
        let mut posted = Posted {
            raw: raw.freeze(),
            events,
            answer,
            traceparent: xdr_mesh::trace::current(),
        };
        // A lane that ended while idle is started again, once.
        for _ in 0..2 {
            let lane = self.lane(&collector.id)?;
            match lane.send(posted).await {
                Ok(()) => {
                    return answered
                        .await
                        .unwrap_or_else(|_| Err(unavailable("the gateway's input lane stopped")));
                }
                Err(mpsc::error::SendError(back)) => {
                    self.forget(&collector.id, &lane);
                    posted = back;
                }
            }
        }
        Err(unavailable("the gateway's input lane stopped"))
    }

    fn lane(&self, collector: &str) -> Result<mpsc::Sender<Posted>, Problem> {
        let mut lanes = self.lanes.lock().expect("not poisoned");
        if let Some(lane) = lanes.get(collector).filter(|lane| !lane.is_closed()) {
            return Ok(lane.clone());
        }
        lanes.retain(|_, lane| !lane.is_closed());
        if lanes.len() >= MAX_LANES {
            return Err(unavailable(
                "the gateway is taking input for too many collectors",
            ));
        }
        let (lane, posts) = mpsc::channel(QUEUE);
        let run = Lane {
            collector: collector.to_owned(),
            client: self.client.clone(),
            stream: None,
            in_flight: VecDeque::new(),
            next_batch: 0,
        };
        tokio::spawn(run.run(posts));
        lanes.insert(collector.to_owned(), lane.clone());
        Ok(lane)
    }

    fn forget(&self, collector: &str, lane: &mpsc::Sender<Posted>) {
        let mut lanes = self.lanes.lock().expect("not poisoned");
        if lanes.get(collector).is_some_and(|l| l.same_channel(lane)) {
            lanes.remove(collector);
        }
    }
}

fn unavailable(message: &str) -> Problem {
    Problem::from_status(&Status::unavailable(message))
}

/// A batch sent on the stream: its posts, each with where its events start in the batch.
struct Sent {
    batch_id: u64,
    posts: Vec<(Posted, u32)>,
}

struct Open {
    requests: mpsc::Sender<IngestRequest>,
    replies: Streaming<IngestReply>,
}

struct Lane {
    collector: String,
    client: CollectorClient<Channel>,
    stream: Option<Open>,
    in_flight: VecDeque<Sent>,
    next_batch: u64,
}

impl Lane {
    async fn run(mut self, mut posts: mpsc::Receiver<Posted>) {
        loop {
            let room = self.in_flight.len() < WINDOW;
            let waiting = !self.in_flight.is_empty();
            tokio::select! {
                first = posts.recv(), if room => {
                    let Some(first) = first else { break };
                    let batch = gather(first, &mut posts).await;
                    self.send(batch).await;
                }
                reply = next_reply(&mut self.stream), if waiting => self.answer(reply),
                () = tokio::time::sleep(LANE_IDLE), if !waiting => break,
            }
        }
        self.fail_all(&Status::unavailable("the gateway's input lane stopped"));
    }

    /// Sends `posts` as one batch, opening the stream first when there is none.
    async fn send(&mut self, posts: Vec<Posted>) {
        let mut raw = BytesMut::with_capacity(posts.iter().map(|p| p.raw.len()).sum());
        let raw_traces = trace_runs(&posts);
        let mut placed = Vec::with_capacity(posts.len());
        let mut start = 0;
        for post in posts {
            raw.extend_from_slice(&post.raw);
            let events = post.events;
            placed.push((post, start));
            start += events;
        }
        self.next_batch += 1;
        let request = IngestRequest {
            collector: self.collector.clone(),
            raw: raw.to_vec(),
            batch_id: self.next_batch,
            raw_traces,
            ..Default::default()
        };
        self.in_flight.push_back(Sent {
            batch_id: self.next_batch,
            posts: placed,
        });
        let sent = match &self.stream {
            Some(open) => open.requests.send(request).await.is_ok(),
            None => match self.open(request).await {
                Ok(open) => {
                    self.stream = Some(open);
                    true
                }
                Err(status) => {
                    self.fail_all(&status);
                    return;
                }
            },
        };
        if !sent {
            // The stream ended: its status comes with the next reply read, or it is gone.
            if let Some(mut open) = self.stream.take() {
                let status = match open.replies.message().await {
                    Err(status) => status,
                    Ok(_) => Status::unavailable("the collector ended the input stream"),
                };
                self.fail_all(&status);
            }
        }
    }

    async fn open(&self, first: IngestRequest) -> Result<Open, Status> {
        let (requests, outgoing) = mpsc::channel(WINDOW);
        requests
            .send(first)
            .await
            .expect("the receiver is held here");
        let mut client = self.client.clone();
        let call = client.ingest_stream(ReceiverStream::new(outgoing));
        let replies = tokio::time::timeout(OPEN_TIMEOUT, call)
            .await
            .map_err(|_| Status::unavailable("the collector did not start the input stream"))??
            .into_inner();
        Ok(Open { requests, replies })
    }

    /// Answers the oldest batch in flight with `reply`.
    fn answer(&mut self, reply: Result<Option<IngestReply>, Status>) {
        let reply = match reply {
            Ok(Some(reply)) => reply,
            Ok(None) => {
                self.stream = None;
                return self.fail_all(&Status::unavailable("the collector ended the input stream"));
            }
            Err(status) => {
                self.stream = None;
                return self.fail_all(&status);
            }
        };
        let Some(sent) = self.in_flight.pop_front() else {
            return;
        };
        if sent.batch_id != reply.batch_id {
            tracing::warn!(
                expected = sent.batch_id,
                got = reply.batch_id,
                "the collector answered input batches out of order"
            );
            self.in_flight.push_front(sent);
            self.stream = None;
            return self.fail_all(&Status::internal(
                "the collector answered input batches out of order",
            ));
        }
        let mut ids = reply.ids.into_iter();
        for (post, start) in sent.posts {
            let end = start + post.events;
            let errors: Vec<EventError> = (reply.errors.iter())
                .filter(|e| (start..end).contains(&e.index))
                .map(|e| EventError {
                    index: e.index - start,
                    reason: e.reason.clone(),
                })
                .collect();
            let accepted = (post.events as usize).saturating_sub(errors.len());
            let outcome = Outcome {
                ids: ids.by_ref().take(accepted).collect(),
                errors,
            };
            let _ = post.answer.send(Ok(outcome));
        }
    }

    /// Fails every post in flight with `status` and closes the stream.
    fn fail_all(&mut self, status: &Status) {
        self.stream = None;
        let problem = Problem::from_status(status);
        for sent in self.in_flight.drain(..) {
            for (post, _) in sent.posts {
                let _ = post.answer.send(Err(problem.clone()));
            }
        }
    }
}

async fn next_reply(stream: &mut Option<Open>) -> Result<Option<IngestReply>, Status> {
    match stream {
        Some(open) => open.replies.message().await,
        None => Ok(None),
    }
}

/// Each post's trace context over its events, in order; none when no post has one.
fn trace_runs(posts: &[Posted]) -> Vec<RawTraceRun> {
    if posts.iter().all(|p| p.traceparent.is_empty()) {
        return Vec::new();
    }
    posts
        .iter()
        .map(|post| RawTraceRun {
            traceparent: post.traceparent.clone(),
            events: post.events,
        })
        .collect()
}

/// `first` and the posts that arrive within [`GATHER`] of it, up to a batch's size.
async fn gather(first: Posted, posts: &mut mpsc::Receiver<Posted>) -> Vec<Posted> {
    let (mut events, mut bytes) = (first.events, first.raw.len());
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + GATHER;
    while events < BATCH_EVENTS && bytes < BATCH_BYTES {
        let next = match posts.try_recv() {
            Ok(post) => post,
            Err(_) => match tokio::time::timeout_at(until, posts.recv()).await {
                Ok(Some(post)) => post,
                _ => break,
            },
        };
        events += next.events;
        bytes += next.raw.len();
        batch.push(next);
    }
    batch
}
