//! A connection whose writes may not stall: an HTTP client that stops reading an answer (a
//! long NDJSON stream, a large reply) would otherwise hold its connection slot for as long as
//! it likes, since hyper has no write deadline. A write that cannot progress for the limit
//! fails with `TimedOut`, and the connection closes.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

pub struct WriteDeadline<T> {
    io: T,
    limit: Duration,
    /// Running while a write waits; gone once one progresses.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        WriteDeadline {
            io,
            limit,
            stalled: None,
        }
    }

    /// `poll`'s answer, failing it once the writes have waited longer than the limit.
    fn bounded<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the peer read nothing for the write deadline",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.bounded(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.bounded(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.bounded(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.bounded(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_write_the_peer_does_not_read_fails_at_the_deadline_and_one_it_reads_does_not() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut bounded = WriteDeadline::new(near, Duration::from_millis(100));
        // Read as it comes: many small stalls, none of them long.
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut sink)
                .await
                .map(|_| (sink, far))
        });
        bounded.write_all(&[7u8; 10_000]).await.unwrap();
        bounded.shutdown().await.unwrap();
        let (sink, _) = reader.await.unwrap().unwrap();
        assert_eq!(sink.len(), 10_000);

        // Not read at all: the write fails after the deadline, not before.
        let (near, _far) = tokio::io::duplex(64);
        let mut bounded = WriteDeadline::new(near, Duration::from_millis(100));
        let started = Instant::now();
        let failed =
            tokio::time::timeout(Duration::from_secs(10), bounded.write_all(&[7u8; 10_000]))
                .await
                .expect("the write ends by itself")
                .unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
