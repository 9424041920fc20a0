//! The rules streams apply: every stored rule compiled, with the resources' entries of the
//! same moment, built whole on each change and swapped in (a stream takes it at its next
//! batch).

use std::{collections::HashMap, sync::Arc};

use xdr_filter::{Compiled, Compiler, resources::Resources};
use xdr_proto::pb::{EnrichmentRule, FilterNode, RuleSelection, enrichment_rule, filter_node};

use super::records::{Defs, Records};
use crate::rule::{Invalid, Rule};

/// A rule as streams use it: its typed settings and its compiled filter (none: every event).
pub struct ActiveRule {
    pub rule: Rule,
    pub filter: Option<Compiled>,
}

#[derive(Default)]
pub struct ActiveRules {
    pub rules: Vec<Arc<ActiveRule>>,
    /// Each rule's position in `rules`, by id: a collector names the rules it links.
    by_id: HashMap<String, usize>,
    /// The resources' entries of the same moment, for the resource operators.
    pub resources: Resources,
}

impl ActiveRules {
    /// Every rule of `records`, compiled. Rules were checked when saved; one whose filter no
    /// longer compiles (its saved filter changed under it) is logged and left out.
    pub fn of(records: &Records) -> Self {
        let mut active = ActiveRules {
            rules: Vec::new(),
            by_id: HashMap::new(),
            resources: Resources::of(records.resources.values().map(|r| &**r)),
        };
        let mut rules: Vec<_> = records.rules.values().collect();
        rules.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let defs = Defs {
            filters: &records.filters,
            resources: &records.resources,
        };
        // One compiler for every rule: a saved filter they share is compiled once.
        let mut compiler = Compiler::new(&defs);
        for rule in rules {
            match compile_rule(&mut compiler, rule) {
                Ok(filter) => {
                    active.by_id.insert(rule.id.clone(), active.rules.len());
                    active.rules.push(Arc::new(ActiveRule {
                        rule: Rule::of(rule),
                        filter,
                    }));
                }
                Err(error) => {
                    tracing::warn!(rule = %rule.name, %error, "rule left inactive: its filter does not compile")
                }
            }
        }
        active
    }
}

impl ActiveRules {
    /// The rules a batch applies, by position in `rules`: the ones `selection` names, in its
    /// order, skipping ids not active (a linked rule deleted since) and repeats; every rule
    /// when there is no selection.
    pub fn selected(&self, selection: Option<&RuleSelection>) -> Vec<usize> {
        let Some(selection) = selection else {
            return (0..self.rules.len()).collect();
        };
        let mut taken = vec![false; self.rules.len()];
        let mut chosen = Vec::with_capacity(selection.rule_ids.len());
        for id in &selection.rule_ids {
            if let Some(&index) = self.by_id.get(id)
                && !std::mem::replace(&mut taken[index], true)
            {
                chosen.push(index);
            }
        }
        chosen
    }
}

/// A filter node naming saved filter `id`.
pub fn reference(id: &str) -> FilterNode {
    FilterNode {
        node: Some(filter_node::Node::FilterId(id.to_owned())),
    }
}

/// `rule`'s filter compiled by `compiler` (none: the rule takes every event).
pub fn compile_rule(
    compiler: &mut Compiler<'_>,
    rule: &EnrichmentRule,
) -> Result<Option<Compiled>, Invalid> {
    let node = match &rule.filter {
        None => return Ok(None),
        Some(enrichment_rule::Filter::InlineFilter(node)) => node.clone(),
        Some(enrichment_rule::Filter::FilterId(id)) => reference(id),
    };
    compiler.compile(&node, &rule.tenant).map(Some)
}
