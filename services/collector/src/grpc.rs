//! The `xdr.v1.Collector` gRPC adapter: `Ingest` stores events as they come (normalizing,
//! enrichment and durable buffering arrive with the rest of issue 17), `SearchEvents` runs
//! KUMA's search SQL, checked, within the caller's tenant. Store work runs off the async
//! runtime.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use xdr_collector::{
    search::check::check,
    store::{Cell, EventStore, Found},
};
use xdr_mesh::{
    call_limit::Slots,
    caller::{Action, Caller, MAIN_TENANT},
    error::ServiceError,
    id::new_uuid,
};
use xdr_proto::pb::{
    self, IngestReply, IngestRequest, Row, SearchEventsReply, SearchEventsRequest,
    collector_server::Collector,
};

/// Events in one `Ingest` request, at most.
const MAX_INGEST_EVENTS: usize = 10_000;
/// Searches in progress at once: each may take a core for its time limit.
const MAX_SEARCHES: usize = 4;

pub struct CollectorService {
    store: Arc<dyn EventStore>,
    searches: Slots,
}

impl CollectorService {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        CollectorService {
            store,
            searches: Slots::new("searches in progress", MAX_SEARCHES),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn EventStore) -> Result<T, xdr_collector::store::EventStoreError>
        + Send
        + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&*store))
            .await
            .map_err(|e| Status::internal(format!("event store task failed: {e}")))?
            .map_err(|e| e.to_status())
    }
}

/// The tenant `caller` acts in when it names `tenant`: a person's own unless a Main
/// administrator names another; a service or the operator naming none acts in Main.
fn tenant_for(caller: &Caller, tenant: &str, action: Action) -> Result<String, Status> {
    let tenant = caller.tenant_of(tenant)?;
    let tenant = if tenant.is_empty() {
        MAIN_TENANT.to_owned()
    } else {
        tenant
    };
    caller.may(action, &tenant)?;
    Ok(tenant)
}

#[tonic::async_trait]
impl Collector for CollectorService {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestReply>, Status> {
        let caller = Caller::of(&request)?.clone();
        let mut events = request.into_inner().events;
        if events.len() > MAX_INGEST_EVENTS {
            return Err(Status::invalid_argument(format!(
                "events: {}; at most {MAX_INGEST_EVENTS} in one request",
                events.len()
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (i, event) in events.iter_mut().enumerate() {
            event.tenant = tenant_for(&caller, &event.tenant, Action::Read)
                .map_err(|s| Status::new(s.code(), format!("events[{i}]: {}", s.message())))?;
            if event.tenant == xdr_mesh::caller::SHARED_TENANT {
                return Err(Status::invalid_argument(format!(
                    "events[{i}].tenant: events never belong to Shared"
                )));
            }
            if event.id.is_empty() {
                event.id = new_uuid();
            }
            if event.timestamp_ms == 0 {
                event.timestamp_ms = now;
            }
        }
        let ids = events.iter().map(|e| e.id.clone()).collect();
        self.blocking(move |store| store.insert(&events)).await?;
        Ok(Response::new(IngestReply { ids }))
    }

    async fn search_events(
        &self,
        request: Request<SearchEventsRequest>,
    ) -> Result<Response<SearchEventsReply>, Status> {
        let _slot = self.searches.take()?;
        let tenant = tenant_for(
            Caller::of(&request)?,
            &request.get_ref().tenant,
            Action::Read,
        )?;
        let search = check(&request.get_ref().sql)
            .map_err(|invalid| invalid.to_status())?
            .within_tenant(&tenant);
        let found = self.blocking(move |store| store.search(&search)).await?;
        Ok(Response::new(match found {
            Found::Events(events) => SearchEventsReply {
                events,
                ..Default::default()
            },
            Found::Rows { columns, rows } => SearchEventsReply {
                columns,
                rows: rows
                    .into_iter()
                    .map(|cells| Row {
                        cells: cells.into_iter().map(cell).collect(),
                    })
                    .collect(),
                ..Default::default()
            },
        }))
    }
}

fn cell(value: Cell) -> pb::Cell {
    use pb::cell::Kind;
    pb::Cell {
        kind: match value {
            Cell::Null => None,
            Cell::Integer(n) => Some(Kind::Integer(n)),
            Cell::Number(n) => Some(Kind::Number(n)),
            Cell::Text(text) => Some(Kind::Text(text)),
        },
    }
}
