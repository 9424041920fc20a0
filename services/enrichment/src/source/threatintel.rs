//! The `threatintel` source: lookups sent as batches over long-lived `LookupStream`s, one per
//! connection of the rule, each on its own HTTP/2 connection. A lane keeps its stream open
//! and matches answers to batches by id; when the stream breaks, every batch waiting on it is
//! answered "unavailable" and the next batch opens a new stream.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::Channel;
use xdr_mesh::{channel, tls::TlsMaterial};
use xdr_proto::pb::{LookupBatch, LookupObject, threat_intel_client::ThreatIntelClient};

use super::{Answer, Unavailable};

/// Batches queued for one lane before senders wait.
const LANE_QUEUE: usize = 64;

struct Pending {
    objects: Vec<LookupObject>,
    answer: oneshot::Sender<Answer>,
}

pub struct ThreatIntelSource {
    lanes: Vec<mpsc::Sender<Pending>>,
    next: AtomicUsize,
}

impl ThreatIntelSource {
    /// `connections` lanes to the ThreatIntel service at `target` (`host:port`).
    pub fn connect(
        target: &str,
        connections: u32,
        tls: &TlsMaterial,
    ) -> Result<Self, channel::ChannelError> {
        let mut lanes = Vec::new();
        for _ in 0..connections.max(1) {
            // One channel per lane: a lane is a TCP connection of its own.
            let client = ThreatIntelClient::new(channel::lazy(target, "threatintel", tls)?);
            let (sender, pending) = mpsc::channel(LANE_QUEUE);
            tokio::spawn(run_lane(client, pending));
            lanes.push(sender);
        }
        Ok(ThreatIntelSource {
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// Looks `objects` up (at most [`MAX_BATCH_OBJECTS`]); one result per object, in order.
    pub async fn lookup(&self, objects: Vec<LookupObject>) -> Answer {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let (answer, answered) = oneshot::channel();
        self.lanes[lane]
            .send(Pending { objects, answer })
            .await
            .map_err(|_| Unavailable("the source was closed".to_owned()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Unavailable("the lane stopped".to_owned())))
    }
}

async fn run_lane(mut client: ThreatIntelClient<Channel>, mut pending: mpsc::Receiver<Pending>) {
    let mut next_id = 0u64;
    loop {
        // No stream is open until there is something to send.
        let Some(batch) = pending.recv().await else {
            return;
        };
        let (requests, request_stream) = mpsc::channel::<LookupBatch>(LANE_QUEUE);
        let opened = client
            .lookup_stream(ReceiverStream::new(request_stream))
            .await;
        let mut replies = match opened {
            Ok(replies) => replies.into_inner(),
            Err(status) => {
                let _ = batch
                    .answer
                    .send(Err(Unavailable(status.message().to_owned())));
                continue;
            }
        };
        let mut waiting: HashMap<u64, oneshot::Sender<Answer>> = HashMap::new();
        let mut send = |batch: Pending, waiting: &mut HashMap<u64, oneshot::Sender<Answer>>| {
            next_id += 1;
            waiting.insert(next_id, batch.answer);
            let request = LookupBatch {
                batch_id: next_id,
                objects: batch.objects,
            };
            requests.try_send(request).is_ok()
        };
        send(batch, &mut waiting);
        let mut closed = false;
        let broken = loop {
            if closed && waiting.is_empty() {
                return;
            }
            tokio::select! {
                batch = pending.recv(), if !closed && waiting.len() < LANE_QUEUE => match batch {
                    Some(batch) => { send(batch, &mut waiting); }
                    None => closed = true,
                },
                reply = replies.next() => match reply {
                    Some(Ok(reply)) => {
                        if let Some(answer) = waiting.remove(&reply.batch_id) {
                            let _ = answer.send(Ok(reply.results));
                        }
                    }
                    Some(Err(status)) => break status.message().to_owned(),
                    None => break "the stream ended".to_owned(),
                },
            }
        };
        tracing::warn!(error = %broken, waiting = waiting.len(), "threat-intel stream broken; reopening on the next batch");
        for (_, answer) in waiting.drain() {
            let _ = answer.send(Err(Unavailable(broken.clone())));
        }
        if closed {
            return;
        }
    }
}
