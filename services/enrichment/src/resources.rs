//! Resources (active lists, dictionaries, tables) as the catalog keeps them: checked before
//! they are stored, their entries changed in place. What filters read of them is
//! `xdr_filter::resources`.

use std::collections::{HashMap, HashSet};

use xdr_proto::pb::{Resource, ResourceEntry, ResourceKind};

use xdr_mesh::quote::quoted;

use crate::rule::{Invalid, check_description, check_name, invalid, tenant_or_shared};

/// Entries of one resource, at most: each change rewrites the resource whole, and every
/// batch reads a snapshot of all of them.
pub const MAX_ENTRIES: usize = 1_000_000;

/// `resource` checked (name, kind, description, non-empty unique keys), tenant filled in.
pub fn checked(mut resource: Resource) -> Result<Resource, Invalid> {
    check_name("name", &resource.name)?;
    resource.name = resource.name.trim().to_owned();
    resource.tenant = tenant_or_shared(&resource.tenant)?;
    check_description(&resource.description)?;
    if matches!(
        ResourceKind::try_from(resource.kind),
        Ok(ResourceKind::Unspecified) | Err(_)
    ) {
        return Err(invalid(
            "kind",
            "active list, dictionary, context table, asset category, AD group or vulnerabilities",
        ));
    }
    if resource.entries.len() > MAX_ENTRIES {
        return Err(invalid(
            "entries",
            format!(
                "{} entries; at most {MAX_ENTRIES} in one resource",
                resource.entries.len()
            ),
        ));
    }
    let mut keys = std::collections::HashSet::new();
    for (i, entry) in resource.entries.iter().enumerate() {
        if entry.key.is_empty() {
            return Err(invalid(format!("entries[{i}].key"), "empty"));
        }
        if !keys.insert(entry.key.as_str()) {
            return Err(invalid(
                format!("entries[{i}].key"),
                format!("{} is given twice", quoted(&entry.key)),
            ));
        }
    }
    Ok(resource)
}

/// How [`with_entries_changed`] changed a resource.
#[derive(Debug, PartialEq)]
pub struct EntriesChanged {
    pub added: u64,
    pub removed: u64,
}

/// `resource` with the entries of `put` added (last, in their order) or replacing those of the
/// same key, and the keys of `remove` gone. A key put twice, or both put and removed, is
/// refused by name.
pub fn with_entries_changed(
    mut resource: Resource,
    put: Vec<ResourceEntry>,
    remove: &[String],
) -> Result<(Resource, EntriesChanged), Invalid> {
    let mut incoming: HashMap<String, usize> = HashMap::with_capacity(put.len());
    for (i, entry) in put.iter().enumerate() {
        if entry.key.is_empty() {
            return Err(invalid(format!("put[{i}].key"), "empty"));
        }
        if incoming.insert(entry.key.clone(), i).is_some() {
            return Err(invalid(
                format!("put[{i}].key"),
                format!("{} is given twice", quoted(&entry.key)),
            ));
        }
    }
    if let Some((i, key)) = (remove.iter().enumerate()).find(|(_, key)| incoming.contains_key(*key))
    {
        return Err(invalid(
            format!("remove[{i}]"),
            format!("{} is also put", quoted(key)),
        ));
    }
    let removing: HashSet<&str> = remove.iter().map(String::as_str).collect();
    let mut put: Vec<Option<ResourceEntry>> = put.into_iter().map(Some).collect();
    let before = resource.entries.len();
    resource.entries.retain_mut(|entry| {
        if let Some(&i) = incoming.get(&entry.key) {
            *entry = put[i].take().expect("each key of put is taken once");
        }
        !removing.contains(entry.key.as_str())
    });
    let removed = (before - resource.entries.len()) as u64;
    let new: Vec<ResourceEntry> = put.into_iter().flatten().collect();
    let added = new.len() as u64;
    resource.entries.extend(new);
    Ok((resource, EntriesChanged { added, removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> ResourceEntry {
        ResourceEntry {
            key: key.to_owned(),
            values: [("v".to_owned(), value.to_owned())].into(),
        }
    }

    fn list(entries: Vec<ResourceEntry>) -> Resource {
        Resource {
            entries,
            ..Default::default()
        }
    }

    #[test]
    fn entries_are_put_replaced_and_removed_by_key() {
        let before = list(vec![entry("a", "1"), entry("b", "1"), entry("c", "1")]);
        let (after, changed) = with_entries_changed(
            before,
            vec![entry("d", "2"), entry("b", "2"), entry("e", "2")],
            &["c".to_owned(), "nowhere".to_owned()],
        )
        .unwrap();
        assert_eq!(
            after.entries,
            [
                entry("a", "1"),
                entry("b", "2"),
                entry("d", "2"),
                entry("e", "2")
            ]
        );
        assert_eq!(
            changed,
            EntriesChanged {
                added: 2,
                removed: 1
            }
        );
    }

    #[test]
    fn ambiguous_changes_are_refused_by_name() {
        let refused = |put: Vec<ResourceEntry>, remove: &[&str]| {
            let remove: Vec<String> = remove.iter().map(|k| k.to_string()).collect();
            with_entries_changed(list(vec![]), put, &remove)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(vec![entry("a", "1"), entry("a", "2")], &[]).contains("put[1].key"));
        assert!(refused(vec![entry("", "1")], &[]).contains("put[0].key: empty"));
        assert!(refused(vec![entry("a", "1")], &["b", "a"]).contains("remove[1]"));
    }
}
