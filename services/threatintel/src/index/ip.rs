//! IP indicators: addresses and CIDR networks. An address matches every network holding it,
//! so networks are filed by prefix length and a lookup masks the address once per length
//! present (a handful in practice).

use std::{collections::hash_map::Entry, net::IpAddr};

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::error::IndicatorError;

/// An address (as a full-length network) or a network; `/0` is refused as absurd.
pub fn parse_ip_indicator(input: &str) -> Result<IpNet, IndicatorError> {
    let text = input.trim();
    let bad = |reason: &str| IndicatorError::BadIp {
        value: input.to_owned(),
        reason: reason.to_owned(),
    };
    if text.contains('/') {
        let net: IpNet = text.parse().map_err(|_| bad("not an IP network"))?;
        if net.prefix_len() == 0 {
            return Err(bad("a /0 network would match every address"));
        }
        Ok(net.trunc())
    } else {
        let ip: IpAddr = text.parse().map_err(|_| bad("not an IP address"))?;
        Ok(IpNet::from(ip))
    }
}

/// One family's networks: (prefix length, masked network → key id), longest first.
struct Family<K> {
    by_prefix: Vec<(u8, FxHashMap<K, u32>)>,
}

impl<K: std::hash::Hash + Eq + Copy> Family<K> {
    fn key_id<E>(
        &mut self,
        prefix: u8,
        network: K,
        new_id: impl FnOnce() -> Result<u32, E>,
    ) -> Result<u32, E> {
        let slot = match self.by_prefix.iter().position(|(p, _)| *p == prefix) {
            Some(slot) => slot,
            None => {
                self.by_prefix.push((prefix, FxHashMap::default()));
                self.by_prefix
                    .sort_by_key(|(prefix, _)| std::cmp::Reverse(*prefix));
                self.by_prefix
                    .iter()
                    .position(|(p, _)| *p == prefix)
                    .expect("just inserted")
            }
        };
        Ok(match self.by_prefix[slot].1.entry(network) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => *entry.insert(new_id()?),
        })
    }

    fn shrink_to_fit(&mut self) {
        for (_, map) in &mut self.by_prefix {
            map.shrink_to_fit();
        }
    }
}

impl<K> Default for Family<K> {
    fn default() -> Self {
        Family {
            by_prefix: Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct IpTable {
    v4: Family<u32>,
    v6: Family<u128>,
}

fn mask4(ip: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        ip & (u32::MAX << (32 - prefix))
    }
}

fn mask6(ip: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        ip & (u128::MAX << (128 - prefix))
    }
}

impl IpTable {
    pub fn key_id<E>(
        &mut self,
        net: IpNet,
        new_id: impl FnOnce() -> Result<u32, E>,
    ) -> Result<u32, E> {
        match net {
            IpNet::V4(net) => self
                .v4
                .key_id(net.prefix_len(), net.network().to_bits(), new_id),
            IpNet::V6(net) => self
                .v6
                .key_id(net.prefix_len(), net.network().to_bits(), new_id),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        self.v4.shrink_to_fit();
        self.v6.shrink_to_fit();
    }

    /// Calls `found` with the key id of every network holding `ip`.
    pub fn for_each_match(&self, ip: IpAddr, mut found: impl FnMut(u32)) {
        match ip {
            IpAddr::V4(ip) => {
                let bits = ip.to_bits();
                for (prefix, map) in &self.v4.by_prefix {
                    if let Some(&head) = map.get(&mask4(bits, *prefix)) {
                        found(head);
                    }
                }
            }
            IpAddr::V6(ip) => {
                // An IPv4-mapped IPv6 address is the IPv4 address.
                if let Some(v4) = ip.to_ipv4_mapped() {
                    return self.for_each_match(IpAddr::V4(v4), found);
                }
                let bits = ip.to_bits();
                for (prefix, map) in &self.v6.by_prefix {
                    if let Some(&head) = map.get(&mask6(bits, *prefix)) {
                        found(head);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_matches_every_network_holding_it() {
        let mut table = IpTable::default();
        for (i, net) in [
            "192.0.2.1",
            "192.0.2.0/24",
            "192.0.0.0/16",
            "10.0.0.0/8",
            "2001:db8::/32",
        ]
        .iter()
        .enumerate()
        {
            let id = table.key_id(parse_ip_indicator(net).unwrap(), || Ok::<_, ()>(i as u32));
            assert_eq!(id, Ok(i as u32));
        }
        let found = |ip: &str| {
            let mut heads = Vec::new();
            table.for_each_match(ip.parse().unwrap(), |h| heads.push(h));
            heads.sort();
            heads
        };
        assert_eq!(found("192.0.2.1"), vec![0, 1, 2]);
        assert_eq!(found("192.0.2.200"), vec![1, 2]);
        assert_eq!(found("::ffff:192.0.2.1"), vec![0, 1, 2]);
        assert_eq!(found("2001:db8:1::5"), vec![4]);
        assert_eq!(found("198.51.100.1"), Vec::<u32>::new());
    }

    #[test]
    fn networks_are_truncated_and_absurd_ones_refused() {
        assert_eq!(
            parse_ip_indicator("192.0.2.77/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert!(
            parse_ip_indicator("0.0.0.0/0")
                .unwrap_err()
                .to_string()
                .contains("/0")
        );
        assert!(parse_ip_indicator("192.0.2.1/33").is_err());
        assert!(parse_ip_indicator("300.1.1.1").is_err());
    }
}
