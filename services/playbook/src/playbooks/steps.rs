//! Each kind of step on an appliance: block (lists, items, drop rules), unblock, log users
//! out — and the plan of each for a dry run. Items already where they should be count as
//! done, so running a playbook twice is harmless.

use std::collections::HashSet;

use xdr_mesh::quote::quoted;
use xdr_proto::pb::{IndicatorType, Observable, RunItem};

use super::{definition::Step, runner::RunLog};
use crate::usergate::{CallError, FAULT_LIST_FROM_URL, ListKind, Session};

/// The values of `targets` that go to a list of `kind`.
fn values_for(kind: ListKind, targets: &[Observable]) -> Vec<String> {
    targets
        .iter()
        .filter(|o| {
            let ip = o.r#type == IndicatorType::Ip as i32;
            match kind {
                ListKind::Network => ip,
                ListKind::Url => {
                    o.r#type == IndicatorType::Url as i32
                        || o.r#type == IndicatorType::Domain as i32
                }
            }
        })
        .map(|o| o.value.clone())
        .collect()
}

fn target(kind: ListKind, list: &str) -> String {
    format!("{} list {}", kind.api_name(), quoted(list))
}

fn item(value: &str, target: &str, done: bool, note: impl Into<String>) -> RunItem {
    RunItem {
        value: value.to_owned(),
        target: target.to_owned(),
        done,
        note: note.into(),
    }
}

/// The lists (and rules) a step uses, by kind; an empty list name leaves the kind out.
fn lists_of(step: &Step) -> Vec<(ListKind, &str, Option<&str>)> {
    let (network, url, rules) = match step {
        Step::Block {
            network_list,
            url_list,
            firewall_rule,
            content_rule,
        } => (network_list, url_list, Some((firewall_rule, content_rule))),
        Step::Unblock {
            network_list,
            url_list,
        } => (network_list, url_list, None),
        Step::LogoutUsers => return Vec::new(),
    };
    let mut lists = Vec::new();
    if !network.is_empty() {
        lists.push((
            ListKind::Network,
            network.as_str(),
            rules.map(|r| r.0.as_str()),
        ));
    }
    if !url.is_empty() {
        lists.push((ListKind::Url, url.as_str(), rules.map(|r| r.1.as_str())));
    }
    lists
}

/// What `step` would send, for a dry run.
pub fn plan(step: &Step, targets: &[Observable], log: &mut RunLog) {
    let verb = if matches!(step, Step::Unblock { .. }) {
        "remove from"
    } else {
        "add to"
    };
    for (kind, list, rule) in lists_of(step) {
        let values = values_for(kind, targets);
        if values.is_empty() {
            continue;
        }
        let target = target(kind, list);
        log.actions
            .push(format!("{verb} {target}: {}", values.join(", ")));
        if let Some(rule) = rule {
            log.actions.push(format!(
                "make sure the drop rule {} uses {target}",
                quoted(rule)
            ));
        }
        for value in values {
            log.items
                .push(item(&value, &target, false, "dry run: not sent"));
        }
    }
    if matches!(step, Step::LogoutUsers) {
        log.actions.push("log out every user logged in".into());
    }
}

/// Carries `step` out; the values it added to lists (for block lifetimes).
pub async fn carry_out(
    step: &Step,
    session: &mut Session<'_>,
    targets: &[Observable],
    log: &mut RunLog,
) -> Vec<(ListKind, String, String)> {
    let mut added = Vec::new();
    match step {
        Step::LogoutUsers => logout_users(session, log).await,
        Step::Block { .. } | Step::Unblock { .. } => {
            for (kind, list, rule) in lists_of(step) {
                let values = values_for(kind, targets);
                if values.is_empty() || log.fatal.is_some() {
                    continue;
                }
                match rule {
                    Some(rule) => {
                        let new = block(session, kind, list, rule, &values, log).await;
                        added.extend(new.into_iter().map(|v| (kind, list.to_owned(), v)));
                    }
                    None => unblock(session, kind, list, &values, log).await,
                }
            }
        }
    }
    added
}

/// Notes `error` on every value of `values` not yet done; ends the run if it ends the session.
fn failed(values: &[String], target: &str, error: &CallError, log: &mut RunLog) {
    let note = if error.is_fault(FAULT_LIST_FROM_URL) {
        format!("{target} is fed from a URL, UserGate takes no items into it (fault 2003)")
    } else {
        error.to_string()
    };
    for value in values {
        log.items.push(item(value, target, false, note.clone()));
    }
    if error.ends_session() {
        log.fatal = Some(error.to_string());
    }
}

