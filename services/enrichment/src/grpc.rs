//! The `xdr.v1.Enrichment` gRPC adapter: catalog changes run off the async runtime (they
//! write the store), reads answer from the catalog's last snapshot without waiting for a
//! change, and `Enrich` answers batches in the order they came, several at work at once.

use std::{pin::Pin, sync::Arc, time::Instant};

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use xdr_proto::{
    pb::{
        ChangeResourceEntriesReply, ChangeResourceEntriesRequest, DeleteReply, DeleteRequest,
        EnrichmentRule, EnrichmentStatsReply, EnrichmentStatsRequest, Filter, GetRequest,
        ListFiltersReply, ListRequest, ListResourcesReply, ListRulesReply, LookupObject, PageInfo,
        Resource, TestConnectionReply,
    },
    wire::WireEnrichBatch,
    wire_servers::enrichment_server::Enrichment,
};

use xdr_mesh::{
    call_limit::Slots,
    caller::{Action, Caller},
    error::ServiceError,
    stream::{idle_limited, until_failed},
};

use crate::{
    catalog::{Catalog, CatalogError, SharedCatalog},
    enrich::Enricher,
    rule,
    stats::StatusCounts,
};

/// Events in one batch at most: more is a client bug, not a workload.
const MAX_BATCH_EVENTS: usize = 100_000;
/// Rules one batch may name at most (a collector links at most 64).
const MAX_BATCH_RULES: usize = 256;
/// Batches of one stream being enriched at once; later ones wait (backpressure).
const BATCHES_IN_FLIGHT: usize = 8;

/// `Enrich` streams open at once: each may hold its batches in flight.
const MAX_ENRICH_STREAMS: usize = 64;

pub struct EnrichmentService {
    catalog: Arc<SharedCatalog>,
    enricher: Arc<Enricher>,
    enrich_streams: Slots,
    /// An `Enrich` stream that sends nothing for this long is ended (`--stream-idle`): it
    /// holds one of the slots (a collector closes its own after 5 idle minutes and opens
    /// another with its next batch).
    stream_idle: std::time::Duration,
}

impl EnrichmentService {
    pub fn new(
        catalog: Arc<SharedCatalog>,
        enricher: Arc<Enricher>,
        stream_idle: std::time::Duration,
    ) -> Self {
        EnrichmentService {
            catalog,
            enricher,
            enrich_streams: Slots::new("Enrich streams", MAX_ENRICH_STREAMS),
            stream_idle,
        }
    }

    /// Runs `change` (named `rpc` in the log) on the catalog's one writer, off the runtime.
    async fn change<T: Send + 'static>(
        &self,
        rpc: &'static str,
        change: impl FnOnce(&mut Catalog) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, Status> {
        let catalog = self.catalog.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = catalog.lock();
            tracing::debug!(rpc, "catalog change begins");
            change(&mut writer)
        })
        .await
        .map_err(|e| Status::internal(format!("catalog task failed: {e}")))?
        .map_err(status_of)
    }
}

fn status_of(error: CatalogError) -> Status {
    error.to_status()
}

/// One page of `items`, copied out of the snapshot.
fn page<T: Clone>(items: Vec<Arc<T>>, request: &ListRequest) -> Result<(Vec<T>, PageInfo), Status> {
    xdr_mesh::page::page_of(&items, request.page.as_ref())
}

