//! What the emulated appliance holds: administrator sessions that expire, named lists and
//! their items, firewall and content rules, the users logged in, faults armed by a test, and
//! every method called. Its JSON snapshot is what tests assert on.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use dxr::Value;
use serde_json::{Value as Json, json};

pub struct NamedList {
    pub id: i32,
    pub name: String,
    pub kind: String,
    /// Non-empty: the list is fed from this URL and takes no items by hand (fault 2003).
    pub url: String,
    pub items: Vec<(i32, String)>,
}

pub struct Rule {
    pub id: i32,
    pub fields: BTreeMap<String, Value>,
}

pub struct ActiveUser {
    pub id: i32,
    pub login: String,
    pub ip: String,
}

/// A fault a test armed: the next `times` calls of `method` answer it.
pub struct ArmedFault {
    pub method: String,
    pub code: i32,
    pub message: String,
    pub times: u32,
}

pub struct State {
    pub login: String,
    pub password: String,
    pub session_ttl: Duration,
    pub sessions: HashMap<String, Instant>,
    pub lists: Vec<NamedList>,
    pub firewall_rules: Vec<Rule>,
    pub content_rules: Vec<Rule>,
    pub users: Vec<ActiveUser>,
    pub faults: Vec<ArmedFault>,
    /// Set by a test: calls of these methods are answered only after this long, as a slow
    /// appliance would.
    pub delays: HashMap<String, Duration>,
    /// Set by a test: after this many more authenticated calls every session expires, as
    /// if the appliance's timeout struck in the middle of a client's work.
    pub expire_after_calls: Option<u32>,
    /// Method names in the order called, with the login's origin for logins.
    pub calls: Vec<String>,
    /// The `traceparent` header of each call that carried one, in order.
    pub traceparents: Vec<String>,
    next_id: i32,
}

impl State {
    pub fn new(login: String, password: String, session_ttl: Duration) -> Self {
        State {
            login,
            password,
            session_ttl,
            sessions: HashMap::new(),
            lists: Vec::new(),
            firewall_rules: Vec::new(),
            content_rules: Vec::new(),
            users: Vec::new(),
            faults: Vec::new(),
            expire_after_calls: None,
            delays: HashMap::new(),
            calls: Vec::new(),
            traceparents: Vec::new(),
            next_id: 1,
        }
    }

    pub fn next_id(&mut self) -> i32 {
        self.next_id += 1;
        self.next_id
    }

    /// The armed fault for `method`, used up once.
    pub fn take_fault(&mut self, method: &str) -> Option<(i32, String)> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.method == method && f.times > 0)?;
        fault.times -= 1;
        Some((fault.code, fault.message.clone()))
    }

    pub fn expire_sessions(&mut self) -> usize {
        let now = Instant::now();
        for expiry in self.sessions.values_mut() {
            *expiry = now;
        }
        self.sessions.len()
    }

    pub fn snapshot(&self) -> Json {
        let now = Instant::now();
        let rules = |rules: &[Rule]| -> Vec<Json> {
            rules
                .iter()
                .map(|r| {
                    let mut fields: serde_json::Map<String, Json> = r
                        .fields
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json(v)))
                        .collect();
                    fields.insert("id".into(), json!(r.id));
                    Json::Object(fields)
                })
                .collect()
        };
        json!({
            "sessions": self.sessions.values().filter(|expiry| **expiry > now).count(),
            "lists": self.lists.iter().map(|l| json!({
                "id": l.id,
                "name": l.name,
                "type": l.kind,
                "url": l.url,
                "items": l.items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "firewall_rules": rules(&self.firewall_rules),
            "content_rules": rules(&self.content_rules),
            "users": self.users.iter().map(|u| json!({"id": u.id, "login": u.login, "ip": u.ip}))
                .collect::<Vec<_>>(),
            "calls": self.calls,
            "traceparents": self.traceparents,
        })
    }
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Integer(n) => json!(n),
        Value::Boolean(b) => json!(b),
        Value::String(s) => json!(s),
        Value::Double(d) => json!(d),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        _ => Json::Null,
    }
}
