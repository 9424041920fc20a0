//! The XML-RPC method names the client calls, in one table that configuration can override
//! (`--usergate-method logout_user=v1.auth.user.logout`): appliances differ between versions,
//! and no public source names the calls that log users out.
//!
//! The defaults follow UserGate UTM API v7 as `../shared/design.md` records it. The two user
//! calls are our choice, named after the API's `v1.auth.*` family: `active_users`
//! (`v1.auth.active.users.list(token)` → array of structs with `id`, `login`, `ip`) and
//! `logout_user` (`v1.auth.user.logout(token, id)`). Items are removed with
//! `v2.nlists.list.delete.items(token, list_id, [item ids])`, the mirror of the bulk add.

use xdr_mesh::quote::quoted;

/// Each call the client makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Login,
    Logout,
    Ping,
    Lists,
    AddList,
    ListItems,
    AddItems,
    DeleteItems,
    FirewallRules,
    AddFirewallRule,
    UpdateFirewallRule,
    ContentRules,
    AddContentRule,
    UpdateContentRule,
    ActiveUsers,
    LogoutUser,
}

impl Call {
    const ALL: [Call; 16] = [
        Call::Login,
        Call::Logout,
        Call::Ping,
        Call::Lists,
        Call::AddList,
        Call::ListItems,
        Call::AddItems,
        Call::DeleteItems,
        Call::FirewallRules,
        Call::AddFirewallRule,
        Call::UpdateFirewallRule,
        Call::ContentRules,
        Call::AddContentRule,
        Call::UpdateContentRule,
        Call::ActiveUsers,
        Call::LogoutUser,
    ];

    /// Its name in `--usergate-method KEY=METHOD` (and in metrics).
    pub fn key(self) -> &'static str {
        self.key_and_default().0
    }

    /// Its name in `--usergate-method KEY=METHOD`, and its default method.
    fn key_and_default(self) -> (&'static str, &'static str) {
        match self {
            Call::Login => ("login", "v2.core.login"),
            Call::Logout => ("logout", "v2.core.logout"),
            Call::Ping => ("ping", "v2.core.session.ping"),
            Call::Lists => ("lists", "v2.nlists.list"),
            Call::AddList => ("add_list", "v2.nlists.add"),
            Call::ListItems => ("list_items", "v2.nlists.list.list"),
            Call::AddItems => ("add_items", "v2.nlists.list.add.items"),
            Call::DeleteItems => ("delete_items", "v2.nlists.list.delete.items"),
            Call::FirewallRules => ("firewall_rules", "v1.firewall.rules.list"),
            Call::AddFirewallRule => ("add_firewall_rule", "v1.firewall.rule.add"),
            Call::UpdateFirewallRule => ("update_firewall_rule", "v1.firewall.rule.update"),
            Call::ContentRules => ("content_rules", "v1.content.rules.list"),
            Call::AddContentRule => ("add_content_rule", "v1.content.rule.add"),
            Call::UpdateContentRule => ("update_content_rule", "v1.content.rule.update"),
            Call::ActiveUsers => ("active_users", "v1.auth.active.users.list"),
            Call::LogoutUser => ("logout_user", "v1.auth.user.logout"),
        }
    }
}

/// The method name of every call.
#[derive(Clone, Debug)]
pub struct MethodTable {
    names: Vec<String>,
}

impl Default for MethodTable {
    fn default() -> Self {
        MethodTable {
            names: Call::ALL
                .iter()
                .map(|call| call.key_and_default().1.to_owned())
                .collect(),
        }
    }
}

impl MethodTable {
    /// The defaults with `overrides` (`KEY=METHOD` each) applied.
    pub fn with_overrides(overrides: &[String]) -> Result<Self, String> {
        let mut table = MethodTable::default();
        for entry in overrides {
            let (key, name) = entry
                .split_once('=')
                .ok_or_else(|| format!("{}: not KEY=METHOD", quoted(entry)))?;
            let Some(call) = Call::ALL.iter().find(|c| c.key_and_default().0 == key) else {
                let keys: Vec<_> = Call::ALL.iter().map(|c| c.key_and_default().0).collect();
                return Err(format!(
                    "{} is not a call of the client (one of {})",
                    quoted(key),
                    keys.join(", ")
                ));
            };
            let valid = !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
            if !valid {
                return Err(format!(
                    "{}: a method name is letters, digits, dots and underscores",
                    quoted(name)
                ));
            }
            table.names[*call as usize] = name.to_owned();
        }
        Ok(table)
    }

    pub fn get(&self, call: Call) -> &str {
        &self.names[call as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_known_calls_only() {
        let table = MethodTable::with_overrides(&["logout_user=v2.auth.kick".into()]).unwrap();
        assert_eq!(table.get(Call::LogoutUser), "v2.auth.kick");
        assert_eq!(table.get(Call::Login), "v2.core.login");
        let unknown = MethodTable::with_overrides(&["reboot=v1.core.reboot".into()]).unwrap_err();
        assert!(unknown.contains("`reboot` is not a call"), "{unknown}");
        assert!(MethodTable::with_overrides(&["login=a b".into()]).is_err());
        assert!(MethodTable::with_overrides(&["login".into()]).is_err());
    }
}