type EnrichStream = Pin<Box<dyn Stream<Item = Result<WireEnrichBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Enrichment for EnrichmentService {
    async fn enrich(
        &self,
        request: Request<Streaming<WireEnrichBatch>>,
    ) -> Result<Response<EnrichStream>, Status> {
        let stream_slot = self.enrich_streams.take()?;
        let enricher = self.enricher.clone();
        // Batches are enriched concurrently, each on a task of its own, and answered in the
        // order they came (`buffered`). A stream that fails (a malformed frame, a refused
        // batch) answers the batches before the failure, then ends with it, never with OK.
        let counting = enricher.clone();
        let answers = idle_limited(request.into_inner(), self.stream_idle)
            .map(move |batch| {
                let enricher = enricher.clone();
                async move { enrich_batch(enricher, batch?).await }
            })
            .buffered(BATCHES_IN_FLIGHT)
            // Counted in order as each is answered (this runs only for batches the stream
            // answers): whoever reads an answer sees it counted.
            .map(move |outcome| match outcome {
                Ok(Ok((batch, counts))) => {
                    counting.stats().answered(counts);
                    Ok(batch)
                }
                Ok(Err(refused)) => {
                    counting.stats().refused_batch();
                    Err(refused)
                }
                Err(failed) => Err(failed),
            });
        Ok(Response::new(Box::pin(until_failed(answers, stream_slot))))
    }

    async fn create_rule(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateRule", move |c| c.save_rule(rule, true))
                .await?,
        ))
    }

    async fn update_rule(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        if rule.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateRule", move |c| c.save_rule(rule, false))
                .await?,
        ))
    }

    async fn delete_rule(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteRule", move |c| c.delete_rule(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_rule(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<EnrichmentRule>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .rule(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn list_rules(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListRulesReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let rules = self.catalog.records().rules(&tenant);
        let (rules, page) = page(rules, &request)?;
        Ok(Response::new(ListRulesReply {
            rules,
            page: Some(page),
        }))
    }

    async fn test_connection(
        &self,
        request: Request<EnrichmentRule>,
    ) -> Result<Response<TestConnectionReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let mut rule = EnrichmentRule {
            tenant,
            ..request.into_inner()
        };
        // Only the source settings matter here; a rule being drafted may lack the rest.
        if rule.name.is_empty() {
            rule.name = "connection test".to_owned();
        }
        if rule.mapping.is_empty() {
            rule.mapping.push(xdr_proto::pb::FieldMapping {
                field: "RequestUrl".to_owned(),
                indicator_type: xdr_proto::pb::IndicatorType::Url as i32,
            });
        }
        let rule = rule::checked(rule, 1).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let started = Instant::now();
        let probe = vec![LookupObject {
            r#type: xdr_proto::pb::IndicatorType::Ip as i32,
            value: "192.0.2.0".to_owned(),
        }];
        let reply = match self.enricher.test(&rule::Rule::of(&rule), probe).await {
            Ok(()) => TestConnectionReply {
                ok: true,
                message: "the source answered a lookup".to_owned(),
                latency_ms: started.elapsed().as_millis() as u32,
            },
            Err(why) => TestConnectionReply {
                ok: false,
                message: why,
                latency_ms: started.elapsed().as_millis() as u32,
            },
        };
        Ok(Response::new(reply))
    }

    async fn create_filter(&self, request: Request<Filter>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let filter = Filter {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateFilter", move |c| c.save_filter(filter, true))
                .await?,
        ))
    }

    async fn update_filter(&self, request: Request<Filter>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let filter = Filter {
            tenant,
            ..request.into_inner()
        };
        if filter.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateFilter", move |c| c.save_filter(filter, false))
                .await?,
        ))
    }

    async fn delete_filter(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteFilter", move |c| c.delete_filter(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_filter(&self, request: Request<GetRequest>) -> Result<Response<Filter>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .filter(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn create_resource(
        &self,
        request: Request<Resource>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let resource = Resource {
            tenant,
            ..request.into_inner()
        };
        Ok(Response::new(
            self.change("CreateResource", move |c| c.save_resource(resource, true))
                .await?,
        ))
    }

    async fn update_resource(
        &self,
        request: Request<Resource>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let resource = Resource {
            tenant,
            ..request.into_inner()
        };
        if resource.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        Ok(Response::new(
            self.change("UpdateResource", move |c| c.save_resource(resource, false))
                .await?,
        ))
    }

    async fn delete_resource(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        let deleted = self
            .change("DeleteResource", move |c| c.delete_resource(&id, &tenant))
            .await?;
        Ok(Response::new(DeleteReply { deleted }))
    }

    async fn get_resource(
        &self,
        request: Request<GetRequest>,
    ) -> Result<Response<Resource>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.catalog
                .records()
                .resource(&id, &tenant)
                .map_err(status_of)?,
        ))
    }

    async fn list_resources(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListResourcesReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let resources = self.catalog.records().resources(&tenant);
        let (resources, page) = page(resources, &request)?;
        Ok(Response::new(ListResourcesReply {
            resources,
            page: Some(page),
        }))
    }

    async fn list_filters(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListFiltersReply>, Status> {
        let tenant = authorized(&request, Action::Read, &request.get_ref().tenant)?;
        let request = request.into_inner();
        let filters = self.catalog.records().filters(&tenant);
        let (filters, page) = page(filters, &request)?;
        Ok(Response::new(ListFiltersReply {
            filters,
            page: Some(page),
        }))
    }

    async fn change_resource_entries(
        &self,
        request: Request<ChangeResourceEntriesRequest>,
    ) -> Result<Response<ChangeResourceEntriesReply>, Status> {
        let tenant = authorized(&request, Action::Configure, &request.get_ref().tenant)?;
        let request = request.into_inner();
        if request.id.is_empty() {
            return Err(Status::invalid_argument("id: empty"));
        }
        let (resource, changed) = self
            .change("ChangeResourceEntries", move |c| {
                c.change_entries(&request.id, &tenant, request.put, &request.remove)
            })
            .await?;
        Ok(Response::new(ChangeResourceEntriesReply {
            entries: resource.entries.len() as u64,
            added: changed.added,
            removed: changed.removed,
        }))
    }

    async fn stats(
        &self,
        request: Request<EnrichmentStatsRequest>,
    ) -> Result<Response<EnrichmentStatsReply>, Status> {
        // The figures cover every tenant's rules: a person must be a Main administrator.
        let caller = Caller::of(&request)?;
        if caller.person.is_some() && !caller.is_main_administrator() {
            return Err(Status::permission_denied(
                "Stats covers every tenant: for Main administrators",
            ));
        }
        Ok(Response::new(self.enricher.stats().snapshot()))
    }
}

