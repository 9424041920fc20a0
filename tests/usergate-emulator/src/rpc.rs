//! The XML-RPC methods, answered from [`State`] with the faults an appliance gives: 104 for a
//! bad or expired session token, 409 for a name taken, 2001 for an item present, 2003 for a
//! list fed from a URL, 404 for an unknown id, -32601 for an unknown method, -32602 for
//! parameters of the wrong count or type.

use std::{net::IpAddr, time::Instant};

use dxr::{Fault, Value};

use crate::{
    params::{Params, bad, listing, member_text, structure, text},
    state::{ActiveUser, NamedList, Rule, State},
};

const FAULT_SESSION: i32 = 104;
const FAULT_NOT_FOUND: i32 = 404;
const FAULT_EXISTS: i32 = 409;
const FAULT_ITEM_PRESENT: i32 = 2001;
const FAULT_LIST_FROM_URL: i32 = 2003;
const FAULT_LOGIN: i32 = 5;
const FAULT_NO_METHOD: i32 = -32601;

fn not_found(what: &str) -> Fault {
    Fault::new(FAULT_NOT_FOUND, format!("{what} not found"))
}

/// Answers `method` (already recorded in `state.calls` by the caller).
pub fn call(state: &mut State, method: &str, params: &[Value]) -> Result<Value, Fault> {
    if let Some((code, message)) = state.take_fault(method) {
        return Err(Fault::new(code, message));
    }
    if method == "v2.core.login" {
        return login(state, params);
    }
    // Every other call starts with a live session token.
    let token = match params.first() {
        Some(Value::String(token)) => token.clone(),
        _ => {
            return Err(bad(format!(
                "{method}: parameter 0 must be the session token"
            )));
        }
    };
    if let Some(left) = state.expire_after_calls {
        if left == 0 {
            state.expire_sessions();
            state.expire_after_calls = None;
        } else {
            state.expire_after_calls = Some(left - 1);
        }
    }
    let live = state
        .sessions
        .get(&token)
        .is_some_and(|expiry| *expiry > Instant::now());
    if !live {
        state.sessions.remove(&token);
        return Err(Fault::new(
            FAULT_SESSION,
            "session expired or invalid".into(),
        ));
    }
    // A call keeps its session alive, as the appliance's idle timeout does.
    let ttl = state.session_ttl;
    state.sessions.insert(token.clone(), Instant::now() + ttl);
    match method {
        "v2.core.logout" => {
            Params::exactly(method, params, 1)?;
            state.sessions.remove(&token);
            Ok(Value::Boolean(true))
        }
        "v2.core.session.ping" => {
            Params::exactly(method, params, 1)?;
            Ok(Value::Boolean(true))
        }
        "v2.nlists.list" => lists(state, Params::exactly(method, params, 5)?),
        "v2.nlists.add" => add_list(state, Params::exactly(method, params, 2)?),
        "v2.nlists.list.list" => list_items(state, Params::exactly(method, params, 6)?),
        "v2.nlists.list.add.items" => add_items(state, Params::exactly(method, params, 3)?),
        "v2.nlists.list.delete.items" => delete_items(state, Params::exactly(method, params, 3)?),
        "v1.firewall.rules.list" => {
            Params::exactly(method, params, 4)?.structure(3)?;
            Ok(rule_listing(&state.firewall_rules))
        }
        "v1.content.rules.list" => {
            Params::exactly(method, params, 4)?.structure(3)?;
            Ok(rule_listing(&state.content_rules))
        }
        "v1.firewall.rule.add" => add_rule(state, Params::exactly(method, params, 2)?, true),
        "v1.content.rule.add" => add_rule(state, Params::exactly(method, params, 2)?, false),
        "v1.firewall.rule.update" => update_rule(state, Params::exactly(method, params, 3)?, true),
        "v1.content.rule.update" => update_rule(state, Params::exactly(method, params, 3)?, false),
        "v1.auth.active.users.list" => {
            Params::exactly(method, params, 1)?;
            Ok(Value::Array(
                state
                    .users
                    .iter()
                    .map(|u| {
                        structure([
                            ("id", Value::Integer(u.id)),
                            ("login", text(&u.login)),
                            ("ip", text(&u.ip)),
                        ])
                    })
                    .collect(),
            ))
        }
        "v1.auth.user.logout" => {
            let id = Params::exactly(method, params, 2)?.int(1)?;
            let before = state.users.len();
            state.users.retain(|u| u.id != id);
            if state.users.len() == before {
                return Err(not_found("user"));
            }
            Ok(Value::Boolean(true))
        }
        _ => Err(Fault::new(
            FAULT_NO_METHOD,
            format!("method {method} not found"),
        )),
    }
}

