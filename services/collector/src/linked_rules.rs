//! Checks the enrichment rules a collector links, asking the enrichment service: each must
//! exist and belong to the collector's tenant or `Shared`. A collector linking a rule that
//! is not there would store its events unenriched with no word of why.

use std::time::Duration;

use tonic::{Code, Status};
use xdr_mesh::{caller::SHARED_TENANT, quote::quoted, replicas::Balanced};
use xdr_proto::pb::{CollectorConfig, GetRequest, enrichment_client::EnrichmentClient};

/// How long the check of one rule may take (waiting for a replica that serves included).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check(enrichment: &Balanced, collector: &CollectorConfig) -> Result<(), Status> {
    let mut client = EnrichmentClient::new(enrichment.clone());
    for (i, id) in collector.rule_ids.iter().enumerate() {
        let mut request = tonic::Request::new(GetRequest {
            id: id.clone(),
            tenant: String::new(),
        });
        request.set_timeout(CHECK_TIMEOUT);
        let answer = tokio::time::timeout(CHECK_TIMEOUT, client.get_rule(request))
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("no replica answered in time")));
        match answer {
            Ok(rule) => {
                let rule = rule.into_inner();
                if rule.tenant != collector.tenant && rule.tenant != SHARED_TENANT {
                    return Err(Status::invalid_argument(format!(
                        "rule_ids[{i}]: rule {} belongs to tenant {}, not {} or Shared",
                        quoted(&rule.name),
                        quoted(&rule.tenant),
                        quoted(&collector.tenant)
                    )));
                }
            }
            Err(status) if status.code() == Code::NotFound => {
                return Err(Status::invalid_argument(format!(
                    "rule_ids[{i}]: no enrichment rule {}",
                    quoted(id)
                )));
            }
            Err(status) => {
                return Err(Status::unavailable(format!(
                    "rule_ids: the enrichment service could not check them: {}",
                    status.message()
                )));
            }
        }
    }
    Ok(())
}
