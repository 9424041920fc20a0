//! Gathering one rule's lookups from many batches and streams into few: a value waits a
//! short linger for company and goes out with up to [`MAX_BATCH_OBJECTS`] others (never more
//! than the rule's RPS); a value already on its way is not sent again, its one answer goes to
//! every batch that asked. The rule's RPS is charged for what is sent, after that sharing.
//! One task owns the state, so nothing here locks.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rustc_hash::FxHashMap;

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
    time::Instant,
};
use xdr_proto::{pb::LookupObject, wire::WireLookupResult};

use super::{Answer, MAX_BATCH_OBJECTS, Unavailable, lanes::Lanes};
use crate::metrics;

/// How long a value waits for others before it is sent anyway.
const LINGER: Duration = Duration::from_millis(2);
/// Requests queued for the gathering task before callers wait.
const INBOX: usize = 256;

pub struct Gatherer {
    inbox: mpsc::Sender<Request>,
}

struct Request {
    objects: Vec<LookupObject>,
    deadline: Instant,
    answer: oneshot::Sender<Answer>,
    /// The asking span's W3C `traceparent` (empty when spans are not exported).
    traceparent: String,
}

/// A value, by kind and text.
type Key = (i32, String);

/// A request being answered: one slot per object.
struct Open {
    results: Vec<Option<WireLookupResult>>,
    missing: usize,
    answer: oneshot::Sender<Answer>,
}

/// Where the gathered batches go: the source's lanes, at the rule's pace.
struct Outlet {
    lanes: Arc<Lanes>,
    /// The rule's RPS as a token bucket: one second's worth at most at once.
    bucket: DefaultDirectRateLimiter,
    /// Values in one batch, at most: what the bucket holds, and no more than a lane takes.
    max_batch: usize,
}

impl Outlet {
    /// Sends `batch` once the bucket holds a token per value. `deadline` is when the last
    /// request waiting on the batch stops waiting: the source gives up on the exchange then,
    /// and a batch still waiting for tokens gives up too.
    async fn send(
        &self,
        batch: Vec<LookupObject>,
        deadline: Instant,
        askers: Vec<String>,
    ) -> Answer {
        let tokens = NonZeroU32::new(batch.len() as u32).expect("batches are not empty");
        if self.bucket.check_n(tokens) != Ok(Ok(())) {
            let since = Instant::now();
            let ready = tokio::time::timeout_at(deadline, self.bucket.until_n_ready(tokens)).await;
            metrics::throttled(tokens.get(), since.elapsed());
            if !matches!(ready, Ok(Ok(()))) {
                return Err(Unavailable(
                    "held back by the rule's RPS past the deadline".to_owned(),
                ));
            }
        }
        self.lanes.lookup(batch, deadline, askers).await
    }
}

impl Gatherer {
    /// A rule's gathering into `lanes`, at most `rps` values a second.
    pub fn new(lanes: Arc<Lanes>, rps: NonZeroU32) -> Self {
        let outlet = Arc::new(Outlet {
            lanes,
            bucket: RateLimiter::direct(Quota::per_second(rps)),
            max_batch: MAX_BATCH_OBJECTS.min(rps.get() as usize),
        });
        let (inbox, requests) = mpsc::channel(INBOX);
        tokio::spawn(gather(outlet, requests));
        Gatherer { inbox }
    }

    /// One result per object, in order, however the objects were gathered and shared; the
    /// caller stops waiting at `deadline`. The batch that carries them is traced as a child
    /// of (or linked to) the caller's current span.
    pub async fn lookup(&self, objects: Vec<LookupObject>, deadline: Instant) -> Answer {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let (answer, answered) = oneshot::channel();
        self.inbox
            .send(Request {
                objects,
                deadline,
                answer,
                traceparent: xdr_mesh::trace::current(),
            })
            .await
            .map_err(|_| Unavailable("the source was closed".to_owned()))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Unavailable("the gathering stopped".to_owned())))
    }
}

/// Batches on their way to the backend, and the values of each, by task.
#[derive(Default)]
struct Sent {
    tasks: JoinSet<Answer>,
    keys: FxHashMap<tokio::task::Id, Vec<Key>>,
}

#[derive(Default)]
struct State {
    open: FxHashMap<u64, Open>,
    next_request: u64,
    /// Every value asked for and not answered yet: who waits for it (request, slot).
    waiting: FxHashMap<Key, Vec<(u64, usize)>>,
    /// Values not sent yet, in the order they came.
    unsent: Vec<LookupObject>,
    /// When the oldest unsent value stops waiting for company.
    send_by: Option<Instant>,
    /// The latest deadline of the requests that added unsent values: a batch of them is
    /// worth waiting for that long (a bound from above, kept without a lookup per value).
    unsent_deadline: Option<Instant>,
    /// Trace contexts of the requests that added unsent values, the first one first.
    unsent_askers: Vec<String>,
}

