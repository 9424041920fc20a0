//! The CyberTrace TCP listener: every connection on its own task ([`super::session`]), at most
//! `max_connections` at once. At the bound a new connection still gets in: the one whose last
//! complete line is oldest is closed for it, so idle sockets — however many a client opens —
//! never lock out a client that is talking.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::net::TcpListener;
use xdr_mesh::{log_limit::LogLimiter, shutdown::CancellationToken};

use super::{
    EventSink,
    session::{self, SessionLimits},
};
use crate::{metrics, store::IndicatorStore};

/// What the listener and each of its connections may hold.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct ListenerSettings {
    /// CyberTrace connections open at once; past this, the one idle longest is closed.
    #[arg(long, env = "XDR_CYBERTRACE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub cybertrace_max_connections: u32,
    /// A CyberTrace connection that sends no complete line for this long is closed.
    #[arg(long, env = "XDR_CYBERTRACE_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub cybertrace_idle_timeout: Duration,
}

pub async fn serve(
    listener: TcpListener,
    settings: ListenerSettings,
    store: Arc<IndicatorStore>,
    events: EventSink,
    shutdown: CancellationToken,
) {
    let table = Arc::new(ConnectionTable::new(
        settings.cybertrace_max_connections as usize,
    ));
    let context = Arc::new(session::Context {
        store,
        events,
        limits: SessionLimits {
            idle_timeout: settings.cybertrace_idle_timeout,
            ..SessionLimits::default()
        },
        warnings: LogLimiter::default(),
    });
    loop {
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
        let slot = ConnectionTable::admit(&table);
        let (context, shutdown) = (context.clone(), shutdown.clone());
        tokio::spawn(async move {
            let closed = slot.close.clone();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = closed.cancelled() => tracing::debug!(%peer, "cybertrace: idle connection closed for a new one"),
                ended = session::run(stream, peer, &context, &slot) => if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "cybertrace: connection ended");
                },
            }
        });
    }
}

/// The open connections, each with when it last completed a line.
pub struct ConnectionTable {
    max: usize,
    epoch: Instant,
    open: Mutex<(u64, HashMap<u64, Entry>)>,
}

struct Entry {
    last_active_ms: Arc<AtomicU64>,
    close: CancellationToken,
}

/// A connection's place in the table; dropping it frees the place.
pub struct Slot {
    id: u64,
    table: Arc<ConnectionTable>,
    last_active_ms: Arc<AtomicU64>,
    close: CancellationToken,
}

impl Slot {
    /// The connection completed a line just now.
    pub fn touch(&self) {
        self.last_active_ms
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::cybertrace_connection_closed();
        self.table.lock().1.remove(&self.id);
    }
}

impl ConnectionTable {
    pub fn new(max: usize) -> Self {
        ConnectionTable {
            max,
            epoch: Instant::now(),
            open: Mutex::new((0, HashMap::new())),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, Entry>)> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a new connection, closing the one idle longest if the table is full.
    pub fn admit(table: &Arc<ConnectionTable>) -> Slot {
        let now = table.now_ms();
        let mut guard = table.lock();
        let (next, open) = &mut *guard;
        if open.len() >= table.max {
            // A linear scan, only when full: cheaper than keeping an order on every line.
            let idlest = open
                .iter()
                .min_by_key(|(_, entry)| entry.last_active_ms.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            if let Some(entry) = idlest.and_then(|id| open.remove(&id)) {
                entry.close.cancel();
            }
        }
        let id = *next;
        *next += 1;
        let last_active_ms = Arc::new(AtomicU64::new(now));
        let close = CancellationToken::new();
        open.insert(
            id,
            Entry {
                last_active_ms: last_active_ms.clone(),
                close: close.clone(),
            },
        );
        metrics::cybertrace_connection_opened();
        Slot {
            id,
            table: table.clone(),
            last_active_ms,
            close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_closes_the_connection_idle_longest() {
        let table = Arc::new(ConnectionTable::new(2));
        let first = ConnectionTable::admit(&table);
        let second = ConnectionTable::admit(&table);
        first.last_active_ms.store(5, Ordering::Relaxed);
        second.last_active_ms.store(1, Ordering::Relaxed);
        let third = ConnectionTable::admit(&table);
        assert!(second.close.is_cancelled(), "the idlest is closed");
        assert!(!first.close.is_cancelled() && !third.close.is_cancelled());
        drop(second);
        assert_eq!(table.lock().1.len(), 2);
        drop((first, third));
        assert!(table.lock().1.is_empty());
    }
}
