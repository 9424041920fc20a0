//! Connections of the CyberTrace protocol: each on its own task, bounded in number and in line
//! length. A malformed line is logged and skipped; it never ends the connection or the service.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf},
    sync::Semaphore,
};
use xdr_mesh::shutdown::CancellationToken;

use super::{
    EventSink,
    codec::{Handshake, Opening, lookups_of, read_opening},
    events::now_text,
};
use crate::store::{IndicatorStore, now_ms};

const MAX_CONNECTIONS: usize = 1024;
/// Longer lines are discarded up to their end, and logged.
const MAX_LINE: usize = 64 * 1024;
/// How long to wait for the rest of an opening that could still grow (`X-KF-ReplyBack` →
/// `X-KF-ReplyBackPING`) before taking what matched.
const OPENING_WAIT: Duration = Duration::from_millis(300);

pub async fn serve(
    listener: TcpListener,
    store: Arc<IndicatorStore>,
    events: EventSink,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cybertrace: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (store, events, shutdown) = (store.clone(), events.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(error) = connection(stream, peer, &store, &events, &shutdown).await {
                tracing::debug!(%peer, %error, "cybertrace: connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    store: &IndicatorStore,
    events: &EventSink,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let formats = events.formats();
    let (mut read, mut write) = stream.into_split();
    let (handshake, leftover) = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        opening = opening(&mut read) => opening?,
    };
    if handshake.ping {
        return write.write_all(b"PONG\n").await;
    }
    let mut reader = BufReader::new(std::io::Cursor::new(leftover).chain(read));
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        line.clear();
        let read = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            read = read_line(&mut reader, &mut line) => read?,
        };
        match read {
            LineRead::End => return Ok(()),
            LineRead::TooLong => {
                tracing::warn!(%peer, max = MAX_LINE, "cybertrace: line too long, discarded");
                continue;
            }
            LineRead::Line => {}
        }
        line.retain(|&b| b != b'\r');
        let Ok(text) = std::str::from_utf8(&line) else {
            tracing::warn!(%peer, "cybertrace: line is not UTF-8, skipped");
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        total += 1;
        let lookups = lookups_of(text);
        let (view, now) = (store.view(), now_ms());
        let mut found = Vec::new();
        // Most lines match nothing: the date is formatted for the first detection only.
        let mut date: Option<String> = None;
        let mut out = String::new();
        let mut sent = 0;
        for lookup in &lookups {
            found.clear();
            if let Err(error) = view.lookup(lookup.value, lookup.kind, now, &mut found) {
                tracing::warn!(%peer, param = lookup.param, %error, "cybertrace: value not looked up");
                continue;
            }
            for hit in &found {
                let date = date.get_or_insert_with(now_text);
                let detection = formats.detection(hit, date);
                sent += 1;
                if handshake.reply_back {
                    out.push_str(&detection);
                    out.push('\n');
                } else {
                    events.detection(detection, peer);
                }
            }
        }
        store.count(lookups.len() as u64, sent as u64);
        if handshake.reply_back {
            if handshake.finished_events {
                out.push_str(&formats.finished(sent, total));
                out.push('\n');
            }
            write.write_all(out.as_bytes()).await?;
        }
    }
}

/// The handshake a connection opens with, and the bytes read past it.
async fn opening(read: &mut OwnedReadHalf) -> io::Result<(Handshake, Vec<u8>)> {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 128];
    loop {
        match read_opening(&pending, false) {
            Opening::Handshake(handshake, used) => return Ok((handshake, pending.split_off(used))),
            Opening::Plain => return Ok((Handshake::default(), pending)),
            Opening::NeedMore => {}
        }
        // Nothing yet: wait for the client as long as it likes. Part of an opening: wait a
        // moment for the rest, then take what matched.
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

enum LineRead {
    Line,
    TooLong,
    End,
}

/// One line (without its LF) into `line`, reading at most `MAX_LINE` bytes of it.
async fn read_line<R: AsyncBufRead + AsyncRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> io::Result<LineRead> {
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(LineRead::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(LineRead::Line);
    }
    if line.len() <= MAX_LINE {
        // The last line of the stream, without an LF.
        return Ok(LineRead::Line);
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = (&mut *reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut rest)
            .await?;
        if n == 0 || rest.last() == Some(&b'\n') {
            return Ok(LineRead::TooLong);
        }
    }
}
