//! The caller as every handler sees it: the mesh identity of the peer certificate and, when
//! the gateway calls on someone's behalf, that person's user, tenant and role from the
//! `x-xdr-user`, `x-xdr-tenant` and `x-xdr-role` metadata. The metadata is believed only from
//! the gateway's identity; from any other caller it is refused, so a service cannot claim a
//! person. The role table of `../shared/design.md` is [`Role::allows`]; handlers ask one
//! question, [`Caller::may`]: "may this caller do X in tenant T?".

use std::fmt;

use tonic::Status;

use crate::{directory, identity::Identity, quote::quoted};

pub const USER_HEADER: &str = "x-xdr-user";
pub const TENANT_HEADER: &str = "x-xdr-tenant";
pub const ROLE_HEADER: &str = "x-xdr-role";

/// KUMA's default tenant: events, alerts and collectors live here unless configured otherwise.
pub const MAIN_TENANT: &str = "Main";
/// Resources every tenant may use and only Main administrators may change.
pub const SHARED_TENANT: &str = "Shared";
/// The longest user or tenant name taken from metadata.
const MAX_NAME_CHARS: usize = 128;

/// The roles of people, as the gateway names them in `x-xdr-role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    MainAdministrator,
    TenantAdministrator,
    Tier2Analyst,
    Tier1Analyst,
    JuniorAnalyst,
    Observer,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::MainAdministrator,
        Role::TenantAdministrator,
        Role::Tier2Analyst,
        Role::Tier1Analyst,
        Role::JuniorAnalyst,
        Role::Observer,
    ];

    /// Its name in metadata and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::MainAdministrator => "main-administrator",
            Role::TenantAdministrator => "tenant-administrator",
            Role::Tier2Analyst => "tier2-analyst",
            Role::Tier1Analyst => "tier1-analyst",
            Role::JuniorAnalyst => "junior-analyst",
            Role::Observer => "observer",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }

    /// The design's role table: whether this role may do `action` at all (in its own tenant;
    /// [`Caller::may`] adds the tenant rules).
    pub fn allows(self, action: Action) -> bool {
        use Role::*;
        match action {
            Action::Read => true,
            Action::ChangeAlerts => matches!(
                self,
                MainAdministrator | TenantAdministrator | Tier2Analyst | Tier1Analyst
            ),
            Action::LaunchPlaybooks => self != Observer,
            Action::ChangeInternalTi => {
                matches!(self, MainAdministrator | TenantAdministrator | Tier2Analyst)
            }
            Action::Configure | Action::ManageSecrets => {
                matches!(self, MainAdministrator | TenantAdministrator)
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a caller asks to do; the rows of the design's role table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read events, alerts, incidents, rules, threat intelligence.
    Read,
    /// Change an alert's or incident's status, assign it.
    ChangeAlerts,
    LaunchPlaybooks,
    /// Add or remove Internal TI and FalsePositive indicators.
    ChangeInternalTi,
    /// Change rules, filters, resources, collectors, playbooks.
    Configure,
    /// Secrets, users, tokens.
    ManageSecrets,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ChangeAlerts => "change alerts",
            Action::LaunchPlaybooks => "launch playbooks",
            Action::ChangeInternalTi => "change Internal TI",
            Action::Configure => "change configuration",
            Action::ManageSecrets => "manage secrets",
        }
    }
}

/// A person the gateway calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    pub tenant: String,
    pub role: Role,
}

/// Who is calling: a mesh identity, and the person behind a gateway call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    pub person: Option<Person>,
}

