//! Events into alerts. An event whose id its tenant has raised before is skipped (a
//! collector sends again what it is unsure was received). Otherwise its grouping key — the
//! categories and matched indicators of its threat-intel matches — finds the open alert that
//! events with the same key joined within the window, so a burst makes one alert; failing
//! that, the event opens a new alert.

use std::{collections::HashMap, time::Duration};

use redb::{ReadableTable, WriteTransaction};
use xdr_mesh::{
    caller::SHARED_TENANT, error::invalid, id::new_time_ordered_uuid, quote::quoted,
    store::StoreFailure,
};
use xdr_proto::pb::{Alert, AlertStatus, Event, Observable, RaiseAlertsReply, Severity};

use super::{
    error::AlertError,
    observables,
    severity::SeverityMap,
    store::{ALERTS, AlertStore, MAX_ALERTS_PER_TENANT, OPEN_GROUPS, RAISED, decode, key},
};
use xdr_mesh::clock::now_ms;

/// Event ids an alert keeps (its `event_count` counts all).
const MAX_EVENT_IDS: usize = 1000;
/// Events one `RaiseAlerts` call may carry.
pub const MAX_EVENTS_PER_CALL: usize = 10_000;
/// The longest title made from an event's matches.
const MAX_TITLE_CHARS: usize = 512;
/// The longest grouping key kept as text; longer ones are kept as their digest.
const MAX_KEY_TEXT: usize = 256;

/// The alerts and open groups one `RaiseAlerts` call changes, held until it ends: a burst of
/// a thousand events for one alert then costs one read and one write of it, not a thousand.
#[derive(Default)]
struct Touched {
    /// By `tenant \0 alert id`.
    alerts: HashMap<String, Alert>,
    /// `tenant \0 grouping key` → the open alert, for groups read or made in this call.
    groups: HashMap<String, String>,
    /// Groups opened in this call, to write.
    new_groups: Vec<String>,
}

impl Touched {
    fn write(self, write: &WriteTransaction) -> Result<(), AlertError> {
        let mut alerts = write.open_table(ALERTS).map_err(StoreFailure::new)?;
        for (alert_key, alert) in &self.alerts {
            alerts
                .insert(
                    alert_key.as_str(),
                    prost::Message::encode_to_vec(alert).as_slice(),
                )
                .map_err(StoreFailure::new)?;
        }
        let mut groups = write.open_table(OPEN_GROUPS).map_err(StoreFailure::new)?;
        for group in &self.new_groups {
            groups
                .insert(group.as_str(), self.groups[group].as_bytes())
                .map_err(StoreFailure::new)?;
        }
        Ok(())
    }
}

/// How events become alerts.
#[derive(Clone, Debug)]
pub struct RaisePolicy {
    /// An event joins an open alert with its key whose last event is at most this old.
    pub window: Duration,
    pub severities: SeverityMap,
}

