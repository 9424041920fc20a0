//! A service's replicas behind one client: `--enrichment-addr A,B` dials both and spreads the
//! calls and streams over the ones that serve. Each address gets a lazy channel; a task asks
//! every replica's gRPC health each second and tells tower's power-of-two-choices balancer
//! which are serving (`tower::balance` with discovery of our own: tonic's balanced channel
//! has open failover bugs). Every response carries the [`ReplicaKey`] of the replica that
//! answered, so a caller whose stream broke can eject that replica at once; the health task
//! takes it back once it has rested and answers its health check again.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicI8, AtomicIsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{BoxFuture, join_all};
use tokio::{
    sync::{Notify, mpsc, watch},
    time::Instant,
};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{body::Body, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;
use tower::{
    BoxError, Service, ServiceExt,
    balance::p2c::Balance,
    buffer::Buffer,
    discover::Change,
    load::{CompleteOnResponse, PendingRequests},
    util::BoxCloneSyncService,
};

use crate::{
    channel::{ChannelError, health_check, lazy},
    tls::TlsMaterial,
};

/// How often each replica's health is asked, and how long its answer may take.
const HEALTH_EVERY: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an ejected replica is passed over, whatever its health says.
const EJECTED_FOR: Duration = Duration::from_secs(1);
/// Rounds asked for by calls that found no replica serving start at most this often: a storm
/// of such calls costs one round per gap, not one per call.
const RECHECK_GAP: Duration = Duration::from_millis(100);
/// Calls waiting for a replica at most (a call waits while none serves, up to its deadline).
const WAITING_CALLS: usize = 1024;

/// The client side of a replicated service: clone it freely, it shares one balancer.
pub type Balanced = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, ReplicaError>;

/// Why a call through [`Replicas`] failed before any replica answered it. (A concrete type
/// rather than `BoxError`: with the boxed error, the compiler cannot prove the futures of
/// tonic's generic clients `Send`.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplicaError(#[source] BoxError);

/// Which replica answered: in the extensions of every response through [`Replicas`] (its
/// place in the address list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaKey(pub usize);

/// The replicas of one service, balanced by health.
#[derive(Clone)]
pub struct Replicas {
    service: Balanced,
    eject: mpsc::UnboundedSender<ReplicaKey>,
    addresses: Arc<[String]>,
    /// Replicas serving now; -1 until their health was first asked.
    serving: Arc<AtomicIsize>,
    /// Each replica's health: -1 not asked yet, 0 passed over, 1 serving.
    states: Arc<[AtomicI8]>,
}

impl Replicas {
    /// The replicas at `targets` (`host:port[,host:port…]`), whose certificates name
    /// `server_name`. Must be called within the runtime: the health task starts now.
    pub fn new(targets: &str, server_name: &str, tls: &TlsMaterial) -> Result<Self, ChannelError> {
        let addresses: Vec<String> = targets
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if addresses.is_empty() {
            return Err(ChannelError::NoTarget(server_name.to_owned()));
        }
        let channels = addresses
            .iter()
            .map(|address| lazy(address, server_name, tls))
            .collect::<Result<Vec<Channel>, _>>()?;
        Ok(Self::over(addresses, channels))
    }

    /// The replicas `channels` dial, at `addresses` (for messages).
    pub fn over(addresses: Vec<String>, channels: Vec<Channel>) -> Self {
        let (changes, discovered) = mpsc::unbounded_channel();
        let (eject, ejected) = mpsc::unbounded_channel();
        let serving = Arc::new(AtomicIsize::new(-1));
        let states: Arc<[AtomicI8]> = channels.iter().map(|_| AtomicI8::new(-1)).collect();
        let recheck = Arc::new(Notify::new());
        let (rounds, rounds_seen) = watch::channel(0_u64);
        tokio::spawn(watch_health(
            Health {
                channels,
                addresses: addresses.clone().into(),
                changes,
                serving_now: serving.clone(),
                states: states.clone(),
                recheck: recheck.clone(),
                rounds,
            },
            ejected,
        ));
        let balance = Balance::new(UnboundedReceiverStream::new(discovered));
        let service = FailFast {
            inner: Buffer::new(balance, WAITING_CALLS),
            serving: serving.clone(),
            inner_ready: false,
            name: addresses.join(",").into(),
            recheck,
            rounds: rounds_seen,
        };
        Replicas {
            service: BoxCloneSyncService::new(service.map_err(ReplicaError)),
            eject,
            addresses: addresses.into(),
            serving,
            states,
        }
    }

    /// The balanced service, for `tonic::client::Grpc` or a generated client.
    pub fn service(&self) -> Balanced {
        self.service.clone()
    }

    /// Passes over replica `key` from now until it has rested and answers its health check.
    pub fn eject(&self, key: ReplicaKey) {
        let _ = self.eject.send(key);
    }

    /// Whether any replica serves: `None` until their health was first asked. A caller may
    /// give up at once when none does, rather than wait for one.
    pub fn any_serving(&self) -> Option<bool> {
        match self.serving.load(Ordering::Acquire) {
            -1 => None,
            n => Some(n > 0),
        }
    }

    /// Whether replica `key` serves: `None` until its health was first asked.
    pub fn is_serving(&self, key: ReplicaKey) -> Option<bool> {
        match self.states.get(key.0)?.load(Ordering::Acquire) {
            -1 => None,
            state => Some(state > 0),
        }
    }

    /// The address of replica `key`.
    pub fn address(&self, key: ReplicaKey) -> Option<&str> {
        self.addresses.get(key.0).map(String::as_str)
    }
}

/// A replica's channel that names the replica on its responses.
#[derive(Clone)]
struct Tagged {
    key: ReplicaKey,
    channel: Channel,
}

impl Service<http::Request<Body>> for Tagged {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let key = self.key;
        let call = self.channel.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            response.extensions_mut().insert(key);
            Ok(response)
        })
    }
}