async fn gather(outlet: Arc<Outlet>, mut requests: mpsc::Receiver<Request>) {
    let mut state = State::default();
    let mut sent = Sent::default();
    let mut closed = false;
    loop {
        if closed && state.open.is_empty() {
            return;
        }
        let linger = state.send_by;
        tokio::select! {
            request = requests.recv(), if !closed => match request {
                Some(request) => {
                    state.take(request);
                    while state.unsent.len() >= outlet.max_batch {
                        state.send(&outlet, &mut sent, outlet.max_batch);
                    }
                }
                None => closed = true,
            },
            _ = tokio::time::sleep_until(linger.unwrap_or_else(Instant::now)), if linger.is_some() => {
                // What lingered goes out, in batches the bucket can hold.
                while !state.unsent.is_empty() {
                    state.send(&outlet, &mut sent, outlet.max_batch);
                }
            }
            Some(done) = sent.tasks.join_next_with_id(), if !sent.tasks.is_empty() => {
                // A lookup that panicked fails its own waiters, and the gathering goes on.
                let (id, answer) = match done {
                    Ok((id, answer)) => (id, answer),
                    Err(failed) => (failed.id(), Err(Unavailable("the lookup failed".to_owned()))),
                };
                let keys = sent.keys.remove(&id).unwrap_or_default();
                state.deliver(keys, answer);
            }
        }
    }
}