/// The tenant a request's caller acts in when its body names `tenant`, after checking the
/// caller may do `action` there (`xdr_mesh::caller`: a person's body may not name another
/// tenant unless they are a Main administrator).
fn authorized<T>(request: &Request<T>, action: Action, tenant: &str) -> Result<String, Status> {
    let caller = Caller::of(request)?;
    let tenant = caller.tenant_of(tenant)?;
    caller.may(action, &tenant)?;
    Ok(tenant)
}

/// One batch of an `Enrich` stream, enriched on a task of its own: the batch and its
/// events' statuses, or (inside) the refusal of a batch whose events do not decode.
async fn enrich_batch(
    enricher: Arc<Enricher>,
    batch: WireEnrichBatch,
) -> Result<Result<(WireEnrichBatch, StatusCounts), Status>, Status> {
    let batch_id = batch.batch_id;
    if batch.events.len() > MAX_BATCH_EVENTS {
        return Err(Status::invalid_argument(format!(
            "events: {} in batch {batch_id}; at most {MAX_BATCH_EVENTS}",
            batch.events.len()
        )));
    }
    let named = batch.rules.as_ref().map_or(0, |r| r.rule_ids.len());
    if named > MAX_BATCH_RULES {
        return Err(Status::invalid_argument(format!(
            "rules.rule_ids: {named} in batch {batch_id}; at most {MAX_BATCH_RULES}"
        )));
    }
    let enriched = tokio::spawn(async move { enricher.enrich(batch).await })
        .await
        .map_err(|e| Status::internal(format!("enriching a batch failed: {e}")))?;
    Ok(
        enriched
            .map_err(|invalid| Status::invalid_argument(format!("batch {batch_id}: {invalid}"))),
    )
}