/// Fails a call `UNAVAILABLE` while no replica serves (rather than hold it until one does): a
/// caller learns that its service is down as it would from a single channel. The health seen
/// last may be a second old, so such a call first has every replica asked again, and goes on
/// if one serves now.
#[derive(Clone)]
struct FailFast<S> {
    inner: S,
    serving: Arc<AtomicIsize>,
    /// Whether `inner` said it is ready (a call then goes to it, whatever happened since).
    inner_ready: bool,
    name: Arc<str>,
    /// Asks the health task for a round now; `rounds` counts the rounds done.
    recheck: Arc<Notify>,
    rounds: watch::Receiver<u64>,
}

impl<S> Service<http::Request<Body>> for FailFast<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.serving.load(Ordering::Acquire) == 0 {
            return Poll::Ready(Ok(()));
        }
        let ready = self.inner.poll_ready(cx);
        self.inner_ready = matches!(ready, Poll::Ready(Ok(())));
        ready
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if std::mem::take(&mut self.inner_ready) {
            return Box::pin(self.inner.call(request));
        }
        let (mut inner, serving, recheck) = (
            self.inner.clone(),
            self.serving.clone(),
            self.recheck.clone(),
        );
        let (mut rounds, name) = (self.rounds.clone(), self.name.clone());
        Box::pin(async move {
            let seen = *rounds.borrow_and_update();
            recheck.notify_one();
            let next_round = rounds.wait_for(|round| *round > seen);
            let _ =
                tokio::time::timeout(HEALTH_TIMEOUT + Duration::from_millis(500), next_round).await;
            if serving.load(Ordering::Acquire) > 0 {
                return inner.ready().await?.call(request).await;
            }
            let refusal = tonic::Status::unavailable(format!("no replica at {name} serves"));
            Err(refusal.into())
        })
    }
}

type Discovered = Result<Change<usize, PendingRequests<Tagged>>, Infallible>;

