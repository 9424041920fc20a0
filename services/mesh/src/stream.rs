//! Reply streams of streaming RPCs.

use std::{
    future::{Future, ready},
    sync::{Arc, Mutex, PoisonError},
};

use futures_util::{Stream, StreamExt, stream};
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;

/// Each request of `requests` answered by `answer`, `in_flight` at once, each answer sent as
/// soon as it is ready (for protocols whose answers carry their request's id). The first
/// request that fails (a malformed frame, an oversized batch) ends the stream with its status
/// after every request before it has been answered: never with OK, never with answers after.
pub fn answer_unordered<R, T, Fut>(
    requests: impl Stream<Item = Result<R, Status>> + Send + 'static,
    in_flight: usize,
    answer: impl FnMut(R) -> Fut + Send + 'static,
    slot: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static
where
    R: Send + 'static,
    T: Send + 'static,
    Fut: Future<Output = Result<T, Status>> + Send + 'static,
{
    let failure = Arc::new(Mutex::new(None));
    let noted = failure.clone();
    let accepted = requests.scan((), move |(), request| {
        ready(match request {
            Ok(request) => Some(request),
            Err(status) => {
                *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(status);
                None
            }
        })
    });
    let answers = accepted.map(answer).buffer_unordered(in_flight);
    let last = stream::once(async move {
        failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(Err)
    })
    .filter_map(ready);
    until_failed(answers.chain(last), slot)
}

/// `requests`, ended with `DEADLINE_EXCEEDED` when the client sends nothing for `idle`: an
/// idle stream would hold one of its RPC's few stream slots for ever. (The timer runs while
/// the server is asked for the next request, so `idle` must be well above the time a
/// request takes to answer.)
pub fn idle_limited<R: Send + 'static>(
    requests: impl Stream<Item = Result<R, Status>> + Send + 'static,
    idle: std::time::Duration,
) -> impl Stream<Item = Result<R, Status>> + Send + 'static {
    stream::unfold(Some(Box::pin(requests)), move |requests| async move {
        let mut requests = requests?;
        match tokio::time::timeout(idle, requests.next()).await {
            Ok(Some(request)) => Some((request, Some(requests))),
            Ok(None) => None,
            Err(_) => Some((
                Err(Status::deadline_exceeded(format!(
                    "nothing sent for {idle:?}: the stream is closed"
                ))),
                None,
            )),
        }
    })
}

/// `answers` up to and including the first failure: a stream that fails ends with that
/// status, after every answer before it, never with OK and never with answers after it.
/// `slot` (the stream's place among the RPC's streams) is held until the stream ends.
pub fn until_failed<T: Send + 'static>(
    answers: impl Stream<Item = Result<T, Status>> + Send + 'static,
    slot: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    let mut failed = false;
    answers.take_while(move |answer| {
        let _held = &slot;
        let more = !failed;
        failed |= answer.is_err();
        std::future::ready(more)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::stream;
    use tokio::sync::Semaphore;

    use super::*;

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_told_so_and_the_stream_ends() {
        let (sender, requests) = tokio::sync::mpsc::channel::<Result<u32, Status>>(1);
        sender.send(Ok(1)).await.unwrap();
        let limited = idle_limited(
            tokio_stream::wrappers::ReceiverStream::new(requests),
            std::time::Duration::from_millis(50),
        );
        let got: Vec<_> = limited.collect().await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].as_ref().unwrap(), &1);
        assert_eq!(
            got[1].as_ref().unwrap_err().code(),
            tonic::Code::DeadlineExceeded
        );
        drop(sender);
    }

    #[tokio::test]
    async fn a_failure_ends_the_stream_after_what_came_before() {
        let slots = Arc::new(Semaphore::new(1));
        let slot = slots.clone().try_acquire_owned().unwrap();
        let answers = stream::iter([Ok(1), Ok(2), Err(Status::invalid_argument("bad")), Ok(3)]);
        let got: Vec<_> = until_failed(answers, slot).collect().await;
        let codes: Vec<_> = got
            .iter()
            .map(|a| a.as_ref().map_err(Status::code))
            .collect();
        assert_eq!(codes, [Ok(&1), Ok(&2), Err(tonic::Code::InvalidArgument)]);
        assert_eq!(slots.available_permits(), 1, "the slot is given back");
    }

    #[tokio::test]
    async fn unordered_answers_come_as_ready_and_the_failure_after_them_all() {
        let slots = Arc::new(Semaphore::new(1));
        let slot = slots.clone().try_acquire_owned().unwrap();
        let requests = stream::iter([Ok(30u64), Ok(1), Err(Status::data_loss("cut")), Ok(2)]);
        let answered: Vec<_> = answer_unordered(
            requests,
            8,
            |ms| async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(ms)
            },
            slot,
        )
        .collect()
        .await;
        let codes: Vec<_> = answered
            .iter()
            .map(|a| a.as_ref().map_err(Status::code))
            .collect();
        assert_eq!(codes, [Ok(&1), Ok(&30), Err(tonic::Code::DataLoss)]);
        assert_eq!(slots.available_permits(), 1);
    }
}
