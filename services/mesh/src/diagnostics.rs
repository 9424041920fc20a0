//! `xdr.v1.Diagnostics`, served by every mesh server: tells a caller how the server sees it
//! and measures a round trip, optionally holding the call open for a while (which is also how
//! an operator sees the server's request timeout and graceful shutdown at work).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};
use xdr_proto::pb::{PingReply, PingRequest, diagnostics_server::Diagnostics};

use crate::listener::PeerInfo;

pub struct DiagnosticsService {
    service: &'static str,
}

impl DiagnosticsService {
    pub fn new(service: &'static str) -> Self {
        DiagnosticsService { service }
    }
}

#[tonic::async_trait]
impl Diagnostics for DiagnosticsService {
    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let received_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let caller = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|peer| peer.identity.as_ref().ok())
            .map(ToString::to_string)
            .unwrap_or_default();
        let delay_ms = request.get_ref().delay_ms;
        let delay = Duration::from_millis(delay_ms.into());
        // No cap of our own: the server's request timeout cuts a longer delay.
        tracing::info!(%caller, delay_ms, "ping");
        tokio::time::sleep(delay).await;
        Ok(Response::new(PingReply {
            service: self.service.to_owned(),
            caller,
            received_at_ms,
        }))
    }
}