fn login(state: &mut State, params: &[Value]) -> Result<Value, Fault> {
    let params = Params::exactly("v2.core.login", params, 3)?;
    let (login, password, options) = (params.string(0)?, params.string(1)?, params.structure(2)?);
    let origin = member_text(options, "origin")?;
    if login != state.login || password != state.password {
        return Err(Fault::new(FAULT_LOGIN, "invalid login or password".into()));
    }
    let token = format!("{:032x}", fastrand::u128(..));
    let ttl = state.session_ttl;
    state.sessions.insert(token.clone(), Instant::now() + ttl);
    state.calls.push(format!("origin={origin}"));
    Ok(structure([
        ("auth_token", text(&token)),
        ("node", text("emulator")),
    ]))
}

fn list_kind(kind: &str) -> Result<(), Fault> {
    match kind {
        "network" | "url" => Ok(()),
        other => Err(bad(format!("unknown list type {other}"))),
    }
}

fn lists(state: &State, params: Params<'_>) -> Result<Value, Fault> {
    let kind = params.string(1)?;
    list_kind(kind)?;
    let (start, limit) = (params.int(2)?, params.int(3)?);
    params.structure(4)?;
    let items = state
        .lists
        .iter()
        .filter(|l| l.kind == kind)
        .skip(start.max(0) as usize)
        .take(limit.max(0) as usize)
        .map(|l| {
            structure([
                ("id", Value::Integer(l.id)),
                ("name", text(&l.name)),
                ("type", text(&l.kind)),
                ("url", text(&l.url)),
                ("editable", Value::Boolean(l.url.is_empty())),
            ])
        })
        .collect();
    Ok(listing(items))
}

fn add_list(state: &mut State, params: Params<'_>) -> Result<Value, Fault> {
    let fields = params.structure(1)?;
    let (name, kind) = (member_text(fields, "name")?, member_text(fields, "type")?);
    list_kind(kind)?;
    if name.is_empty() {
        return Err(bad("name is empty"));
    }
    if state.lists.iter().any(|l| l.kind == kind && l.name == name) {
        return Err(Fault::new(FAULT_EXISTS, format!("list {name} exists")));
    }
    let id = state.next_id();
    let url = fields
        .get("url")
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    state.lists.push(NamedList {
        id,
        name: name.to_owned(),
        kind: kind.to_owned(),
        url,
        items: Vec::new(),
    });
    Ok(Value::Integer(id))
}

fn list_mut(state: &mut State, id: i32) -> Result<&mut NamedList, Fault> {
    state
        .lists
        .iter_mut()
        .find(|l| l.id == id)
        .ok_or_else(|| not_found("list"))
}

fn list_items(state: &mut State, params: Params<'_>) -> Result<Value, Fault> {
    let id = params.int(1)?;
    let (start, limit) = (params.int(2)?, params.int(3)?);
    params.string(4)?;
    params.array(5)?;
    let list = list_mut(state, id)?;
    let items = list
        .items
        .iter()
        .skip(start.max(0) as usize)
        .take(limit.max(0) as usize)
        .map(|(id, value)| structure([("id", Value::Integer(*id)), ("value", text(value))]))
        .collect();
    Ok(listing(items))
}

fn add_items(state: &mut State, params: Params<'_>) -> Result<Value, Fault> {
    let id = params.int(1)?;
    let mut values = Vec::new();
    for item in params.array(2)? {
        let Value::Struct(fields) = item else {
            return Err(bad("items must be structs"));
        };
        values.push(member_text(fields, "value")?.to_owned());
    }
    let mut ids = Vec::new();
    for _ in &values {
        ids.push(state.next_id());
    }
    let list = list_mut(state, id)?;
    if !list.url.is_empty() {
        return Err(Fault::new(
            FAULT_LIST_FROM_URL,
            "the list is updated from a URL".into(),
        ));
    }
    for value in &values {
        let valid = match list.kind.as_str() {
            "network" => value.parse::<IpAddr>().is_ok() || value.parse::<ipnet::IpNet>().is_ok(),
            _ => !value.is_empty() && !value.contains(char::is_whitespace),
        };
        if !valid {
            return Err(bad(format!("{value} is not valid in a {} list", list.kind)));
        }
        // One present item refuses the whole batch.
        if list.items.iter().any(|(_, v)| v == value) {
            return Err(Fault::new(
                FAULT_ITEM_PRESENT,
                format!("{value} already exists"),
            ));
        }
    }
    list.items.extend(ids.into_iter().zip(values));
    Ok(Value::Integer(list.items.len() as i32))
}

