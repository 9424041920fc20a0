//! Networks and hosts a playbook never blocks, whatever an alert or an analyst names: the
//! operator's own (`--protected-networks`, `--protected-hosts`), loopback, and the appliance
//! a launch talks to — blocking it would cut the response off its own firewall.

use std::net::IpAddr;

use ipnet::IpNet;
use xdr_proto::pb::{IndicatorType, Observable};

use crate::alerts::host_of;

#[derive(Clone, Debug, Default)]
pub struct ProtectedSet {
    networks: Vec<IpNet>,
    /// Lower-case domain names; each covers its subdomains.
    hosts: Vec<String>,
}

impl ProtectedSet {
    /// From `networks` (CIDR or a single address) and `hosts` (domain names), with loopback.
    pub fn new(networks: &[String], hosts: &[String]) -> Result<Self, String> {
        let mut set = ProtectedSet {
            networks: vec![
                "127.0.0.0/8".parse().expect("a CIDR"),
                "::1/128".parse().expect("a CIDR"),
            ],
            hosts: Vec::new(),
        };
        for network in networks {
            let parsed = network
                .parse::<IpNet>()
                .or_else(|_| network.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("protected network {network:?}: not a CIDR or an address"))?;
            set.networks.push(parsed);
        }
        for host in hosts {
            set.add_host(host);
        }
        Ok(set)
    }

    /// Also protects `host` (a domain name or an address), e.g. the appliance's own.
    pub fn add_host(&mut self, host: &str) {
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => self.networks.push(IpNet::from(ip)),
            Err(_) => self
                .hosts
                .push(host.trim_start_matches('.').to_ascii_lowercase()),
        }
    }

    fn covers_ip(&self, ip: &str) -> bool {
        let ip = ip
            .parse::<IpAddr>()
            .ok()
            .or_else(|| ip.parse::<IpNet>().ok().map(|net| net.network()));
        ip.is_some_and(|ip| self.networks.iter().any(|net| net.contains(&ip)))
    }

    fn covers_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|host| {
            domain == *host
                || (domain.ends_with(host.as_str())
                    && domain.as_bytes()[domain.len() - host.len() - 1] == b'.')
        })
    }

    /// Whether blocking `observable` would block something protected.
    pub fn covers(&self, observable: &Observable) -> bool {
        match IndicatorType::try_from(observable.r#type) {
            Ok(IndicatorType::Ip) => self.covers_ip(&observable.value),
            Ok(IndicatorType::Domain) => self.covers_domain(&observable.value),
            Ok(IndicatorType::Url) => match host_of(&observable.value) {
                Some((IndicatorType::Ip, ip)) => self.covers_ip(&ip),
                Some((_, domain)) => self.covers_domain(&domain),
                None => false,
            },
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observable(r#type: IndicatorType, value: &str) -> Observable {
        Observable {
            r#type: r#type as i32,
            value: value.into(),
            ..Observable::default()
        }
    }

    #[test]
    fn networks_hosts_and_their_urls_are_covered() {
        let mut set = ProtectedSet::new(
            &["10.0.0.0/8".into(), "192.0.2.1".into()],
            &["corp.example".into()],
        )
        .unwrap();
        set.add_host("198.51.100.9");
        assert!(set.covers(&observable(IndicatorType::Ip, "10.1.2.3")));
        assert!(set.covers(&observable(IndicatorType::Ip, "192.0.2.1")));
        assert!(set.covers(&observable(IndicatorType::Ip, "127.0.0.1")));
        assert!(set.covers(&observable(IndicatorType::Ip, "198.51.100.9")));
        assert!(!set.covers(&observable(IndicatorType::Ip, "192.0.2.2")));
        assert!(set.covers(&observable(IndicatorType::Domain, "mail.corp.example")));
        assert!(!set.covers(&observable(IndicatorType::Domain, "evilcorp.example")));
        assert!(set.covers(&observable(
            IndicatorType::Url,
            "https://corp.example/login"
        )));
        assert!(set.covers(&observable(IndicatorType::Url, "http://10.9.9.9/x")));
        assert!(!set.covers(&observable(IndicatorType::Url, "http://fakess123bn.nu")));
        assert!(ProtectedSet::new(&["nonsense".into()], &[]).is_err());
    }
}
