//! The gateway's view of the mesh: every upstream's gRPC health, checked concurrently.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use tokio::task::JoinSet;
use tonic_health::pb::health_check_response::ServingStatus;
use xdr_mesh::channel::health_check;

use crate::upstreams::Upstreams;

#[derive(Serialize)]
pub struct MeshHealth {
    /// `SERVING` when every service is.
    pub status: &'static str,
    /// Per service: `SERVING`, `NOT_SERVING`, or `UNREACHABLE: <why>`.
    pub services: BTreeMap<&'static str, String>,
}

impl MeshHealth {
    pub fn all_serving(&self) -> bool {
        self.status == "SERVING"
    }
}

pub async fn check(upstreams: &Upstreams, timeout: Duration) -> MeshHealth {
    let mut checks = JoinSet::new();
    for (name, channel) in upstreams.services.iter().cloned() {
        checks.spawn(async move { (name, health_check(channel, "", timeout).await) });
    }
    let mut services = BTreeMap::new();
    while let Some(joined) = checks.join_next().await {
        let Ok((name, result)) = joined else { continue };
        let status = match result {
            Ok(status) => status.as_str_name().to_owned(),
            Err(status) => format!("UNREACHABLE: {}", status.message()),
        };
        services.insert(name, status);
    }
    let serving = services.len() == upstreams.services.len()
        && services
            .values()
            .all(|s| s == ServingStatus::Serving.as_str_name());
    MeshHealth {
        status: if serving { "SERVING" } else { "NOT_SERVING" },
        services,
    }
}
