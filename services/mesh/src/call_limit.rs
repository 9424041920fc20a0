//! Calls in progress, bounded: a call holds its slot until its reply has been sent whole —
//! for a stream, until the stream ends — and a call that finds no free slot is refused at
//! once with RESOURCE_EXHAUSTED instead of waiting in an unbounded queue.
//!
//! tower's concurrency limit frees a slot when the handler returns the response head, which
//! for a streaming RPC is at its start: streams would not count at all.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::BoxFuture;

#[derive(Clone)]
pub struct CallLimitLayer {
    slots: Arc<Semaphore>,
    max: usize,
}

impl CallLimitLayer {
    pub fn new(max: usize) -> Self {
        CallLimitLayer {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl<S> Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimit {
            inner,
            limit: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallLimit<S> {
    inner: S,
    limit: CallLimitLayer,
}

impl<S> Service<http::Request<Body>> for CallLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Ok(slot) = self.limit.slots.clone().try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "the server has {} calls in progress, its limit; try again later",
                self.limit.max
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let reply = self.inner.call(request);
        Box::pin(async move {
            let response = reply.await?;
            Ok(response.map(|body| {
                Body::new(HoldsSlot {
                    inner: body,
                    slot: Some(slot),
                })
            }))
        })
    }
}

/// A reply body holding its call's slot until it ends (or is dropped, if the client goes).
struct HoldsSlot {
    inner: Body,
    slot: Option<OwnedSemaphorePermit>,
}

impl HttpBody for HoldsSlot {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Slots for the streams of one RPC that holds much per stream (batches in flight): beyond
/// them a new stream is refused, naming the RPC and its limit.
pub struct StreamSlots {
    rpc: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
}

impl StreamSlots {
    pub fn new(rpc: &'static str, max: usize) -> Self {
        StreamSlots {
            rpc,
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot for one more stream, held until the permit is dropped (with the stream's task).
    pub fn open(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{}: {} streams open, the limit; try again later",
                self.rpc, self.max
            ))
        })
    }
}
