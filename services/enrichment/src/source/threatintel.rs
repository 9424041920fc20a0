//! The `threatintel` source: lookups sent as batches over long-lived `LookupStream`s, one per
//! connection of the rule, each on its own HTTP/2 connection. A lane keeps its stream open
//! and matches answers to batches by id; when the stream breaks, every batch waiting on it is
//! answered "unavailable" and the next batch opens a new stream. Replies are read as
//! [`WireLookupReply`]s: each match stays the bytes ThreatIntel encoded, and is appended to its
//! event as such.

use std::{collections::HashMap, num::NonZeroU32};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{client::Grpc, codec::Streaming, transport::Channel};
use xdr_mesh::{
    channel,
    replicas::{ReplicaKey, Replicas},
    tls::TlsMaterial,
};
use xdr_proto::{codec::XdrCodec, pb::LookupBatch, wire::WireLookupReply};

use super::{
    Answer, Unavailable,
    lanes::{Exchange, Lanes},
};

/// Batches one stream has in flight, at most.
const IN_FLIGHT: usize = 64;
/// A stream with nothing sent or waiting for this long is closed (the next batch opens
/// another): ThreatIntel ends streams silent for twice as long, to free their slots.
const IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// A batch sent on the stream, waiting for its reply.
struct Waiting {
    answer: oneshot::Sender<Answer>,
    sent: Instant,
    deadline: Instant,
}

/// Lanes to the ThreatIntel service at `targets` (`host:port`, or replicas of it as
/// `host:port,host:port`), each its own HTTP/2 connection: `connections` of them, and at least
/// one per replica, spread over the replicas in turn. With replicas, an exchange a lane could
/// not answer is tried on another, and lanes whose replica's gRPC health says it does not
/// serve are passed over.
pub fn lanes(
    targets: &str,
    connections: NonZeroU32,
    tls: &TlsMaterial,
) -> Result<Lanes, channel::ChannelError> {
    let mut replicas: Vec<String> = (targets.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if replicas.is_empty() {
        // Refused by the check below, naming what was given.
        replicas.push(targets.to_owned());
    }
    // A bad address is refused here, once; every lane's channel is made the same way.
    for target in &replicas {
        channel::lazy(target, "threatintel", tls)?;
    }
    let count =
        NonZeroU32::new(connections.get().max(replicas.len() as u32)).unwrap_or(connections);
    let several = replicas.len() > 1;
    let tls_for_lanes = tls.clone();
    let targets_for_lanes = replicas.clone();
    let lanes = Lanes::spawn(count, move |lane, exchanges| {
        // Lane i dials replica i mod n, started again or not.
        let target = &targets_for_lanes[lane % targets_for_lanes.len()];
        let channel = channel::lazy(target, "threatintel", &tls_for_lanes);
        async move {
            match channel {
                Ok(channel) => run_lane(Grpc::new(channel), exchanges).await,
                Err(error) => super::lanes::refuse(exchanges, error.to_string()).await,
            }
        }
    });
    if !several {
        return Ok(lanes);
    }
    // The replicas' health, asked every second: a lane whose replica does not serve is passed
    // over before an exchange fails on it.
    let health = Replicas::new(targets, "threatintel", tls)?;
    let count = replicas.len();
    Ok(lanes
        .with_failover()
        .with_health(move |lane| health.is_serving(ReplicaKey(lane % count)) == Some(false)))
}

/// Opens a `LookupStream` whose replies keep their matches encoded.
async fn open_stream(
    client: &mut Grpc<Channel>,
    requests: mpsc::Receiver<LookupBatch>,
) -> Result<Streaming<WireLookupReply>, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("threatintel: {e}")))?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/xdr.v1.ThreatIntel/LookupStream");
    let codec = XdrCodec::<LookupBatch, WireLookupReply>::default();
    let replies = client
        .streaming(
            tonic::Request::new(ReceiverStream::new(requests)),
            path,
            codec,
        )
        .await?;
    Ok(replies.into_inner())
}

async fn run_lane(mut client: Grpc<Channel>, mut pending: mpsc::Receiver<Exchange>) {
    let mut next_id = 0u64;
    loop {
        // No stream is open until there is something to send.
        let Some(batch) = pending.recv().await else {
            return;
        };
        let (requests, request_stream) = mpsc::channel::<LookupBatch>(IN_FLIGHT);
        let mut replies = match open_stream(&mut client, request_stream).await {
            Ok(replies) => replies,
            Err(status) => {
                let _ = batch
                    .answer
                    .send(Err(Unavailable(status.message().to_owned())));
                continue;
            }
        };
        let mut waiting: HashMap<u64, Waiting> = HashMap::new();
        let mut send = |batch: Exchange, waiting: &mut HashMap<u64, Waiting>| {
            next_id += 1;
            let entry = Waiting {
                answer: batch.answer,
                sent: Instant::now(),
                deadline: batch.deadline,
            };
            waiting.insert(next_id, entry);
            let mut askers = batch.askers.into_iter();
            let request = LookupBatch {
                batch_id: next_id,
                objects: batch.objects,
                traceparent: askers.next().unwrap_or_default(),
                links: askers.take(xdr_mesh::trace::MAX_LINKS).collect(),
            };
            requests.try_send(request).is_ok()
        };
        send(batch, &mut waiting);
        let mut closed = false;
        let mut last_reply = Instant::now();
        let mut last_sent = Instant::now();
        let broken = loop {
            if closed && waiting.is_empty() {
                return;
            }
            let next_deadline = waiting.values().map(|w| w.deadline).min();
            tokio::select! {
                batch = pending.recv(), if !closed && waiting.len() < IN_FLIGHT => match batch {
                    Some(batch) => {
                        last_sent = Instant::now();
                        send(batch, &mut waiting);
                    }
                    None => closed = true,
                },
                // Idle: closed quietly, nothing waits on it.
                _ = tokio::time::sleep_until(last_sent.max(last_reply) + IDLE), if waiting.is_empty() => {
                    break None;
                },
                reply = replies.next() => match reply {
                    Some(Ok(reply)) => {
                        last_reply = Instant::now();
                        if let Some(waiting) = waiting.remove(&reply.batch_id) {
                            let _ = waiting.answer.send(Ok(reply.results));
                        }
                    }
                    Some(Err(status)) => break Some(status.message().to_owned()),
                    None => break Some("the stream ended".to_owned()),
                },
                _ = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                    let now = Instant::now();
                    let expired: Vec<u64> = (waiting.iter())
                        .filter(|(_, w)| w.deadline <= now)
                        .map(|(id, _)| *id)
                        .collect();
                    // A stream that answered nothing since an expired batch went out is wedged:
                    // open a new one. One that answers others is only slow for this batch.
                    let wedged = expired.iter().any(|id| waiting[id].sent > last_reply);
                    for id in expired {
                        if let Some(w) = waiting.remove(&id) {
                            let _ = w.answer.send(Err(Unavailable("no reply by the deadline".to_owned())));
                        }
                    }
                    if wedged {
                        break Some("no reply by the deadline".to_owned());
                    }
                }
            }
        };
        if let Some(broken) = broken {
            tracing::warn!(error = %broken, waiting = waiting.len(), "threat-intel stream broken; reopening on the next batch");
            for (_, waiting) in waiting.drain() {
                let _ = waiting.answer.send(Err(Unavailable(broken.clone())));
            }
        }
        if closed {
            return;
        }
    }
}
