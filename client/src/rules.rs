//! The enrichment rules of a tenant, every page of them: what quickstart and
//! `collector create --rule NAME` look names up in.

use anyhow::Context;
use tonic::transport::Channel;
use xdr_proto::pb::{
    EnrichmentRule, ListRequest, PageRequest, enrichment_client::EnrichmentClient,
};

use crate::connect::failed;

/// Every rule of `tenant` (of every tenant when empty).
pub async fn all(
    client: &mut EnrichmentClient<Channel>,
    tenant: &str,
) -> anyhow::Result<Vec<EnrichmentRule>> {
    let mut rules = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_rules(ListRequest {
                tenant: tenant.to_owned(),
                page: Some(PageRequest {
                    page_size: 1000,
                    page_token,
                }),
            })
            .await
            .map_err(failed)
            .context("listing enrichment rules")?
            .into_inner();
        rules.extend(page.rules);
        page_token = page.page.unwrap_or_default().next_page_token;
        if page_token.is_empty() {
            return Ok(rules);
        }
    }
}
