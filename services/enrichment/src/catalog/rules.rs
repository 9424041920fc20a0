//! Saving and deleting enrichment rules.

use std::sync::Arc;

use xdr_filter::Compiler;
use xdr_mesh::error::invalid;
use xdr_proto::pb::EnrichmentRule;

use super::{
    active::compile_rule,
    changes::{Catalog, new_id},
    error::CatalogError,
    records::check_quota,
    store::RULES,
};
use crate::rule::{self};

impl Catalog {
    /// Creates (`id` empty) or replaces the rule; what was stored.
    pub fn save_rule(
        &mut self,
        rule: EnrichmentRule,
        create: bool,
    ) -> Result<EnrichmentRule, CatalogError> {
        let mut rule = rule::checked(rule, self.vcpus)?;
        let rules = &self.records.rules;
        if create {
            check_quota(rules, &rule.tenant)?;
            // A caller may name the id: replicas whose stores are not shared yet are given
            // the same rule under the same id, which collectors link.
            if rule.id.is_empty() {
                rule.id = new_id();
            } else if !is_id(&rule.id) {
                return Err(invalid("id", "letters, digits and -, at most 64").into());
            } else if rules.contains_key(&rule.id) {
                return Err(CatalogError::IdTaken {
                    kind: "rule",
                    id: rule.id,
                });
            }
        } else if !rules.contains_key(&rule.id) {
            return Err(CatalogError::NotFound {
                kind: "rule",
                id: rule.id,
            });
        }
        if rules
            .values()
            .any(|r| r.id != rule.id && r.tenant == rule.tenant && r.name == rule.name)
        {
            return Err(CatalogError::NameTaken {
                kind: "rule",
                tenant: rule.tenant,
                name: rule.name,
            });
        }
        let defs = self.defs();
        compile_rule(&mut Compiler::new(&defs), &rule)?;
        self.store.write(RULES, &rule.id, Some(&rule))?;
        Arc::make_mut(&mut self.records.rules).insert(rule.id.clone(), Arc::new(rule.clone()));
        self.publish();
        Ok(rule)
    }

    pub fn delete_rule(&mut self, id: &str, tenant: &str) -> Result<bool, CatalogError> {
        if self.records.rule(id, tenant).is_err() {
            return Ok(false);
        }
        self.store.write::<EnrichmentRule>(RULES, id, None)?;
        Arc::make_mut(&mut self.records.rules).remove(id);
        self.publish();
        Ok(true)
    }
}

/// Whether `id` may name a rule: what `new_id` makes (a UUID) and the like.
fn is_id(id: &str) -> bool {
    id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
