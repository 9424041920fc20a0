//! Graceful shutdown: one cancellation token, cancelled by SIGINT or SIGTERM, handed to
//! every task of a binary.

use tokio::signal::unix::{SignalKind, signal};
pub use tokio_util::sync::CancellationToken;

/// A token cancelled when the process receives SIGINT or SIGTERM.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down: finishing calls in flight");
        cancel.cancel();
    });
    Ok(token)
}

/// Resolves `grace` after `token` is cancelled: the latest a graceful drain may run before the
/// process stops anyway, so a stuck client cannot hold it open.
pub async fn drain_deadline(token: CancellationToken, grace: std::time::Duration) {
    token.cancelled().await;
    tokio::time::sleep(grace).await;
}
