//! Incidents: alerts of one tenant grouped for one piece of work, with a status, an assignee
//! and a history of their own. Linking writes to both sides' histories.

use redb::WriteTransaction;
use xdr_mesh::{error::invalid, id::new_time_ordered_uuid, store::StoreFailure};
use xdr_proto::pb::{Alert, AlertStatus, Incident, PageInfo, PageRequest, history_entry::Change};

use super::{
    error::AlertError,
    store::{
        ALERTS, AlertFilter, AlertStore, INCIDENTS, key, list_records, modify, push_history,
        read_record, record_changes,
    },
};
use xdr_mesh::clock::now_ms;

/// Alerts one incident may hold.
const MAX_ALERTS_PER_INCIDENT: usize = 1000;
/// Incidents one tenant may hold.
const MAX_INCIDENTS_PER_TENANT: usize = 100_000;

/// What an incident update asks for.
pub struct IncidentChange {
    pub status: Option<AlertStatus>,
    pub assignee: Option<String>,
    pub add_alert_ids: Vec<String>,
}

impl AlertStore {
    pub fn create_incident(
        &self,
        tenant: &str,
        title: String,
        alert_ids: &[String],
        by: &str,
    ) -> Result<Incident, AlertError> {
        let mut counts = self.incident_counts.lock().expect("incident counts lock");
        if counts.get(tenant).copied().unwrap_or(0) >= MAX_INCIDENTS_PER_TENANT {
            return Err(AlertError::TooMany {
                what: "incidents",
                tenant: tenant.to_owned(),
                max: MAX_INCIDENTS_PER_TENANT,
            });
        }
        let now = now_ms();
        let mut incident = Incident {
            id: new_time_ordered_uuid(),
            tenant: tenant.to_owned(),
            title,
            status: AlertStatus::New as i32,
            created_at_ms: now,
            ..Incident::default()
        };
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        link(&write, &mut incident, alert_ids, by)?;
        write
            .open_table(INCIDENTS)
            .map_err(StoreFailure::new)?
            .insert(
                key(tenant, &incident.id).as_str(),
                prost::Message::encode_to_vec(&incident).as_slice(),
            )
            .map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        *counts.entry(tenant.to_owned()).or_insert(0) += 1;
        Ok(incident)
    }

    pub fn get_incident(&self, tenant: &str, id: &str) -> Result<Incident, AlertError> {
        read_record(&self.db, INCIDENTS, &key(tenant, id))?.ok_or_else(|| AlertError::NotFound {
            what: "incident",
            id: id.to_owned(),
        })
    }

    /// A page of `tenant`'s incidents that `filter` admits, newest first.
    pub fn list_incidents(
        &self,
        tenant: &str,
        filter: &AlertFilter,
        page: Option<&PageRequest>,
    ) -> Result<(Vec<Incident>, PageInfo), AlertError> {
        list_records(&self.db, INCIDENTS, tenant, page, |i: &Incident| {
            filter.admits(i.status, i.severity, i.created_at_ms, &i.assignee)
        })
    }

    pub fn update_incident(
        &self,
        tenant: &str,
        id: &str,
        change: IncidentChange,
        by: &str,
    ) -> Result<Incident, AlertError> {
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        let mut incident = self.get_incident(tenant, id)?;
        let mut changed = record_changes(
            &mut incident.history,
            &mut incident.status,
            &mut incident.assignee,
            change.status,
            change.assignee,
            by,
        )?;
        if !change.add_alert_ids.is_empty() {
            link(&write, &mut incident, &change.add_alert_ids, by)?;
            changed = true;
        }
        if changed {
            write
                .open_table(INCIDENTS)
                .map_err(StoreFailure::new)?
                .insert(
                    key(tenant, id).as_str(),
                    prost::Message::encode_to_vec(&incident).as_slice(),
                )
                .map_err(StoreFailure::new)?;
        }
        write.commit().map_err(StoreFailure::new)?;
        Ok(incident)
    }

    /// The alerts of an incident (those still there).
    pub fn alerts_of(&self, incident: &Incident) -> Result<Vec<Alert>, AlertError> {
        let mut alerts = Vec::new();
        for id in &incident.alert_ids {
            if let Some(alert) = read_record(&self.db, ALERTS, &key(&incident.tenant, id))? {
                alerts.push(alert);
            }
        }
        Ok(alerts)
    }
}

/// Links the alerts `ids` (of the incident's tenant) to `incident`, in both histories.
fn link(
    write: &WriteTransaction,
    incident: &mut Incident,
    ids: &[String],
    by: &str,
) -> Result<(), AlertError> {
    for (i, id) in ids.iter().enumerate() {
        if incident.alert_ids.contains(id) {
            continue;
        }
        if incident.alert_ids.len() >= MAX_ALERTS_PER_INCIDENT {
            return Err(invalid(
                "alert_ids",
                format!("an incident holds at most {MAX_ALERTS_PER_INCIDENT} alerts"),
            )
            .into());
        }
        if id.is_empty() || id.len() > 64 || id.contains('\0') {
            return Err(invalid(format!("alert_ids[{i}]"), "not an alert id").into());
        }
        let incident_id = incident.id.clone();
        let alert = modify(
            write,
            ALERTS,
            &key(&incident.tenant, id),
            "alert",
            id,
            |alert: &mut Alert| {
                push_history(
                    &mut alert.history,
                    by,
                    Change::LinkedToIncident(incident_id),
                )?;
                alert.incident_id = incident.id.clone();
                Ok(true)
            },
        )?;
        push_history(&mut incident.history, by, Change::AlertLinked(id.clone()))?;
        incident.severity = incident.severity.max(alert.severity);
        incident.alert_ids.push(id.clone());
    }
    Ok(())
}