impl Caller {
    /// The caller of `request`, as the mesh server resolved it before the handler ran.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::permission_denied("the caller is unknown"))
    }

    /// The caller of a request from `identity` carrying `metadata`: person metadata from
    /// anyone but the gateway is refused, and from the gateway it must be whole and valid.
    pub fn resolve(identity: &Identity, metadata: &http::HeaderMap) -> Result<Caller, Status> {
        let header = |name: &str| metadata.get(name);
        let named = [USER_HEADER, TENANT_HEADER, ROLE_HEADER].map(header);
        if named.iter().all(Option::is_none) {
            return Ok(Caller {
                identity: identity.clone(),
                person: None,
            });
        }
        if identity.name() != directory::GATEWAY.name {
            return Err(Status::permission_denied(format!(
                "{identity} may not call for a person: x-xdr-* metadata is taken from the gateway only"
            )));
        }
        let [user, tenant, role] = named;
        let text = |name: &'static str, value: Option<&http::HeaderValue>| {
            let value = value
                .ok_or_else(|| Status::invalid_argument(format!("{name}: missing")))?
                .to_str()
                .map_err(|_| Status::invalid_argument(format!("{name}: not visible ASCII")))?;
            let chars = value.chars().count();
            if chars == 0 || chars > MAX_NAME_CHARS {
                return Err(Status::invalid_argument(format!(
                    "{name}: 1 to {MAX_NAME_CHARS} characters"
                )));
            }
            Ok(value.to_owned())
        };
        let (user, tenant) = (text(USER_HEADER, user)?, text(TENANT_HEADER, tenant)?);
        let role_name = text(ROLE_HEADER, role)?;
        // A role outside the table may do nothing: refused as a permission, naming it.
        let role = Role::from_name(&role_name).ok_or_else(|| {
            Status::permission_denied(format!(
                "{ROLE_HEADER}: {} is not a role",
                quoted(&role_name)
            ))
        })?;
        Ok(Caller {
            identity: identity.clone(),
            person: Some(Person { user, tenant, role }),
        })
    }

    /// Whether the caller acts as a Main administrator: the operator identity, or a person
    /// with that role.
    pub fn is_main_administrator(&self) -> bool {
        match &self.person {
            Some(person) => person.role == Role::MainAdministrator,
            None => self.identity.name() == directory::OPERATOR,
        }
    }

    /// May this caller do `action` in `tenant`? A person needs the role for it and, unless a
    /// Main administrator, `tenant` must be theirs — or `Shared` for reading. Changing
    /// `Shared` is for Main administrators. A service without a person acts for the tenant of
    /// the data it carries; the access policy has already limited what it may call.
    pub fn may(&self, action: Action, tenant: &str) -> Result<(), Status> {
        let Some(person) = &self.person else {
            if tenant == SHARED_TENANT && action != Action::Read && !self.is_main_administrator() {
                return Err(self.denied(action, tenant));
            }
            return Ok(());
        };
        let tenant_ok = person.role == Role::MainAdministrator
            || tenant == person.tenant
            || (tenant == SHARED_TENANT && action == Action::Read);
        if person.role.allows(action) && tenant_ok {
            Ok(())
        } else {
            Err(self.denied(action, tenant))
        }
    }

    /// May this caller do `action` on data no tenant owns (threat-intel indicators)? The
    /// role decides alone.
    pub fn may_globally(&self, action: Action) -> Result<(), Status> {
        match &self.person {
            Some(person) if !person.role.allows(action) => Err(Status::permission_denied(format!(
                "{} may not {}",
                self.who(),
                action.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// The tenant a request acts in: the body's `tenant`, or the person's when the body names
    /// none. A person's body naming another tenant is refused unless a Main administrator's.
    pub fn tenant_of(&self, body_tenant: &str) -> Result<String, Status> {
        match &self.person {
            Some(person) if body_tenant.is_empty() => Ok(person.tenant.clone()),
            Some(person)
                if body_tenant != person.tenant
                    && body_tenant != SHARED_TENANT
                    && person.role != Role::MainAdministrator =>
            {
                Err(Status::permission_denied(format!(
                    "tenant: {} is not {}'s tenant",
                    quoted(body_tenant),
                    quoted(&person.user)
                )))
            }
            _ => Ok(body_tenant.to_owned()),
        }
    }

    fn denied(&self, action: Action, tenant: &str) -> Status {
        Status::permission_denied(format!(
            "{} may not {} in tenant {}",
            self.who(),
            action.describe(),
            quoted(tenant)
        ))
    }

    fn who(&self) -> String {
        match &self.person {
            Some(person) => format!("{} ({})", quoted(&person.user), person.role),
            None => self.identity.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn person(tenant: &str, role: Role) -> Caller {
        Caller {
            identity: Identity::service("gateway"),
            person: Some(Person {
                user: "alice".into(),
                tenant: tenant.into(),
                role,
            }),
        }
    }

    #[test]
    fn person_metadata_is_taken_from_the_gateway_only_and_whole() {
        let gateway = Identity::service("gateway");
        let full = headers(&[
            (USER_HEADER, "alice"),
            (TENANT_HEADER, "Acme"),
            (ROLE_HEADER, "tier1-analyst"),
        ]);
        let caller = Caller::resolve(&gateway, &full).unwrap();
        assert_eq!(caller, person("Acme", Role::Tier1Analyst));
        let from_collector = Caller::resolve(&Identity::service("collector"), &full);
        assert_eq!(from_collector.unwrap_err().code(), Code::PermissionDenied);
        let partial = headers(&[(USER_HEADER, "alice")]);
        let missing = Caller::resolve(&gateway, &partial).unwrap_err();
        assert_eq!(missing.code(), Code::InvalidArgument);
        assert!(missing.message().contains(TENANT_HEADER), "{missing:?}");
        let bad_role = headers(&[
            (USER_HEADER, "alice"),
            (TENANT_HEADER, "Acme"),
            (ROLE_HEADER, "root"),
        ]);
        let refused = Caller::resolve(&gateway, &bad_role).unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(
            refused.message().contains("`root` is not a role"),
            "{refused:?}"
        );
        let none = Caller::resolve(&gateway, &http::HeaderMap::new()).unwrap();
        assert_eq!(none.person, None);
    }

    #[test]
    fn the_role_table_decides_within_the_persons_tenant() {
        let tier1 = person("Acme", Role::Tier1Analyst);
        assert!(tier1.may(Action::ChangeAlerts, "Acme").is_ok());
        assert!(tier1.may(Action::ChangeInternalTi, "Acme").is_err());
        assert!(tier1.may(Action::Read, "Shared").is_ok());
        assert!(tier1.may(Action::Read, "Other").is_err());
        let junior = person("Acme", Role::JuniorAnalyst);
        assert!(junior.may(Action::LaunchPlaybooks, "Acme").is_ok());
        assert!(junior.may(Action::ChangeAlerts, "Acme").is_err());
        let observer = person("Acme", Role::Observer);
        assert!(observer.may(Action::LaunchPlaybooks, "Acme").is_err());
        let admin = person("Acme", Role::TenantAdministrator);
        assert!(admin.may(Action::Configure, "Acme").is_ok());
        assert!(admin.may(Action::Configure, "Shared").is_err());
        assert!(admin.may(Action::Configure, "Other").is_err());
        let main = person("Main", Role::MainAdministrator);
        assert!(main.may(Action::Configure, "Shared").is_ok());
        assert!(main.may(Action::ManageSecrets, "Other").is_ok());
        let denied = admin.may(Action::Configure, "Other").unwrap_err();
        assert_eq!(
            denied.message(),
            "`alice` (tenant-administrator) may not change configuration in tenant `Other`"
        );
    }

    #[test]
    fn services_act_for_their_data_and_the_operator_as_main_administrator() {
        let operator = Caller {
            identity: Identity::operator(),
            person: None,
        };
        assert!(operator.may(Action::Configure, "Shared").is_ok());
        let collector = Caller {
            identity: Identity::service("collector"),
            person: None,
        };
        assert!(collector.may(Action::Read, "Acme").is_ok());
        assert!(collector.may(Action::Configure, "Shared").is_err());
    }

    #[test]
    fn a_persons_body_tenant_must_be_theirs() {
        let tier2 = person("Acme", Role::Tier2Analyst);
        assert_eq!(tier2.tenant_of("").unwrap(), "Acme");
        assert_eq!(tier2.tenant_of("Acme").unwrap(), "Acme");
        assert_eq!(
            tier2.tenant_of("Other").unwrap_err().code(),
            Code::PermissionDenied
        );
        let main = person("Main", Role::MainAdministrator);
        assert_eq!(main.tenant_of("Other").unwrap(), "Other");
        assert!(tier2.may_globally(Action::ChangeInternalTi).is_ok());
        let tier1 = person("Acme", Role::Tier1Analyst);
        assert_eq!(
            tier1
                .may_globally(Action::ChangeInternalTi)
                .unwrap_err()
                .message(),
            "`alice` (tier1-analyst) may not change Internal TI"
        );
    }
}
