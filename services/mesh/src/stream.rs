//! Reply streams of streaming RPCs.

use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;

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
}
