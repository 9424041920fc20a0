//! `LaunchPlaybook`: the caller's role and tenant checked, the alert's or incident's
//! observables gathered, the run carried out, and the run written to its history.

use std::{net::IpAddr, sync::Arc, time::Duration};
use tracing::Instrument;

use prost::Message;
use tonic::{Request, Status};
use xdr_mesh::{
    caller::Action,
    error::{ServiceError, invalid},
    quote::quoted,
};
use xdr_proto::pb::{IndicatorType, LaunchPlaybookRequest, Observable, PlaybookRun};

use super::{alerts::checked_observables, authorized, blocking};
use crate::{
    alerts::{AlertError, AlertStore, MAX_HISTORY, has_room_for_a_launch},
    playbooks::{Launch, Runner},
};

/// The longest block lifetime: a year.
const MAX_BLOCK_SECONDS: u32 = 366 * 24 * 3600;

pub async fn launch(
    store: &Arc<AlertStore>,
    runner: &Arc<Runner>,
    request: Request<LaunchPlaybookRequest>,
) -> Result<PlaybookRun, Status> {
    let (tenant, by) = authorized(&request, Action::LaunchPlaybooks, &request.get_ref().tenant)?;
    let request = request.into_inner();
    let playbook = runner.find(&request.playbook_id).cloned().ok_or_else(|| {
        Status::not_found(format!(
            "playbook_id: {} is not a playbook (ListPlaybooks names them)",
            quoted(&request.playbook_id)
        ))
    })?;
    let named = checked_observables(request.observables, "observables")?;
    for (i, observable) in named.iter().enumerate() {
        let address = observable.value.parse::<IpAddr>().is_ok()
            || observable.value.parse::<ipnet::IpNet>().is_ok();
        if observable.r#type == IndicatorType::Ip as i32 && !address {
            return Err(invalid(
                format!("observables[{i}].value"),
                "not an IP address or network",
            )
            .to_status());
        }
    }
    if request.block_seconds > MAX_BLOCK_SECONDS {
        return Err(invalid("block_seconds", "at most a year (31622400)").to_status());
    }
    let observables = {
        let store = store.clone();
        let (tenant, alert_id, incident_id) = (
            tenant.clone(),
            request.alert_id.clone(),
            request.incident_id.clone(),
        );
        blocking(move || observables_of(&store, &tenant, &alert_id, &incident_id)).await?
    };
    let launch = Launch {
        playbook,
        tenant: tenant.clone(),
        by,
        observables,
        named,
        dry_run: request.dry_run,
        block_for: (request.block_seconds > 0)
            .then(|| Duration::from_secs(request.block_seconds.into())),
    };
    // The run goes on a task of its own: once UserGate is being changed, a caller that gives
    // up (its deadline, a closed connection) must not cut the run short or leave it out of
    // the history.
    let (runner, store) = (runner.clone(), store.clone());
    let span = tracing::info_span!("launch", otel.name = "playbook.launch", playbook = %launch.playbook.id);
    let running = tokio::spawn(
        async move {
            let run = runner
                .run(launch)
                .await
                .map_err(|busy| Status::resource_exhausted(busy.to_string()))?;
            let run = PlaybookRun {
                alert_id: request.alert_id,
                incident_id: request.incident_id,
                ..run
            };
            if !request.dry_run {
                let recorded = run.clone();
                blocking(move || store.record_launch(&tenant, &recorded)).await?;
                tracing::info!(
                    alert = %run.alert_id, incident = %run.incident_id, playbook = %run.playbook,
                    "launch recorded in the history"
                );
            }
            Ok::<_, Status>(run)
        }
        .instrument(span),
    );
    running
        .await
        .map_err(|e| Status::internal(format!("the launch task failed: {e}")))?
}

/// The observables of the alert or incident a launch names (exactly one of them), once its
/// history has room for the run.
fn observables_of(
    store: &AlertStore,
    tenant: &str,
    alert_id: &str,
    incident_id: &str,
) -> Result<Vec<Observable>, AlertError> {
    let room = |history: usize, encoded: usize| {
        if has_room_for_a_launch(history, encoded) {
            Ok(())
        } else {
            Err(AlertError::HistoryFull(MAX_HISTORY))
        }
    };
    match (alert_id.is_empty(), incident_id.is_empty()) {
        (false, true) => {
            let alert = store.get(tenant, alert_id)?;
            room(alert.history.len(), alert.encoded_len())?;
            Ok(alert.observables)
        }
        (true, false) => {
            let incident = store.get_incident(tenant, incident_id)?;
            room(incident.history.len(), incident.encoded_len())?;
            let mut observables = Vec::new();
            for alert in store.alerts_of(&incident)? {
                for observable in alert.observables {
                    if !observables.iter().any(|o: &Observable| {
                        o.r#type == observable.r#type && o.value == observable.value
                    }) {
                        observables.push(observable);
                    }
                }
            }
            Ok(observables)
        }
        _ => Err(invalid(
            "alert_id",
            "name an alert or an incident (incident_id), one of them",
        )
        .into()),
    }
}
