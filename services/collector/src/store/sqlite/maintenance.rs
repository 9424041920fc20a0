//! The store's upkeep on a connection and thread of its own: WAL checkpoints every second
//! (the copying off the writer's thread: the writer's own checkpoint, once the WAL passes
//! 64 MiB, finds little left to copy and lets the WAL start over), and the query planner's
//! statistics refreshed at start and every ten minutes (without them SQLite walks the
//! tenant-and-time index for a query another index answers at once).

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use rusqlite::Connection;

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const STATISTICS_EVERY: Duration = Duration::from_secs(600);

/// The running upkeep; dropping it stops the thread.
pub struct Maintenance {
    stop: Arc<AtomicBool>,
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

pub fn start(path: &Path) -> rusqlite::Result<Maintenance> {
    let connection = Connection::open(path)?;
    connection.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;",
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    thread::Builder::new()
        .name("event-store-upkeep".into())
        .spawn(move || run(&connection, &stopped))
        .expect("a thread starts");
    Ok(Maintenance { stop })
}

fn run(connection: &Connection, stop: &AtomicBool) {
    let mut statistics = Instant::now();
    while !stop.load(Ordering::Acquire) {
        thread::sleep(CHECKPOINT_EVERY);
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "event store checkpoint failed");
        }
        if statistics.elapsed() >= STATISTICS_EVERY {
            statistics = Instant::now();
            if let Err(error) = connection.execute_batch("PRAGMA optimize;") {
                tracing::warn!(%error, "event store statistics not refreshed");
            }
        }
    }
    // A last full checkpoint: the next start finds a short WAL to read.
    let _ = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}
