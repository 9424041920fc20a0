//! A deterministic mix of indicators, and lookups that hit or miss them: indicator `i` is a
//! pure function of `i`, so a hit is made by generating some `i` again, with no table kept.

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use xdr_threatintel::{
    feeds::load_feeds,
    index::{IndexView, IndicatorIndex},
    store::now_ms,
};

/// splitmix64's finalizer: a well-spread 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lookups from this namespace were never generated as indicators.
const MISS: u64 = 0x005e_ed0f_0bad;

fn hex(seed: u64, bytes: usize) -> String {
    (0..bytes.div_ceil(8))
        .flat_map(|k| mix(seed ^ k as u64).to_be_bytes())
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ipv4(h: u64) -> [u8; 4] {
    let b = h.to_be_bytes();
    [b[0] % 223 + 1, b[1], b[2], b[3] % 254 + 1]
}

/// Indicator `i` of the feed: value and category. The mix: 30% addresses, 5% /24 networks,
/// 20% URLs, 5% URL masks, 20% domains, 10% MD5, 5% SHA1, 5% SHA256.
pub fn indicator(i: u64) -> (String, &'static str) {
    let h = mix(i);
    match i % 20 {
        0..=5 => {
            let [a, b, c, d] = ipv4(h);
            (format!("{a}.{b}.{c}.{d}"), "KL_IP_Reputation")
        }
        6 => {
            let [a, b, c, _] = ipv4(h);
            (format!("{a}.{b}.{c}.0/24"), "KL_IP_Reputation")
        }
        7..=10 => (
            format!(
                "http://h{}.site{}.com/p/{}/index.html",
                h % 1_000_000,
                (h >> 20) % 100_000,
                (h >> 40) % 10_000
            ),
            "KL_Malicious_URL",
        ),
        11 => (
            format!("m{}.mask{}.net/dir/*", h % 1_000_000, (h >> 32) % 1000),
            "KL_Phishing_URL",
        ),
        12..=15 => (
            format!("d{}.bad{}.org", h % 10_000_000, (h >> 24) % 1000),
            "KL_BotnetCnC_URL",
        ),
        16 | 17 => (hex(h, 16), "KL_Malicious_Hash_MD5"),
        18 => (hex(h, 20), "KL_Malicious_Hash_SHA1"),
        _ => (hex(h, 32), "KL_Malicious_Hash_SHA256"),
    }
}

/// A lookup value that indicator `i` matches (an address inside a network, a URL under a
/// mask, a subdomain URL of a domain).
pub fn hit(i: u64) -> String {
    let (value, _) = indicator(i);
    match i % 20 {
        6 => value.replace(".0/24", &format!(".{}", mix(i ^ 1) % 254 + 1)),
        11 => format!("http://{}", value.replace('*', "page.html")),
        12..=15 => format!("http://www.cdn.{value}/x.js"),
        _ => value,
    }
}

/// A lookup value of the same shape as indicator `i` that (almost surely) matches nothing:
/// `i ^ MISS` is far past any generated index, so only a rare random collision matches.
pub fn miss(i: u64) -> String {
    hit(i ^ MISS)
}

/// The folder holding the generated feed of `indicators` (written once, then reused), and the
/// feed's size in bytes.
pub fn generated_feed(dir: &Path, indicators: u64) -> anyhow::Result<(PathBuf, u64)> {
    let feeds = dir.join(format!("feeds-{indicators}"));
    let feed = feeds.join("Bench.csv");
    if !feed.exists() {
        let started = Instant::now();
        std::fs::create_dir_all(&feeds)?;
        let partial = feed.with_extension("partial");
        let mut out = BufWriter::new(std::fs::File::create(&partial)?);
        writeln!(out, "indicator,category,id")?;
        for i in 0..indicators {
            let (value, category) = indicator(i);
            writeln!(out, "{value},{category},{i}")?;
        }
        out.flush()?;
        std::fs::rename(partial, &feed)?;
        println!(
            "generated {indicators} indicators in {:.1?}",
            started.elapsed()
        );
    }
    let bytes = std::fs::metadata(&feed)?.len();
    Ok((feeds, bytes))
}

/// Indicator of residue `class` (mod 20) near `k`'s place in a feed of `indicators`.
fn of_class(indicators: u64, k: u64, class: u64) -> u64 {
    let rows = (indicators / 20).max(1);
    (mix(k ^ 7) % rows) * 20 + class
}

/// Every other value a hit on indicator `i`, else one of the same shape past the feed's end
/// (same class mod 20, never generated).
fn hit_or_miss(indicators: u64, k: u64, i: u64) -> String {
    if k.is_multiple_of(2) {
        hit(i)
    } else {
        hit(i + 20 * (indicators / 20 + 1))
    }
}

/// An event's URL field: a URL, a URL under a mask, or a subdomain URL of a domain.
pub fn url_value(indicators: u64, k: u64) -> String {
    hit_or_miss(indicators, k, of_class(indicators, k, 7 + k % 9))
}

/// An event's address field: an address, or an address inside a network.
pub fn ip_value(indicators: u64, k: u64) -> String {
    hit_or_miss(indicators, k, of_class(indicators, k, k % 7))
}

/// The feeds in `feeds` loaded in-process, as the service would answer from them.
pub fn indexed(feeds: &Path) -> anyhow::Result<IndexView> {
    let (builder, reports) = load_feeds(
        feeds,
        &IndicatorIndex::empty(),
        now_ms(),
        &Default::default(),
    );
    if let Some(error) = reports.iter().find_map(|r| r.error.as_ref()) {
        anyhow::bail!("loading the generated feed: {error}");
    }
    Ok(IndexView {
        feeds: Arc::new(builder.build()),
        runtime: Arc::new(IndicatorIndex::empty()),
    })
}

/// `count` lookups, half of them hits, spread over `indicators`.
pub fn lookups(indicators: u64, count: usize) -> Vec<String> {
    (0..count as u64)
        .map(|k| {
            if k % 2 == 0 {
                hit(mix(k ^ 7) % indicators)
            } else {
                miss(k)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_mixed() {
        assert_eq!(indicator(12345), indicator(12345));
        let kinds: std::collections::BTreeSet<_> = (0..20).map(|i| indicator(i).1).collect();
        assert_eq!(kinds.len(), 7);
        assert_eq!(hex(1, 32).len(), 64);
    }
}
