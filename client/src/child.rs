//! Stopping the service processes xdrctl starts: SIGTERM, so they drain before exiting.

use tokio::process::Child;

/// Asks `child` to stop gracefully; a child already reaped is left alone.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on a pid this process spawned and has not reaped (`id` is None once
        // it has), so it cannot name another process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}
