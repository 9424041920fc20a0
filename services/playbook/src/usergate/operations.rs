//! The UserGate operations playbooks are made of, over a [`Session`]: named lists and their
//! items, the drop rules that use them, and the users logged in. Faults that mean "already
//! there" (409, 2001) are turned into the thing that is there, so running twice is harmless.

use std::collections::BTreeMap;

use dxr::Value;
use xdr_mesh::quote::quoted;

use super::{
    error::{CallError, FAULT_EXISTS, FAULT_ITEM_PRESENT},
    methods::Call,
    session::Session,
};

/// The most items read back from one list (in pages of `PAGE`).
const MAX_LIST_ITEMS: usize = 100_000;
const PAGE: i32 = 1000;

/// What kind of named list: `network` holds IP addresses and networks, `url` URLs and
/// domain names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Network,
    Url,
}

impl ListKind {
    pub fn api_name(self) -> &'static str {
        match self {
            ListKind::Network => "network",
            ListKind::Url => "url",
        }
    }
}

/// A list's or an item's id as UserGate gave it (a number or a text): passed back as is.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiId(pub Value);

impl std::fmt::Display for ApiId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Value::Integer(n) => write!(f, "{n}"),
            Value::String(s) => f.write_str(s),
            _ => f.write_str("?"),
        }
    }
}

/// A user logged in to UserGate.
#[derive(Clone, Debug)]
pub struct ActiveUser {
    pub id: ApiId,
    pub login: String,
    pub ip: String,
}

fn struct_of(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Struct(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Struct(fields) => fields.get(name),
        _ => None,
    }
}

fn field_text(value: &Value, name: &str) -> Option<String> {
    match field(value, name)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn id_of(value: &Value) -> Result<ApiId, CallError> {
    match field(value, "id") {
        Some(id @ (Value::Integer(_) | Value::String(_))) => Ok(ApiId(id.clone())),
        _ => Err(CallError::Protocol("an item without an id".into())),
    }
}

/// The `items` array of a listing answer (`{items: [...], count: n}`), or the answer itself
/// when it is an array.
fn items_of(answer: Value) -> Result<Vec<Value>, CallError> {
    match answer {
        Value::Array(items) => Ok(items),
        Value::Struct(mut fields) => match fields.remove("items") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(CallError::Protocol("a listing without items".into())),
        },
        _ => Err(CallError::Protocol("a listing that is not a struct".into())),
    }
}