impl State {
    fn take(&mut self, request: Request) {
        let id = self.next_request;
        self.next_request += 1;
        let count = request.objects.len();
        let unsent_before = self.unsent.len();
        for (slot, object) in request.objects.into_iter().enumerate() {
            let waiters = self
                .waiting
                .entry((object.r#type, object.value.clone()))
                .or_default();
            if waiters.is_empty() {
                self.unsent.push(object);
                self.unsent_deadline = self.unsent_deadline.max(Some(request.deadline));
            }
            waiters.push((id, slot));
        }
        if self.unsent.len() > unsent_before
            && !request.traceparent.is_empty()
            && self.unsent_askers.len() <= xdr_mesh::trace::MAX_LINKS
        {
            self.unsent_askers.push(request.traceparent);
        }
        self.open.insert(
            id,
            Open {
                results: vec![None; count],
                missing: count,
                answer: request.answer,
            },
        );
        if !self.unsent.is_empty() && self.send_by.is_none() {
            self.send_by = Some(Instant::now() + LINGER);
        }
    }

    /// Sends the oldest `count` unsent values as one batch.
    fn send(&mut self, outlet: &Arc<Outlet>, sent: &mut Sent, count: usize) {
        let batch: Vec<LookupObject> = self.unsent.drain(..count.min(self.unsent.len())).collect();
        self.send_by = (!self.unsent.is_empty()).then(|| Instant::now() + LINGER);
        let (deadline, askers) = if self.unsent.is_empty() {
            (
                self.unsent_deadline.take(),
                std::mem::take(&mut self.unsent_askers),
            )
        } else {
            // The values left behind are some of the same askers': the next batch names
            // them too.
            (self.unsent_deadline, self.unsent_askers.clone())
        };
        if batch.is_empty() {
            return;
        }
        let deadline = deadline.unwrap_or_else(Instant::now);
        let keys: Vec<Key> = batch.iter().map(|o| (o.r#type, o.value.clone())).collect();
        let outlet = outlet.clone();
        let task = sent
            .tasks
            .spawn(async move { outlet.send(batch, deadline, askers).await });
        sent.keys.insert(task.id(), keys);
    }

    fn deliver(&mut self, keys: Vec<Key>, answer: Answer) {
        match answer {
            Ok(results) if results.len() == keys.len() => {
                for (key, result) in keys.into_iter().zip(results) {
                    let mut waiters = self.waiting.remove(&key).unwrap_or_default();
                    // The last waiter takes the result; only the others need a copy.
                    let last = waiters.pop();
                    for (id, slot) in waiters {
                        self.fill(id, slot, result.clone());
                    }
                    if let Some((id, slot)) = last {
                        self.fill(id, slot, result);
                    }
                }
            }
            outcome => {
                let why = match outcome {
                    Err(Unavailable(why)) => why,
                    Ok(results) => format!("{} answers to {} values", results.len(), keys.len()),
                };
                for key in keys {
                    for (id, _) in self.waiting.remove(&key).unwrap_or_default() {
                        if let Some(open) = self.open.remove(&id) {
                            let _ = open.answer.send(Err(Unavailable(why.clone())));
                        }
                    }
                }
            }
        }
    }

    fn fill(&mut self, id: u64, slot: usize, result: WireLookupResult) {
        let Some(open) = self.open.get_mut(&id) else {
            // The request already failed for another of its values.
            return;
        };
        if open.results[slot].replace(result).is_none() {
            open.missing -= 1;
        }
        if open.missing == 0
            && let Some(open) = self.open.remove(&id)
        {
            let results = open
                .results
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            let _ = open.answer.send(Ok(results));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Lanes that answer each value with one "match" that is the value's bytes, fail every
    /// batch (`fail`), or panic on a batch holding `panic_on`; each batch is remembered.
    #[derive(Clone, Default)]
    struct Echo {
        batches: Arc<Mutex<Vec<Vec<String>>>>,
        fail: bool,
        panic_on: Option<&'static str>,
    }

    impl Echo {
        fn gatherer(&self) -> Gatherer {
            self.gatherer_at(NonZeroU32::new(1_000_000).unwrap())
        }

        fn gatherer_at(&self, rps: NonZeroU32) -> Gatherer {
            let echo = self.clone();
            let lanes = Lanes::spawn(NonZeroU32::MIN, move |_, mut exchanges| {
                let echo = echo.clone();
                async move {
                    while let Some(exchange) = exchanges.recv().await {
                        let values: Vec<String> =
                            exchange.objects.iter().map(|o| o.value.clone()).collect();
                        echo.batches.lock().unwrap().push(values.clone());
                        if echo.panic_on.is_some_and(|p| values.iter().any(|v| v == p)) {
                            // The lane dies with its exchange: only that batch's waiters fail.
                            panic!("a lane bug");
                        }
                        let answer = if echo.fail {
                            Err(Unavailable("down".to_owned()))
                        } else {
                            Ok(values
                                .into_iter()
                                .map(|v| WireLookupResult {
                                    matches: vec![v.into()],
                                    error: String::new(),
                                })
                                .collect())
                        };
                        let _ = exchange.answer.send(answer);
                    }
                }
            });
            Gatherer::new(Arc::new(lanes), rps)
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn objects(values: &[&str]) -> Vec<LookupObject> {
        values
            .iter()
            .map(|v| LookupObject {
                r#type: 2,
                value: v.to_string(),
            })
            .collect()
    }

    fn categories(answer: Answer) -> Vec<String> {
        answer
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.matches[0].to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn requests_within_the_linger_share_one_batch_and_each_value_once() {
        let echo = Echo::default();
        let gatherer = echo.gatherer();
        let (a, b) = tokio::join!(
            gatherer.lookup(objects(&["x", "y", "x"]), soon()),
            gatherer.lookup(objects(&["y", "z"]), soon()),
        );
        assert_eq!(categories(a), ["x", "y", "x"]);
        assert_eq!(categories(b), ["y", "z"]);
        let batches = echo.batches.lock().unwrap().clone();
        assert_eq!(batches, [["x", "y", "z"]]);
    }

    #[tokio::test]
    async fn large_requests_go_out_in_full_batches() {
        let echo = Echo::default();
        let gatherer = echo.gatherer();
        let values: Vec<String> = (0..MAX_BATCH_OBJECTS + 10)
            .map(|i| format!("v{i}"))
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let answer = gatherer.lookup(objects(&refs), soon()).await;
        assert_eq!(categories(answer), values);
        let sizes: Vec<usize> = echo.batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [MAX_BATCH_OBJECTS, 10]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_request_waiting_on_it() {
        let gatherer = Echo {
            fail: true,
            ..Default::default()
        }
        .gatherer();
        let (a, b) = tokio::join!(
            gatherer.lookup(objects(&["x"]), soon()),
            gatherer.lookup(objects(&["x", "y"]), soon()),
        );
        assert!(a.is_err() && b.is_err());
        assert!(
            gatherer
                .lookup(Vec::new(), soon())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_lookup_that_panics_fails_only_its_waiters() {
        let gatherer = Echo {
            panic_on: Some("boom"),
            ..Default::default()
        }
        .gatherer();
        let failed = gatherer.lookup(objects(&["boom", "x"]), soon()).await;
        assert!(failed.is_err(), "{failed:?}");
        // The gathering goes on, and the lane is started again: the next request is answered.
        let answer = gatherer.lookup(objects(&["y"]), soon()).await;
        assert_eq!(categories(answer), ["y"]);
    }

    #[tokio::test]
    async fn the_rps_is_charged_for_values_sent_after_sharing() {
        let echo = Echo::default();
        let gatherer = echo.gatherer_at(NonZeroU32::new(10).unwrap());
        let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        // Two batches asking for the same ten values: one batch of ten goes out, taking ten
        // tokens, and it fits the one second's worth the bucket holds.
        let (a, b) = tokio::join!(
            gatherer.lookup(objects(&refs), soon()),
            gatherer.lookup(objects(&refs), soon()),
        );
        assert_eq!(categories(a), values);
        assert_eq!(categories(b), values);
        assert_eq!(*echo.batches.lock().unwrap(), [values]);
        // Twenty distinct values go out in batches no larger than the bucket.
        let more: Vec<String> = (10..30).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = more.iter().map(String::as_str).collect();
        assert_eq!(
            categories(gatherer.lookup(objects(&refs), soon()).await),
            more
        );
        let sizes: Vec<usize> = echo.batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10]);
    }
}
