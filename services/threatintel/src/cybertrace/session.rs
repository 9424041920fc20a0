//! One CyberTrace connection: its opening, then one event per line, each looked up and — when
//! the client asked for finished events — answered by a `LookupFinished` line, refused lines
//! included: a client waits for one per line. Every read has a bound (a line over
//! [`MAX_LINE`] is skipped to its end) and a deadline (the idle timeout), every write a
//! deadline. What a client gets wrong is logged once per connection and summed up when it
//! closes, all at a bounded rate: a client cannot flood the log.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use xdr_mesh::{
    lines::{Delimited, read_delimited},
    log_limit::LogLimiter,
    quote::quoted,
};

use super::{EventSink, events::now_text, listener::Slot};
use xdr_cybertrace::{
    ValueKind,
    opening::{Handshake, Opening, read_opening},
    request::lookups_of,
};

use crate::{
    index::IndicatorKind,
    metrics::{self, Interface},
    store::{IndicatorStore, now_ms},
};

/// Longer lines are skipped to their end and answered as refused.
pub const MAX_LINE: usize = 64 * 1024;
/// How long to wait for the rest of an opening that could still grow (`X-KF-ReplyBack` →
/// `X-KF-ReplyBackPING`) before taking what matched.
const OPENING_WAIT: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Longest wait for the opening or for the next complete line.
    pub idle_timeout: Duration,
    /// Longest a client may take to read an answer.
    pub write_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What every connection shares.
pub struct Context {
    pub store: Arc<IndicatorStore>,
    pub events: EventSink,
    pub limits: SessionLimits,
    pub warnings: LogLimiter,
}

/// Why a line or a value of it was not looked up.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    TooLong,
    NotUtf8,
    BadValue,
}

/// What a connection got wrong, for its summary.
#[derive(Default)]
struct Refused {
    too_long: u64,
    not_utf8: u64,
    bad_values: u64,
}

impl Refused {
    fn total(&self) -> u64 {
        self.too_long + self.not_utf8 + self.bad_values
    }

    /// Counts `refusal`; true for the connection's first, which is logged in detail.
    fn count(&mut self, refusal: Refusal) -> bool {
        let first = self.total() == 0;
        let (count, reason) = match refusal {
            Refusal::TooLong => (&mut self.too_long, "too_long"),
            Refusal::NotUtf8 => (&mut self.not_utf8, "not_utf8"),
            Refusal::BadValue => (&mut self.bad_values, "bad_value"),
        };
        *count += 1;
        metrics::cybertrace_refused(reason);
        first
    }
}

/// Serves one connection (a TCP stream; anything that reads and writes in the fuzz target)
/// until the client closes it, falls silent, or breaks the protocol beyond repair.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    context: &Context,
    slot: &Slot,
) -> io::Result<()> {
    let (mut read, write) = tokio::io::split(stream);
    let idle = context.limits.idle_timeout;
    let (handshake, leftover) = tokio::time::timeout(idle, opening(&mut read))
        .await
        .map_err(|_| timed_out("no opening"))??;
    let mut session = Session {
        peer,
        context,
        handshake,
        write,
        lines: 0,
        refused: Refused::default(),
    };
    let ended = session.serve(leftover, read, slot).await;
    session.summarize();
    ended
}