impl Session<'_> {
    /// The list of `kind` named `name`, created when absent.
    pub async fn ensure_list(&mut self, kind: ListKind, name: &str) -> Result<ApiId, CallError> {
        if let Some(id) = self.find_list(kind, name).await? {
            return Ok(id);
        }
        let list = struct_of([
            ("name", text(name)),
            ("type", text(kind.api_name())),
            ("description", text("Made by xdr-mesh response playbooks")),
        ]);
        match self
            .call(
                Call::AddList,
                format!("{} list {}", kind.api_name(), quoted(name)),
                vec![list],
            )
            .await
        {
            Ok(Value::Integer(id)) => Ok(ApiId(Value::Integer(id))),
            Ok(Value::String(id)) => Ok(ApiId(Value::String(id))),
            Ok(_) => Err(CallError::Protocol("a new list without an id".into())),
            // Made meanwhile by someone else: take it.
            Err(e) if e.is_fault(FAULT_EXISTS) => {
                self.find_list(kind, name).await?.ok_or_else(|| {
                    CallError::Protocol(format!("list {} exists but is not listed", quoted(name)))
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The id of the list of `kind` named `name`, if there is one.
    pub async fn find_list(
        &mut self,
        kind: ListKind,
        name: &str,
    ) -> Result<Option<ApiId>, CallError> {
        let answer = self
            .call(
                Call::Lists,
                format!("type {}", kind.api_name()),
                vec![
                    text(kind.api_name()),
                    Value::Integer(0),
                    Value::Integer(PAGE),
                    struct_of([]),
                ],
            )
            .await?;
        for list in items_of(answer)? {
            if field_text(&list, "name").as_deref() == Some(name) {
                return id_of(&list).map(Some);
            }
        }
        Ok(None)
    }

    /// Every item of a list: its id and value.
    pub async fn list_items(&mut self, list: &ApiId) -> Result<Vec<(ApiId, String)>, CallError> {
        let mut items = Vec::new();
        loop {
            let answer = self
                .call(
                    Call::ListItems,
                    format!("list {list}, from {}", items.len()),
                    vec![
                        list.0.clone(),
                        Value::Integer(items.len() as i32),
                        Value::Integer(PAGE),
                        text(""),
                        Value::Array(Vec::new()),
                    ],
                )
                .await?;
            let page = items_of(answer)?;
            let full = page.len() as i32 == PAGE;
            for item in page {
                let value = field_text(&item, "value")
                    .ok_or_else(|| CallError::Protocol("a list item without a value".into()))?;
                items.push((id_of(&item)?, value));
            }
            if !full || items.len() >= MAX_LIST_ITEMS {
                return Ok(items);
            }
        }
    }

    /// Adds `values` to a list in one call; fault 2001 (one is present already) is the
    /// caller's to handle item by item.
    pub async fn add_items(&mut self, list: &ApiId, values: &[String]) -> Result<(), CallError> {
        let items = values
            .iter()
            .map(|v| struct_of([("value", text(v))]))
            .collect();
        self.call(
            Call::AddItems,
            format!("list {list}, [{}]", values.join(", ")),
            vec![list.0.clone(), Value::Array(items)],
        )
        .await
        .map(drop)
    }

    /// Adds one value; `Ok(false)` when it was there already.
    pub async fn add_item(&mut self, list: &ApiId, value: &str) -> Result<bool, CallError> {
        match self.add_items(list, &[value.to_owned()]).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_fault(FAULT_ITEM_PRESENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_items(
        &mut self,
        list: &ApiId,
        items: &[(ApiId, String)],
    ) -> Result<(), CallError> {
        let ids = items.iter().map(|(id, _)| id.0.clone()).collect();
        let values: Vec<&str> = items.iter().map(|(_, v)| v.as_str()).collect();
        self.call(
            Call::DeleteItems,
            format!("list {list}, [{}]", values.join(", ")),
            vec![list.0.clone(), Value::Array(ids)],
        )
        .await
        .map(drop)
    }

    /// The enabled drop rule named `name` whose destination is `list`: made when absent,
    /// enabled and pointed at the list when it exists otherwise.
    pub async fn ensure_drop_rule(
        &mut self,
        kind: ListKind,
        name: &str,
        list: &ApiId,
    ) -> Result<(), CallError> {
        let (listing, add, update) = match kind {
            ListKind::Network => (
                Call::FirewallRules,
                Call::AddFirewallRule,
                Call::UpdateFirewallRule,
            ),
            ListKind::Url => (
                Call::ContentRules,
                Call::AddContentRule,
                Call::UpdateContentRule,
            ),
        };
        let target = match kind {
            ListKind::Network => (
                "dst_ips",
                Value::Array(vec![Value::Array(vec![text("list_id"), list.0.clone()])]),
            ),
            ListKind::Url => ("urls", Value::Array(vec![list.0.clone()])),
        };
        let answer = self
            .call(
                listing,
                String::new(),
                vec![Value::Integer(0), Value::Integer(PAGE), struct_of([])],
            )
            .await?;
        let existing = items_of(answer)?
            .into_iter()
            .find(|rule| field_text(rule, "name").as_deref() == Some(name));
        let wanted = || {
            struct_of([
                ("name", text(name)),
                ("action", text("drop")),
                ("enabled", Value::Boolean(true)),
                ("description", text("Made by xdr-mesh response playbooks")),
                (target.0, target.1.clone()),
            ])
        };
        match existing {
            None => {
                let made = self
                    .call(
                        add,
                        format!("drop rule {} → list {list}", quoted(name)),
                        vec![wanted()],
                    )
                    .await;
                match made {
                    Err(e) if e.is_fault(FAULT_EXISTS) => Ok(()),
                    other => other.map(drop),
                }
            }
            Some(rule) => {
                let in_force = field(&rule, "enabled") == Some(&Value::Boolean(true))
                    && field_text(&rule, "action").as_deref() == Some("drop")
                    && field(&rule, target.0) == Some(&target.1);
                if in_force {
                    return Ok(());
                }
                let id = id_of(&rule)?;
                self.call(
                    update,
                    format!("rule {id}: enabled, drop → list {list}"),
                    vec![id.0.clone(), wanted()],
                )
                .await
                .map(drop)
            }
        }
    }

    /// Whether the session is alive (`v2.core.session.ping`).
    pub async fn ping(&mut self) -> Result<(), CallError> {
        self.call(Call::Ping, String::new(), Vec::new())
            .await
            .map(drop)
    }

    pub async fn active_users(&mut self) -> Result<Vec<ActiveUser>, CallError> {
        let answer = self
            .call(Call::ActiveUsers, String::new(), Vec::new())
            .await?;
        items_of(answer)?
            .iter()
            .map(|user| {
                Ok(ActiveUser {
                    id: id_of(user)?,
                    login: field_text(user, "login").unwrap_or_default(),
                    ip: field_text(user, "ip").unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn logout_user(&mut self, user: &ActiveUser) -> Result<(), CallError> {
        self.call(
            Call::LogoutUser,
            format!("user {} ({})", quoted(&user.login), user.id),
            vec![user.id.0.clone()],
        )
        .await
        .map(drop)
    }
}