/// What the health task works with.
struct Health {
    channels: Vec<Channel>,
    addresses: Arc<[String]>,
    changes: mpsc::UnboundedSender<Discovered>,
    serving_now: Arc<AtomicIsize>,
    states: Arc<[AtomicI8]>,
    recheck: Arc<Notify>,
    rounds: watch::Sender<u64>,
}

impl Health {
    /// Tells the balancer that replica `i` serves or not, when that changed.
    fn set(&self, i: usize, up: bool, serving: &mut [bool]) {
        if serving[i] == up {
            return;
        }
        serving[i] = up;
        let change = if up {
            tracing::info!(replica = %self.addresses[i], "replica serving");
            Change::Insert(
                i,
                PendingRequests::new(
                    Tagged {
                        key: ReplicaKey(i),
                        channel: self.channels[i].clone(),
                    },
                    CompleteOnResponse::default(),
                ),
            )
        } else {
            tracing::warn!(replica = %self.addresses[i], "replica passed over");
            Change::Remove(i)
        };
        let _ = self.changes.send(Ok(change));
        self.states[i].store(i8::from(up), Ordering::Release);
        let count = serving.iter().filter(|up| **up).count();
        self.serving_now.store(count as isize, Ordering::Release);
    }

    /// Asks every replica's health once and tells the balancer.
    async fn round(&self, serving: &mut [bool], rest_until: &[Option<Instant>]) {
        let checks = (self.channels.iter()).map(|c| health_check(c.clone(), "", HEALTH_TIMEOUT));
        let statuses = join_all(checks).await;
        // A check that ran out of time (a first TLS handshake on a busy machine, say) says
        // nothing yet: until every replica has answered or refused once, calls wait for one
        // rather than fail at once.
        let decided = statuses
            .iter()
            .all(|status| !matches!(status, Err(s) if s.code() == tonic::Code::DeadlineExceeded));
        let now = Instant::now();
        for (i, status) in statuses.into_iter().enumerate() {
            let rested = rest_until[i].is_none_or(|until| now >= until);
            let up = rested && matches!(status, Ok(ServingStatus::Serving));
            self.set(i, up, serving);
        }
        if decided {
            let _ = (self.serving_now).compare_exchange(-1, 0, Ordering::AcqRel, Ordering::Acquire);
            for state in self.states.iter() {
                let _ = state.compare_exchange(-1, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        self.rounds.send_modify(|round| *round += 1);
    }
}

/// Tells the balancer which replicas serve: each second, when a call found none serving, and
/// at once when one is ejected. Ends when the balancer is gone (every clone of the service
/// dropped).
async fn watch_health(health: Health, mut ejected: mpsc::UnboundedReceiver<ReplicaKey>) {
    let count = health.channels.len();
    let mut serving = vec![false; count];
    let mut rest_until: Vec<Option<Instant>> = vec![None; count];
    let mut ejections_closed = false;
    let mut ticks = tokio::time::interval(HEALTH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_round = Instant::now();
    loop {
        let recheck_allowed = last_round.elapsed() >= RECHECK_GAP;
        tokio::select! {
            _ = ticks.tick() => {}
            () = health.recheck.notified(), if recheck_allowed => ticks.reset(),
            () = tokio::time::sleep_until(last_round + RECHECK_GAP), if !recheck_allowed => continue,
            key = ejected.recv(), if !ejections_closed => {
                match key {
                    Some(ReplicaKey(i)) if i < count => {
                        rest_until[i] = Some(Instant::now() + EJECTED_FOR);
                        health.set(i, false, &mut serving);
                    }
                    Some(_) => {}
                    // Only the balanced service is kept: it is what the task serves.
                    None => ejections_closed = true,
                }
                continue;
            }
            () = health.changes.closed() => return,
        }
        health.round(&mut serving, &rest_until).await;
        last_round = Instant::now();
    }
}
