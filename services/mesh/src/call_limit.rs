//! Calls in progress, bounded: a call holds its slot until its reply has been sent whole —
//! for a stream, until the stream ends — and a call that finds no free slot is refused at
//! once with RESOURCE_EXHAUSTED instead of waiting in an unbounded queue.
//!
//! tower's concurrency limit frees a slot when the handler returns the response head, which
//! for a streaming RPC is at its start: streams would not count at all.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::BoxFuture;

/// A number of slots for what a peer can make a server hold (calls, streams of one RPC);
/// when they are all taken, a new one is refused by name.
#[derive(Clone)]
pub struct Slots {
    /// What the slots are for, as the refusal names it: `calls in progress`, `Enrich streams`.
    what: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
}

impl Slots {
    pub fn new(what: &'static str, max: usize) -> Self {
        Slots {
            what,
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// A slot, held until the permit is dropped.
    pub fn take(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{}: {} at once, the limit; try again later",
                self.what, self.max
            ))
        })
    }
}

/// Bounds the calls of a server: apply outside every other layer but the reply check.
#[derive(Clone)]
pub struct CallLimitLayer {
    slots: Slots,
}

impl CallLimitLayer {
    pub fn new(max: usize) -> Self {
        CallLimitLayer {
            slots: Slots::new("calls in progress", max),
        }
    }
}

impl<S> Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimit {
            inner,
            slots: self.slots.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallLimit<S> {
    inner: S,
    slots: Slots,
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
        let slot = match self.slots.take() {
            Ok(slot) => slot,
            Err(refused) => return Box::pin(std::future::ready(Ok(refused.into_http()))),
        };
        let reply = self.inner.call(request);
        Box::pin(async move {
            let response = reply.await?;
            // The body holds the slot: hyper drops the body once it is sent whole, or when
            // the client goes away.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &slot;
                    frame
                }))
            }))
        })
    }
}
