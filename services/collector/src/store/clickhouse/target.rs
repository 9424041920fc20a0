//! Where the events go: `clickhouse+http://HOST:PORT[,HOST:PORT…]/DATABASE`, an optional
//! cluster whose shards those hosts are, and the credentials (never printed).

use std::fmt;

/// A ClickHouse deployment the collector writes to.
#[derive(Clone, PartialEq)]
pub struct Target {
    /// `host:port` of each server's HTTP interface, tried in order.
    pub hosts: Vec<String>,
    pub database: String,
    /// The `<remote_servers>` cluster the hosts are shards of: events go to a local table on
    /// each and are written and read through a `Distributed` table.
    pub cluster: Option<String>,
    pub user: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("event store: {0}")]
    Invalid(String),
}

impl Target {
    /// Reads `url`; `user` and `password` are given apart from it (a URL is logged, they are not).
    pub fn parse(
        url: &str,
        cluster: Option<&str>,
        user: &str,
        password: &str,
    ) -> Result<Self, TargetError> {
        let invalid = |m: &str| TargetError::Invalid(m.to_owned());
        let rest = url.strip_prefix("clickhouse+http://").ok_or_else(|| {
            invalid("a ClickHouse store is clickhouse+http://HOST:PORT[,HOST:PORT…]/DATABASE")
        })?;
        let (hosts, database) = rest
            .split_once('/')
            .ok_or_else(|| invalid("name the database after the hosts: …/DATABASE"))?;
        if hosts.contains('@') {
            return Err(invalid(
                "give the user and password with --event-store-user and --event-store-password-file, not in the URL",
            ));
        }
        let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for host in &hosts {
            let (name, port) = host
                .rsplit_once(':')
                .ok_or_else(|| invalid("each host is HOST:PORT"))?;
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(invalid("each host is HOST:PORT"));
            }
        }
        if !is_identifier(database) {
            return Err(invalid(
                "the database name is letters, digits and _, not starting with a digit",
            ));
        }
        if let Some(cluster) = cluster
            && !is_identifier(cluster)
        {
            return Err(invalid(
                "the cluster name is letters, digits and _, not starting with a digit",
            ));
        }
        if hosts.len() > 1 && cluster.is_none() {
            return Err(invalid(
                "several hosts are the shards of a cluster: name it with --event-store-cluster",
            ));
        }
        if user.contains(['\r', '\n', ':']) || password.contains(['\r', '\n']) {
            return Err(invalid("the user or password holds a line break or ':'"));
        }
        Ok(Target {
            hosts,
            database: database.to_owned(),
            cluster: cluster.map(str::to_owned),
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The table events are written to and searched in (the `Distributed` one with a cluster).
    pub fn table(&self) -> String {
        format!("{}.events", self.database)
    }

    /// The table of the lookup rows (`schema::create_lookup`) of each server's own events,
    /// on every server (searches read it on each shard, beside its events).
    pub fn lookup_table(&self) -> String {
        format!("{}.events_lookup", self.database)
    }

    /// The table that holds each server's own events.
    pub fn local_table(&self) -> String {
        match self.cluster {
            Some(_) => format!("{}.events_local", self.database),
            None => self.table(),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.hosts)
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn is_identifier(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_hosts_and_a_database() {
        let target = Target::parse(
            "clickhouse+http://127.0.0.1:8123,127.0.0.2:8123/xdr",
            Some("events_cluster"),
            "default",
            "secret",
        )
        .unwrap();
        assert_eq!(target.hosts, ["127.0.0.1:8123", "127.0.0.2:8123"]);
        assert_eq!(target.table(), "xdr.events");
        assert_eq!(target.local_table(), "xdr.events_local");
        assert!(!format!("{target:?}").contains("secret"));
        for (url, cluster, says) in [
            ("http://h:8123/xdr", None, "clickhouse+http://"),
            ("clickhouse+http://h:8123", None, "DATABASE"),
            ("clickhouse+http://u:p@h:8123/xdr", None, "not in the URL"),
            ("clickhouse+http://h/xdr", None, "HOST:PORT"),
            ("clickhouse+http://h:8123/x;DROP", None, "database name"),
            ("clickhouse+http://h:1,g:2/xdr", None, "cluster"),
            ("clickhouse+http://h:1,g:2/xdr", Some("a b"), "cluster name"),
        ] {
            let error = Target::parse(url, cluster, "default", "").unwrap_err();
            assert!(error.to_string().contains(says), "{url}: {error}");
        }
    }
}
