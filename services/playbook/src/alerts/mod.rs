//! Alerts raised from events with threat-intel matches and grouped by their matches
//! (`raise`), their observables (`observables`) and severity (`severity`), incidents that
//! group alerts (`incidents`), with the history of every change and launch, kept in redb
//! (`store`).

mod error;
mod incidents;
mod observables;
mod raise;
mod severity;
mod store;

pub use error::AlertError;
pub use incidents::IncidentChange;
pub use observables::host_of;
pub use raise::{MAX_EVENTS_PER_CALL, RaisePolicy};
pub use severity::SeverityMap;
pub use store::{
    AlertFilter, AlertStore, MAX_HISTORY, forget_old_event_ids, has_room_for_a_launch,
};
