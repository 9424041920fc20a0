//! What the index holds and answers, free of any RPC types.

use super::context::Context;

/// Suppliers every index has. `FalsePositive` entries suppress every other supplier's
/// matches of the same value; `InternalTI` is the analysts' own denylist.
pub const INTERNAL_TI: &str = "InternalTI";
pub const FALSE_POSITIVE: &str = "FalsePositive";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndicatorKind {
    /// An IPv4/IPv6 address or CIDR network.
    Ip,
    Url,
    Domain,
    /// MD5, SHA1 or SHA256 in hex.
    Hash,
}

impl IndicatorKind {
    pub fn name(self) -> &'static str {
        match self {
            IndicatorKind::Ip => "ip",
            IndicatorKind::Url => "url",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Hash => "hash",
        }
    }
}

/// An indicator as a supplier gives it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Indicator {
    pub value: String,
    /// `None`: told from the value's shape.
    pub kind: Option<IndicatorKind>,
    pub category: String,
    pub supplier: String,
    pub context: Vec<(String, String)>,
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch; 0 = unknown.
    pub last_seen_ms: i64,
    /// Stops matching at this time; 0 = only the supplier's retention applies.
    pub expires_at_ms: i64,
    /// For domains: only this domain, not its subdomains.
    pub exact: bool,
}

/// A supplier of indicators, with how much it is trusted and how long its indicators live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supplier {
    pub name: String,
    /// 0..=100.
    pub confidence: u8,
    /// Indicators not seen for this many minutes stop matching; 0 = forever.
    pub retention_minutes: u32,
    pub description: String,
}

impl Supplier {
    pub fn new(name: &str) -> Self {
        Supplier {
            name: name.to_owned(),
            confidence: 100,
            retention_minutes: 0,
            description: String::new(),
        }
    }
}

/// One match of a looked-up value, borrowed from the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match<'a> {
    pub kind: IndicatorKind,
    pub category: &'a str,
    /// The indicator or mask that matched, as normalized in the index.
    pub matched: &'a str,
    pub supplier: &'a str,
    pub context: Context<'a>,
}