fn delete_items(state: &mut State, params: Params<'_>) -> Result<Value, Fault> {
    let id = params.int(1)?;
    let mut doomed = Vec::new();
    for item in params.array(2)? {
        match item {
            Value::Integer(id) => doomed.push(*id),
            _ => return Err(bad("item ids must be integers")),
        }
    }
    let list = list_mut(state, id)?;
    if let Some(missing) = doomed
        .iter()
        .find(|d| !list.items.iter().any(|(id, _)| id == *d))
    {
        return Err(not_found(&format!("item {missing}")));
    }
    list.items.retain(|(id, _)| !doomed.contains(id));
    Ok(Value::Integer(doomed.len() as i32))
}

fn rule_listing(rules: &[Rule]) -> Value {
    listing(
        rules
            .iter()
            .map(|rule| {
                let mut fields = rule.fields.clone();
                fields.insert("id".into(), Value::Integer(rule.id));
                Value::Struct(fields)
            })
            .collect(),
    )
}

/// A rule's fields checked: a name, a known action, and destinations that are lists of the
/// right type.
fn checked_rule(
    state: &State,
    fields: &std::collections::BTreeMap<String, Value>,
    firewall: bool,
) -> Result<(), Fault> {
    if member_text(fields, "name")?.is_empty() {
        return Err(bad("name is empty"));
    }
    if !matches!(
        member_text(fields, "action")?,
        "drop" | "accept" | "deny" | "reject"
    ) {
        return Err(bad("unknown action"));
    }
    let list_exists = |id: &Value, kind: &str| matches!(id, Value::Integer(id) if state.lists.iter().any(|l| l.id == *id && l.kind == kind));
    if firewall {
        if let Some(dst) = fields.get("dst_ips") {
            let Value::Array(entries) = dst else {
                return Err(bad("dst_ips must be an array"));
            };
            for entry in entries {
                let ok = matches!(entry, Value::Array(pair) if pair.len() == 2
                    && pair[0] == text("list_id") && list_exists(&pair[1], "network"));
                if !ok {
                    return Err(bad(
                        "dst_ips entries are [\"list_id\", id] of network lists",
                    ));
                }
            }
        }
    } else if let Some(urls) = fields.get("urls") {
        let Value::Array(ids) = urls else {
            return Err(bad("urls must be an array"));
        };
        if !ids.iter().all(|id| list_exists(id, "url")) {
            return Err(bad("urls are ids of url lists"));
        }
    }
    Ok(())
}

fn add_rule(state: &mut State, params: Params<'_>, firewall: bool) -> Result<Value, Fault> {
    let fields = params.structure(1)?;
    checked_rule(state, fields, firewall)?;
    let name = member_text(fields, "name")?;
    let rules = if firewall {
        &state.firewall_rules
    } else {
        &state.content_rules
    };
    if rules
        .iter()
        .any(|r| r.fields.get("name") == Some(&text(name)))
    {
        return Err(Fault::new(FAULT_EXISTS, format!("rule {name} exists")));
    }
    let id = state.next_id();
    let rule = Rule {
        id,
        fields: fields.clone(),
    };
    if firewall {
        state.firewall_rules.push(rule);
    } else {
        state.content_rules.push(rule);
    }
    Ok(Value::Integer(id))
}

fn update_rule(state: &mut State, params: Params<'_>, firewall: bool) -> Result<Value, Fault> {
    let id = params.int(1)?;
    let fields = params.structure(2)?;
    let rules = if firewall {
        &state.firewall_rules
    } else {
        &state.content_rules
    };
    let Some(index) = rules.iter().position(|r| r.id == id) else {
        return Err(not_found("rule"));
    };
    let mut merged = rules[index].fields.clone();
    merged.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    checked_rule(state, &merged, firewall)?;
    let rules = if firewall {
        &mut state.firewall_rules
    } else {
        &mut state.content_rules
    };
    rules[index].fields = merged;
    Ok(Value::Boolean(true))
}

/// Logs a user in (a test's doing, as a person signing in to the captive portal would).
pub fn add_user(state: &mut State, login: String, ip: String) -> i32 {
    let id = state.next_id();
    state.users.push(ActiveUser { id, login, ip });
    id
}