/// Blocks `values` through the list `list` and the drop rule `rule`; the values added.
async fn block(
    session: &mut Session<'_>,
    kind: ListKind,
    list: &str,
    rule: &str,
    values: &[String],
    log: &mut RunLog,
) -> Vec<String> {
    let target = target(kind, list);
    let list_id = match session.ensure_list(kind, list).await {
        Ok(id) => id,
        Err(error) => {
            failed(values, &target, &error, log);
            return Vec::new();
        }
    };
    let present: HashSet<String> = match session.list_items(&list_id).await {
        Ok(items) => items.into_iter().map(|(_, v)| v).collect(),
        Err(error) => {
            failed(values, &target, &error, log);
            return Vec::new();
        }
    };
    let (already, missing): (Vec<String>, Vec<String>) =
        values.iter().cloned().partition(|v| present.contains(v));
    for value in &already {
        log.items
            .push(item(value, &target, true, "already present"));
    }
    let mut added = Vec::new();
    if !missing.is_empty() {
        match session.add_items(&list_id, &missing).await {
            Ok(()) => {
                for value in &missing {
                    log.items.push(item(value, &target, true, "added"));
                }
                added = missing;
            }
            // One arrived meanwhile: UserGate refuses the whole batch, so go one by one.
            Err(error) if error.is_fault(crate::usergate::FAULT_ITEM_PRESENT) => {
                for value in &missing {
                    match session.add_item(&list_id, value).await {
                        Ok(true) => {
                            log.items.push(item(value, &target, true, "added"));
                            added.push(value.clone());
                        }
                        Ok(false) => log
                            .items
                            .push(item(value, &target, true, "already present")),
                        Err(error) => failed(std::slice::from_ref(value), &target, &error, log),
                    }
                }
            }
            Err(error) => {
                failed(&missing, &target, &error, log);
                return Vec::new();
            }
        }
    }
    if log.fatal.is_none()
        && let Err(error) = session.ensure_drop_rule(kind, rule, &list_id).await
    {
        log.problems.push(format!(
            "the drop rule {} for {target} is not in force: {error}",
            quoted(rule)
        ));
        if error.ends_session() {
            log.fatal = Some(error.to_string());
        }
    }
    added
}

async fn unblock(
    session: &mut Session<'_>,
    kind: ListKind,
    list: &str,
    values: &[String],
    log: &mut RunLog,
) {
    let target = target(kind, list);
    let list_id = match session.find_list(kind, list).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            for value in values {
                log.items
                    .push(item(value, &target, true, "was not blocked (no such list)"));
            }
            return;
        }
        Err(error) => return failed(values, &target, &error, log),
    };
    let present = match session.list_items(&list_id).await {
        Ok(items) => items,
        Err(error) => return failed(values, &target, &error, log),
    };
    let (blocked, _): (Vec<_>, Vec<_>) = present.into_iter().partition(|(_, v)| values.contains(v));
    for value in values {
        if !blocked.iter().any(|(_, v)| v == value) {
            log.items
                .push(item(value, &target, true, "was not blocked"));
        }
    }
    if blocked.is_empty() {
        return;
    }
    match session.delete_items(&list_id, &blocked).await {
        Ok(()) => {
            for (_, value) in &blocked {
                log.items.push(item(value, &target, true, "removed"));
            }
        }
        Err(error) => {
            let values: Vec<String> = blocked.into_iter().map(|(_, v)| v).collect();
            failed(&values, &target, &error, log);
        }
    }
}

async fn logout_users(session: &mut Session<'_>, log: &mut RunLog) {
    let users = match session.active_users().await {
        Ok(users) => users,
        Err(error) => {
            log.problems
                .push(format!("the logged-in users could not be listed: {error}"));
            if error.ends_session() {
                log.fatal = Some(error.to_string());
            }
            return;
        }
    };
    for user in users {
        let who = format!("{} ({})", user.login, user.ip);
        match session.logout_user(&user).await {
            Ok(()) => log
                .items
                .push(item(&who, "logged-in users", true, "logged out")),
            Err(error) => {
                failed(std::slice::from_ref(&who), "logged-in users", &error, log);
                if log.fatal.is_some() {
                    return;
                }
            }
        }
    }
}
