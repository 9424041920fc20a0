//! Where CyberTrace's outgoing events go: service alerts (`KL_ALERT_ServiceStarted`,
//! `KL_ALERT_UpdatedFeed`, ...) and the detections of connections that did not ask for
//! ReplyBack. With `--event-target HOST:PORT` they are written to that TCP address one per
//! line, as CyberTrace sends them to a SIEM's collector; without one they are logged.
//!
//! A slow or absent target never slows lookups: events wait in a bounded queue, a full queue
//! drops new events (counted in the log), and the writer reconnects with a growing pause.

use std::{sync::Arc, time::Duration};

use tokio::{io::AsyncWriteExt, net::TcpStream, sync::mpsc, task::JoinHandle};
use xdr_mesh::log_limit::LogLimiter;

use super::OutputFormats;

/// CyberTrace's service alerts, by the names its documentation gives them.
pub const SERVICE_STARTED: &str = "KL_ALERT_ServiceStarted";
pub const SERVICE_STOPPED: &str = "KL_ALERT_ServiceStopped";
pub const UPDATED_FEED: &str = "KL_ALERT_UpdatedFeed";
pub const FAILED_TO_UPDATE_FEED: &str = "KL_ALERT_FailedToUpdateFeed";

/// Events waiting for the target before new ones are dropped.
const QUEUE: usize = 16 * 1024;
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A target that takes no bytes for this long is dropped and dialled again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

enum Event {
    Line(String),
    /// Everything before this is written; then the writer ends.
    Close,
}

#[derive(Clone)]
pub struct EventSink {
    formats: Arc<OutputFormats>,
    queue: Option<mpsc::Sender<Event>>,
    /// Drops happen once per event while the target is behind: logged at a bounded rate.
    drops: Arc<LogLimiter>,
}

/// The writer of an [`EventSink`] with a target; [`EventWriter::close`] flushes it.
pub struct EventWriter {
    queue: mpsc::Sender<Event>,
    task: JoinHandle<()>,
}

impl EventSink {
    /// Events go to the log.
    pub fn log_only(formats: Arc<OutputFormats>) -> Self {
        EventSink {
            formats,
            queue: None,
            drops: Arc::default(),
        }
    }

    /// Events go to `target` (`host:port`), written by a task of their own.
    pub fn to_target(formats: Arc<OutputFormats>, target: String) -> (Self, EventWriter) {
        let (queue, events) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_events(target, events));
        let writer = EventWriter {
            queue: queue.clone(),
            task,
        };
        let sink = EventSink {
            formats,
            queue: Some(queue),
            drops: Arc::default(),
        };
        (sink, writer)
    }

    pub fn formats(&self) -> &OutputFormats {
        &self.formats
    }

    /// Sends service alert `name` with its context fields.
    pub fn alert(&self, name: &str, context: &[(&str, &str)]) {
        let line = self.formats.alert(name, context, &now_text());
        match &self.queue {
            Some(_) => self.send(line),
            None => tracing::info!(alert = %line, "cybertrace alert"),
        }
    }

    /// Sends the detection of a connection that did not ask for ReplyBack.
    pub fn detection(&self, line: String, peer: std::net::SocketAddr) {
        match &self.queue {
            Some(_) => self.send(line),
            None => tracing::info!(%peer, detection = %line, "cybertrace detection"),
        }
    }

    fn send(&self, line: String) {
        let Some(queue) = &self.queue else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(Event::Line(line))
            && let Some(suppressed) = self.drops.admit()
        {
            tracing::warn!(
                also_dropped = suppressed,
                "cybertrace: the event target is behind; an event was dropped"
            );
        }
    }
}

impl EventWriter {
    /// Writes what is queued (waiting at most `grace` for the target), then stops.
    pub async fn close(self, grace: Duration) {
        let _ = self.queue.send(Event::Close).await;
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("cybertrace: events still queued for the target were not sent");
        }
    }
}

/// `%Date%` of events: the current time, RFC 3339 in UTC to the second.
pub fn now_text() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

async fn write_events(target: String, mut events: mpsc::Receiver<Event>) {
    let mut connection: Option<TcpStream> = None;
    let mut pause = RECONNECT_FIRST;
    while let Some(Event::Line(mut line)) = events.recv().await {
        line.push('\n');
        // The line is kept until it is written: a dropped connection loses nothing queued.
        loop {
            let stream = match &mut connection {
                Some(stream) => stream,
                None => match connect(&target).await {
                    Ok(stream) => {
                        tracing::info!(event_target = %target, "cybertrace: connected to the event target");
                        pause = RECONNECT_FIRST;
                        connection.insert(stream)
                    }
                    Err(error) => {
                        tracing::warn!(event_target = %target, %error, retry_in = ?pause, "cybertrace: event target unreachable");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RECONNECT_MAX);
                        continue;
                    }
                },
            };
            let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(line.as_bytes()))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match written {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(event_target = %target, %error, "cybertrace: event target connection lost");
                    connection = None;
                }
            }
        }
    }
    if let Some(mut stream) = connection {
        let _ = stream.shutdown().await;
    }
}

async fn connect(target: &str) -> std::io::Result<TcpStream> {
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
