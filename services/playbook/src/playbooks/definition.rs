//! Playbooks are data: an id, a title, the secret they sign in with and a list of steps over
//! the alert's observables. The seed's two (and the unblock that undoes the first) are built
//! in; more come from a TOML file (`--playbooks FILE`), so a third playbook is configuration:
//!
//! ```toml
//! [[playbook]]
//! id = "usergate.block_ips"
//! title = "Block IP addresses via UserGate"
//! [[playbook.steps]]
//! kind = "block"
//! network_list = "SOC blocked IPs"
//! url_list = ""            # empty: this playbook blocks no URLs or domains
//! ```

use std::path::Path;

use serde::Deserialize;
use xdr_mesh::quote::quoted;
use xdr_proto::pb::PlaybookInfo;

/// The names the built-in steps use on the appliance.
pub const NETWORK_LIST: &str = "XDR blocked hosts";
pub const URL_LIST: &str = "XDR blocked URLs";
pub const FIREWALL_RULE: &str = "XDR drop blocked hosts";
pub const CONTENT_RULE: &str = "XDR drop blocked URLs";
/// The secret a playbook signs in with unless it names another.
pub const DEFAULT_SECRET: &str = "usergate";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// IP addresses into the network list, URLs and domains into the URL list, and the drop
    /// rules over both lists in force. An empty list name leaves that kind out.
    Block {
        #[serde(default = "network_list")]
        network_list: String,
        #[serde(default = "url_list")]
        url_list: String,
        #[serde(default = "firewall_rule")]
        firewall_rule: String,
        #[serde(default = "content_rule")]
        content_rule: String,
    },
    /// The observables out of the lists again.
    Unblock {
        #[serde(default = "network_list")]
        network_list: String,
        #[serde(default = "url_list")]
        url_list: String,
    },
    /// Every user logged in to the appliance logged out.
    LogoutUsers,
}

fn network_list() -> String {
    NETWORK_LIST.into()
}
fn url_list() -> String {
    URL_LIST.into()
}
fn firewall_rule() -> String {
    FIREWALL_RULE.into()
}
fn content_rule() -> String {
    CONTENT_RULE.into()
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Block { .. } => "block",
            Step::Unblock { .. } => "unblock",
            Step::LogoutUsers => "logout_users",
        }
    }

    /// Whether the step acts on observables (and so needs some to act on).
    pub fn takes_observables(&self) -> bool {
        !matches!(self, Step::LogoutUsers)
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlaybookDefinition {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_secret")]
    pub secret: String,
    pub steps: Vec<Step>,
}

fn default_secret() -> String {
    DEFAULT_SECRET.into()
}

impl PlaybookDefinition {
    pub fn info(&self) -> PlaybookInfo {
        PlaybookInfo {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            steps: self.steps.iter().map(|s| s.name().to_owned()).collect(),
            secret: self.secret.clone(),
        }
    }
}

/// The seed's playbooks, and the unblock that undoes the first.
pub fn built_in() -> Vec<PlaybookDefinition> {
    let block = Step::Block {
        network_list: network_list(),
        url_list: url_list(),
        firewall_rule: firewall_rule(),
        content_rule: content_rule(),
    };
    vec![
        PlaybookDefinition {
            id: "usergate.block_host".into(),
            title: "Block host via UserGate".into(),
            description: "UserGate blocks the alert's IP addresses, URLs and domain names \
                          that threat intelligence matched (and those named at launch)."
                .into(),
            secret: default_secret(),
            steps: vec![block],
        },
        PlaybookDefinition {
            id: "usergate.unblock_host".into(),
            title: "Unblock host via UserGate".into(),
            description: "Removes the alert's observables from the UserGate block lists.".into(),
            secret: default_secret(),
            steps: vec![Step::Unblock {
                network_list: network_list(),
                url_list: url_list(),
            }],
        },
        PlaybookDefinition {
            id: "usergate.logout_users".into(),
            title: "Log out the users".into(),
            description: "Every user logged in to UserGate is logged out.".into(),
            secret: default_secret(),
            steps: vec![Step::LogoutUsers],
        },
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookFile {
    #[serde(default)]
    playbook: Vec<PlaybookDefinition>,
}

/// The built-in playbooks and those in `file`, checked: ids unique, names within bounds.
pub fn load(file: Option<&Path>) -> Result<Vec<PlaybookDefinition>, String> {
    let mut playbooks = built_in();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed: PlaybookFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        playbooks.extend(parsed.playbook);
    }
    for (i, playbook) in playbooks.iter().enumerate() {
        let valid_id = !playbook.id.is_empty()
            && playbook.id.len() <= 128
            && playbook
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_id {
            return Err(format!(
                "playbook {}: an id is 1 to 128 letters, digits, dots, dashes and underscores",
                quoted(&playbook.id)
            ));
        }
        if playbooks[..i].iter().any(|p| p.id == playbook.id) {
            return Err(format!("playbook {}: defined twice", quoted(&playbook.id)));
        }
        if playbook.title.is_empty() || playbook.steps.is_empty() {
            return Err(format!(
                "playbook {}: needs a title and at least one step",
                quoted(&playbook.id)
            ));
        }
        let names_ok = playbook.steps.iter().all(|step| match step {
            Step::Block {
                network_list,
                url_list,
                firewall_rule,
                content_rule,
            } => [network_list, url_list, firewall_rule, content_rule]
                .iter()
                .all(|n| n.chars().count() <= 255),
            Step::Unblock {
                network_list,
                url_list,
            } => [network_list, url_list]
                .iter()
                .all(|n| n.chars().count() <= 255),
            Step::LogoutUsers => true,
        });
        if !names_ok || playbook.secret.is_empty() || playbook.secret.chars().count() > 128 {
            return Err(format!(
                "playbook {}: list and rule names are at most 255 characters, the secret 1 to 128",
                quoted(&playbook.id)
            ));
        }
    }
    Ok(playbooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_playbook_is_a_file_and_ids_stay_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("playbooks.toml");
        std::fs::write(
            &path,
            r#"
[[playbook]]
id = "usergate.block_ips"
title = "Block IP addresses via UserGate"
secret = "edge-firewall"
[[playbook.steps]]
kind = "block"
network_list = "SOC blocked IPs"
url_list = ""
"#,
        )
        .unwrap();
        let playbooks = load(Some(&path)).unwrap();
        let third = playbooks
            .iter()
            .find(|p| p.id == "usergate.block_ips")
            .unwrap();
        assert_eq!(third.secret, "edge-firewall");
        assert_eq!(
            third.steps,
            [Step::Block {
                network_list: "SOC blocked IPs".into(),
                url_list: String::new(),
                firewall_rule: FIREWALL_RULE.into(),
                content_rule: CONTENT_RULE.into(),
            }]
        );
        std::fs::write(
            &path,
            "[[playbook]]\nid = \"usergate.block_host\"\ntitle = \"x\"\n[[playbook.steps]]\nkind = \"logout_users\"\n",
        )
        .unwrap();
        assert!(load(Some(&path)).unwrap_err().contains("defined twice"));
        std::fs::write(
            &path,
            "[[playbook]]\nid = \"x\"\ntitle = \"x\"\n[[playbook.steps]]\nkind = \"reboot\"\n",
        )
        .unwrap();
        assert!(load(Some(&path)).is_err());
    }
}