/// The key events share to join one alert: their tenant-independent match identity.
pub fn grouping_key(event: &Event) -> String {
    let mut parts: Vec<String> = event
        .ti
        .iter()
        .map(|ti| format!("{}|{}", ti.category, ti.matched_indicator))
        .collect();
    parts.sort();
    parts.dedup();
    let text = if parts.is_empty() {
        format!("collector|{}", event.collector)
    } else {
        parts.join(";")
    };
    if text.len() <= MAX_KEY_TEXT {
        return text;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn title_of(event: &Event) -> String {
    let title = match event.ti.first() {
        Some(ti) => {
            let more = event.ti.len() - 1;
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("{} matched {}{tail}", ti.category, ti.matched_indicator)
        }
        None => format!("Events from collector {}", event.collector),
    };
    xdr_mesh::quote::truncated(&title, MAX_TITLE_CHARS).into_owned()
}

impl AlertStore {
    pub fn raise(&self, events: &[Event]) -> Result<RaiseAlertsReply, AlertError> {
        if events.len() > MAX_EVENTS_PER_CALL {
            return Err(
                invalid("events", format!("at most {MAX_EVENTS_PER_CALL} per call")).into(),
            );
        }
        for (i, event) in events.iter().enumerate() {
            if event.tenant.is_empty() || event.tenant == SHARED_TENANT {
                return Err(invalid(
                    format!("events[{i}].tenant"),
                    "an event belongs to a tenant other than Shared",
                )
                .into());
            }
            if event.id.is_empty() || event.id.len() > 128 || event.id.contains('\0') {
                return Err(invalid(format!("events[{i}].id"), "1 to 128 bytes").into());
            }
        }
        let now = now_ms();
        let mut counts = self.counts.lock().expect("alert counts lock");
        let mut reply = RaiseAlertsReply::default();
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        let mut batch = Touched::default();
        let mut added = Vec::new();
        let mut left_out = 0_usize;
        {
            let mut raised = write.open_table(RAISED).map_err(StoreFailure::new)?;
            let groups = write.open_table(OPEN_GROUPS).map_err(StoreFailure::new)?;
            let alerts = write.open_table(ALERTS).map_err(StoreFailure::new)?;
            for event in events {
                let raised_key = key(&event.tenant, &event.id);
                if raised
                    .get(raised_key.as_str())
                    .map_err(StoreFailure::new)?
                    .is_some()
                {
                    reply.duplicates += 1;
                    reply.alert_ids.push(String::new());
                    continue;
                }
                let Some((alert_id, new)) =
                    self.place(&mut batch, &groups, &alerts, event, now, &counts)?
                else {
                    left_out += 1;
                    reply.alert_ids.push(String::new());
                    continue;
                };
                if new {
                    reply.new_alerts += 1;
                    *counts.entry(event.tenant.clone()).or_insert(0) += 1;
                    added.push(event.tenant.clone());
                }
                let mut value = (now as u64).to_be_bytes().to_vec();
                value.extend_from_slice(alert_id.as_bytes());
                raised
                    .insert(raised_key.as_str(), value.as_slice())
                    .map_err(StoreFailure::new)?;
                reply.alert_ids.push(alert_id);
            }
        }
        batch.write(&write)?;
        if let Err(error) = write.commit() {
            // Nothing was kept: take back the counts.
            for tenant in added {
                *counts.entry(tenant).or_insert(1) -= 1;
            }
            return Err(StoreFailure::new(error).into());
        }
        let joined =
            events.len() - left_out - reply.new_alerts as usize - reply.duplicates as usize;
        crate::metrics::alert_events("new_alert", reply.new_alerts.into());
        crate::metrics::alert_events("joined", joined as u64);
        crate::metrics::alert_events("duplicate", reply.duplicates.into());
        crate::metrics::alert_events("left_out", left_out as u64);
        if left_out > 0 {
            // Refusing the call would hold every other tenant's alerts back behind these.
            tracing::warn!(
                left_out,
                max = MAX_ALERTS_PER_TENANT,
                "events left out: their tenant holds the most alerts it may"
            );
        }
        tracing::info!(
            events = events.len(),
            new_alerts = reply.new_alerts,
            duplicates = reply.duplicates,
            "events raised"
        );
        Ok(reply)
    }

    /// Puts `event` into the open alert of its key, or a new one: the alert's id, and
    /// whether it is new; none when it would be new and its tenant holds the most alerts.
    /// Alerts are changed in `batch`, written once per call however many events they take.
    fn place(
        &self,
        batch: &mut Touched,
        groups: &impl ReadableTable<&'static str, &'static [u8]>,
        alerts: &impl ReadableTable<&'static str, &'static [u8]>,
        event: &Event,
        now: i64,
        counts: &HashMap<String, usize>,
    ) -> Result<Option<(String, bool)>, AlertError> {
        let group = key(&event.tenant, &grouping_key(event));
        let open_id = match batch.groups.get(&group) {
            Some(id) => Some(id.clone()),
            None => groups
                .get(group.as_str())
                .map_err(StoreFailure::new)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned()),
        };
        let window_ms = self.policy.window.as_millis() as i64;
        if let Some(id) = open_id {
            let alert_key = key(&event.tenant, &id);
            if !batch.alerts.contains_key(&alert_key)
                && let Some(bytes) = alerts.get(alert_key.as_str()).map_err(StoreFailure::new)?
            {
                batch
                    .alerts
                    .insert(alert_key.clone(), decode::<Alert>(bytes.value())?);
            }
            if let Some(alert) = batch.alerts.get_mut(&alert_key).filter(|a| {
                a.status != AlertStatus::Closed as i32 && a.last_event_at_ms + window_ms >= now
            }) {
                alert.event_count += 1;
                alert.last_event_at_ms = now;
                if alert.event_ids.len() < MAX_EVENT_IDS {
                    alert.event_ids.push(event.id.clone());
                }
                let severity = self.policy.severities.of_event(event) as i32;
                alert.severity = alert.severity.max(severity);
                observables::merge(&mut alert.observables, observables::of_event(event));
                return Ok(Some((id, false)));
            }
        }
        if counts.get(&event.tenant).copied().unwrap_or(0) >= MAX_ALERTS_PER_TENANT {
            return Ok(None);
        }
        let mut observables_found: Vec<Observable> = Vec::new();
        observables::merge(&mut observables_found, observables::of_event(event));
        let alert = Alert {
            id: new_time_ordered_uuid(),
            tenant: event.tenant.clone(),
            severity: self.policy.severities.of_event(event) as i32,
            status: AlertStatus::New as i32,
            title: title_of(event),
            created_at_ms: now,
            event_ids: vec![event.id.clone()],
            observables: observables_found,
            history: Vec::new(),
            assignee: String::new(),
            event_count: 1,
            grouping_key: grouping_key(event),
            last_event_at_ms: now,
            incident_id: String::new(),
        };
        tracing::info!(alert = %alert.id, tenant = %quoted(&alert.tenant), title = %alert.title, "alert raised");
        let id = alert.id.clone();
        batch.groups.insert(group.clone(), id.clone());
        batch.new_groups.push(group);
        batch.alerts.insert(key(&alert.tenant, &id), alert);
        Ok(Some((id, true)))
    }

    /// An alert an analyst opens by hand.
    pub fn create(
        &self,
        tenant: &str,
        title: String,
        severity: Severity,
        observables: Vec<Observable>,
    ) -> Result<Alert, AlertError> {
        let mut counts = self.counts.lock().expect("alert counts lock");
        if counts.get(tenant).copied().unwrap_or(0) >= MAX_ALERTS_PER_TENANT {
            return Err(AlertError::TooMany {
                what: "alerts",
                tenant: tenant.to_owned(),
                max: MAX_ALERTS_PER_TENANT,
            });
        }
        let now = now_ms();
        let mut kept = Vec::new();
        observables::merge(&mut kept, observables);
        let alert = Alert {
            id: new_time_ordered_uuid(),
            tenant: tenant.to_owned(),
            severity: severity as i32,
            status: AlertStatus::New as i32,
            title,
            created_at_ms: now,
            last_event_at_ms: now,
            observables: kept,
            ..Alert::default()
        };
        let write = self.db.begin_write().map_err(StoreFailure::new)?;
        write
            .open_table(ALERTS)
            .map_err(StoreFailure::new)?
            .insert(
                key(tenant, &alert.id).as_str(),
                prost::Message::encode_to_vec(&alert).as_slice(),
            )
            .map_err(StoreFailure::new)?;
        write.commit().map_err(StoreFailure::new)?;
        *counts.entry(tenant.to_owned()).or_insert(0) += 1;
        Ok(alert)
    }
}

#[cfg(test)]
mod tests {
    use xdr_proto::pb::TiMatch;

    use super::*;

    fn matched(category: &str, indicator: &str) -> TiMatch {
        TiMatch {
            category: category.into(),
            matched_indicator: indicator.into(),
            ..TiMatch::default()
        }
    }

    fn store(dir: &std::path::Path) -> AlertStore {
        let db = std::sync::Arc::new(redb::Database::create(dir.join("a.redb")).unwrap());
        let policy = RaisePolicy {
            window: Duration::from_secs(60),
            severities: SeverityMap::default(),
        };
        AlertStore::open(db, policy).unwrap()
    }

    #[test]
    fn raised_ids_are_remembered_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let event = Event {
            id: "e-1".into(),
            tenant: "Main".into(),
            ti: vec![matched("KL_Malicious_URL", "x.nu")],
            ..Event::default()
        };
        assert_eq!(
            store
                .raise(std::slice::from_ref(&event))
                .unwrap()
                .new_alerts,
            1
        );
        assert_eq!(
            store
                .raise(std::slice::from_ref(&event))
                .unwrap()
                .duplicates,
            1
        );
        assert_eq!(store.forget_raised_before(now_ms() - 60_000).unwrap(), 0);
        assert_eq!(store.forget_raised_before(now_ms() + 1).unwrap(), 1);
        let again = store.raise(std::slice::from_ref(&event)).unwrap();
        assert_eq!(
            (again.duplicates, again.new_alerts),
            (0, 0),
            "joins its open alert"
        );
    }

    #[test]
    fn events_with_the_same_matches_share_a_key_in_any_order() {
        let a = Event {
            ti: vec![
                matched("KL_Malicious_URL", "x.nu"),
                matched("KL_IP_Reputation", "1.2.3.4"),
            ],
            ..Event::default()
        };
        let b = Event {
            ti: vec![
                matched("KL_IP_Reputation", "1.2.3.4"),
                matched("KL_Malicious_URL", "x.nu"),
            ],
            ..Event::default()
        };
        assert_eq!(grouping_key(&a), grouping_key(&b));
        let c = Event {
            ti: vec![matched("KL_Malicious_URL", "y.nu")],
            ..Event::default()
        };
        assert_ne!(grouping_key(&a), grouping_key(&c));
        let long = Event {
            ti: (0..100)
                .map(|i| matched("KL_Malicious_URL", &format!("host{i}.nu")))
                .collect(),
            ..Event::default()
        };
        assert!(grouping_key(&long).starts_with("sha256:"));
    }
}