struct Session<'a, S> {
    peer: SocketAddr,
    context: &'a Context,
    handshake: Handshake,
    write: WriteHalf<S>,
    /// Lines read so far: CyberTrace's `total`.
    lines: u64,
    refused: Refused,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    async fn serve(
        &mut self,
        leftover: Vec<u8>,
        read: impl AsyncRead + Unpin,
        slot: &Slot,
    ) -> io::Result<()> {
        if self.handshake.ping {
            return self.send(b"PONG\n").await;
        }
        let idle = self.context.limits.idle_timeout;
        let mut reader = BufReader::new(std::io::Cursor::new(leftover).chain(read));
        let mut line = Vec::new();
        loop {
            let read = tokio::time::timeout(
                idle,
                read_delimited(&mut reader, b'\n', MAX_LINE, &mut line),
            )
            .await
            .map_err(|_| timed_out("no complete line"))??;
            if read == Delimited::End {
                return Ok(());
            }
            slot.touch();
            self.lines += 1;
            let mut answer = String::new();
            let sent = match read {
                Delimited::TooLong => {
                    self.refuse(Refusal::TooLong, "longer than 64 KiB");
                    0
                }
                _ => {
                    line.retain(|&b| b != b'\r');
                    match std::str::from_utf8(&line) {
                        Ok(text) => self.look_up(text, &mut answer),
                        Err(_) => {
                            self.refuse(Refusal::NotUtf8, "not UTF-8");
                            0
                        }
                    }
                }
            };
            if self.handshake.reply_back && self.handshake.finished_events {
                answer.push_str(&self.context.events.formats().finished(sent, self.lines));
                answer.push('\n');
            }
            if !answer.is_empty() {
                self.send(answer.as_bytes()).await?;
            }
        }
    }

    /// Looks up the values of one line; its detections go into `answer` (ReplyBack) or to the
    /// event sink. How many detections there were.
    fn look_up(&mut self, text: &str, answer: &mut String) -> usize {
        if text.trim().is_empty() {
            return 0;
        }
        let (store, formats) = (&self.context.store, self.context.events.formats());
        let lookups = lookups_of(text);
        let (view, now) = (store.view(), now_ms());
        let mut found = Vec::new();
        // Most lines match nothing: the date is formatted for the first detection only.
        let mut date: Option<String> = None;
        let mut sent = 0;
        for lookup in &lookups {
            found.clear();
            if let Err(error) = view.lookup(lookup.value, lookup.kind.map(kind_of), now, &mut found)
            {
                if self.refused.count(Refusal::BadValue)
                    && let Some(suppressed) = self.context.warnings.admit()
                {
                    tracing::warn!(peer = %self.peer, param = %quoted(lookup.param), %error, suppressed, "cybertrace: value not looked up");
                }
                continue;
            }
            for hit in &found {
                let date = date.get_or_insert_with(now_text);
                let detection =
                    formats.detection(hit.category, hit.matched, hit.context.iter(), date);
                sent += 1;
                if self.handshake.reply_back {
                    answer.push_str(&detection);
                    answer.push('\n');
                } else {
                    self.context.events.detection(detection, self.peer);
                }
            }
        }
        store.count(lookups.len() as u64, sent as u64);
        metrics::looked_up(Interface::CyberTrace, lookups.len() as u64, sent as u64);
        sent
    }

    fn refuse(&mut self, refusal: Refusal, reason: &str) {
        if self.refused.count(refusal)
            && let Some(suppressed) = self.context.warnings.admit()
        {
            tracing::warn!(peer = %self.peer, line = self.lines, reason, suppressed, "cybertrace: line refused");
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(
            self.context.limits.write_timeout,
            self.write.write_all(bytes),
        )
        .await
        .map_err(|_| timed_out("the client does not read its answers"))?
    }

    /// One line for a connection that sent anything refused, with the counts by reason.
    fn summarize(&self) {
        let refused = &self.refused;
        if refused.total() > 0
            && let Some(suppressed) = self.context.warnings.admit()
        {
            tracing::warn!(
                peer = %self.peer,
                lines = self.lines,
                too_long = refused.too_long,
                not_utf8 = refused.not_utf8,
                bad_values = refused.bad_values,
                suppressed,
                "cybertrace: connection closed after refused input"
            );
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

/// The handshake a connection opens with, and the bytes read past it.
async fn opening(read: &mut (impl AsyncRead + Unpin)) -> io::Result<(Handshake, Vec<u8>)> {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 128];
    loop {
        match read_opening(&pending, false) {
            Opening::Handshake(handshake, used) => return Ok((handshake, pending.split_off(used))),
            Opening::Plain => return Ok((Handshake::default(), pending)),
            Opening::NeedMore => {}
        }
        // Nothing yet: wait for the client (the caller bounds the wait). Part of an opening:
        // wait a moment for the rest, then take what matched.
        let read_more = read.read(&mut chunk);
        let n = if pending.is_empty() {
            read_more.await?
        } else {
            tokio::time::timeout(OPENING_WAIT, read_more)
                .await
                .unwrap_or(Ok(0))?
        };
        if n == 0 {
            return Ok(match read_opening(&pending, true) {
                Opening::Handshake(handshake, used) => (handshake, pending.split_off(used)),
                _ => (Handshake::default(), pending),
            });
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// The index's kind of a value the protocol names.
fn kind_of(kind: ValueKind) -> IndicatorKind {
    match kind {
        ValueKind::Url => IndicatorKind::Url,
        ValueKind::Ip => IndicatorKind::Ip,
        ValueKind::Domain => IndicatorKind::Domain,
        ValueKind::Hash => IndicatorKind::Hash,
    }
}
