//! A source's connections: one lane per connection, each a task that owns its connection and
//! answers the exchanges sent to it in turn. Both source kinds are lanes; only what a lane
//! does with an exchange differs (a `LookupStream` batch, a CyberTrace exchange). A lane that
//! dies (a bug that panics) fails the exchanges it held and is started again by the next
//! exchange sent its way: the source is never left closed.
//!
//! When the lanes reach several replicas of a source (`with_failover`), an exchange a lane
//! could not answer (its replica down, its stream broken) is tried once more on another lane
//! before its deadline, and the failed lane is passed over for a moment: lookups only read,
//! so asking again is safe, and the caller still gets one answer.

use std::{
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use xdr_proto::pb::LookupObject;

use super::{Answer, Unavailable};

/// Exchanges queued for one lane before senders wait.
const LANE_QUEUE: usize = 64;

/// One batch for a lane: one result per object, in order, or unavailable by `deadline`.
pub struct Exchange {
    pub objects: Vec<LookupObject>,
    pub deadline: Instant,
    pub answer: oneshot::Sender<Answer>,
    /// W3C `traceparent`s of the spans whose values these are: the first is the lookup's
    /// parent, the others its links (a source that cannot carry them ignores them).
    pub askers: Vec<String>,
}

type LaneTask = Pin<Box<dyn Future<Output = ()> + Send>>;
type MakeLane = Box<dyn FnMut(usize, mpsc::Receiver<Exchange>) -> LaneTask + Send>;
/// Whether lane `i`'s source is known not to serve (its replica's health says so).
type Down = Box<dyn Fn(usize) -> bool + Send + Sync>;

pub struct Lanes {
    lanes: Vec<Mutex<mpsc::Sender<Exchange>>>,
    /// Makes a lane's task of its queue: at the start, and again for a lane that died.
    make: Mutex<MakeLane>,
    next: AtomicUsize,
    /// Whether a failed exchange is tried on another lane (lanes reach several replicas).
    failover: bool,
    /// Until when each lane is passed over, after it failed an exchange.
    resting: Vec<Mutex<Option<Instant>>>,
    /// Lanes whose replica's health says it does not serve are passed over too.
    down: Option<Down>,
}

/// How long a lane that failed an exchange is passed over (when others are there).
const REST: std::time::Duration = std::time::Duration::from_secs(1);

impl Lanes {
    /// `count` lanes, each the task `lane` makes of its index and its queue of exchanges.
    pub fn spawn<F>(
        count: NonZeroU32,
        mut lane: impl FnMut(usize, mpsc::Receiver<Exchange>) -> F + Send + 'static,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut make: MakeLane = Box::new(move |index, exchanges| Box::pin(lane(index, exchanges)));
        let lanes = (0..count.get() as usize)
            .map(|index| Mutex::new(start(&mut make, index)))
            .collect();
        Lanes {
            lanes,
            make: Mutex::new(make),
            next: AtomicUsize::new(0),
            failover: false,
            resting: (0..count.get()).map(|_| Mutex::new(None)).collect(),
            down: None,
        }
    }

    /// Tries an exchange a lane could not answer once more on another lane.
    pub fn with_failover(mut self) -> Self {
        self.failover = self.lanes.len() > 1;
        self
    }

    /// Passes over the lanes `down` says reach a source that does not serve.
    pub fn with_health(mut self, down: impl Fn(usize) -> bool + Send + Sync + 'static) -> Self {
        self.down = Some(Box::new(down));
        self
    }

    /// The next lane in turn, passing over those resting after a failure or whose source
    /// does not serve (unless all are).
    fn pick(&self, not: Option<usize>) -> usize {
        let count = self.lanes.len();
        let now = Instant::now();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| (first + i) % count)
            .filter(|lane| Some(*lane) != not)
            .find(|lane| {
                locked(&self.resting[*lane]).is_none_or(|until| until <= now)
                    && !self.down.as_ref().is_some_and(|down| down(*lane))
            })
            .unwrap_or_else(|| (first % count + usize::from(Some(first % count) == not)) % count)
    }

    /// Looks `objects` up on the next lane in turn, for the spans `askers` names; with
    /// failover, once more on another lane when that one could not answer.
    pub async fn lookup(
        &self,
        objects: Vec<LookupObject>,
        deadline: Instant,
        askers: Vec<String>,
    ) -> Answer {
        let lane = self.pick(None);
        if !self.failover {
            return self.lookup_on(lane, objects, deadline, askers).await;
        }
        let again = (objects.clone(), askers.clone());
        match self.lookup_on(lane, objects, deadline, askers).await {
            Err(Unavailable(why)) if Instant::now() < deadline => {
                *locked(&self.resting[lane]) = Some(Instant::now() + REST);
                tracing::debug!(lane, error = %why, "a lane failed an exchange; trying another");
                let other = self.pick(Some(lane));
                self.lookup_on(other, again.0, deadline, again.1).await
            }
            answer => answer,
        }
    }

    async fn lookup_on(
        &self,
        lane: usize,
        objects: Vec<LookupObject>,
        deadline: Instant,
        askers: Vec<String>,
    ) -> Answer {
        let (answer, answered) = oneshot::channel();
        let exchange = Exchange {
            objects,
            deadline,
            answer,
            askers,
        };
        let sender = locked(&self.lanes[lane]).clone();
        if let Err(mpsc::error::SendError(exchange)) = sender.send(exchange).await {
            // The lane's task is gone: start it again, and send there.
            let restarted = start(&mut locked(&self.make), lane);
            *locked(&self.lanes[lane]) = restarted.clone();
            restarted
                .send(exchange)
                .await
                .map_err(|_| Unavailable("the source was closed".to_owned()))?;
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Unavailable("the lane stopped".to_owned())))
    }
}

/// A lane that cannot reach its source: every exchange is answered `why`.
pub async fn refuse(mut exchanges: mpsc::Receiver<Exchange>, why: String) {
    while let Some(exchange) = exchanges.recv().await {
        let _ = exchange.answer.send(Err(Unavailable(why.clone())));
    }
}

/// Lane `index` anew: its queue, and the task `make` makes of it.
fn start(make: &mut MakeLane, index: usize) -> mpsc::Sender<Exchange> {
    let (sender, exchanges) = mpsc::channel(LANE_QUEUE);
    tokio::spawn(make(index, exchanges));
    sender
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
