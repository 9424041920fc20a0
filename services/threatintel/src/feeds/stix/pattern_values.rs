//! Which indicators a parsed pattern names. A pattern is a set of indicators when it says
//! "any of these values was seen": comparisons of a supported object path with `=` and a
//! string, joined only by `OR` (inside one observation or between observations). Anything
//! else — `AND`, sequences, qualifiers, other operators or object paths — describes
//! behaviour a lookup of one value cannot test, and the indicator is skipped for that reason.

use super::pattern::{Comparison, Literal, ObjectPath, Observation, Operator, PathStep};
use crate::feeds::{categories::ValueKind, record::SkipReason};

/// Most values one pattern yields; a longer `OR` is skipped.
pub const MAX_VALUES: usize = 1024;

/// The values `pattern` names, or why it names none we can look up.
pub fn values_of(pattern: &Observation) -> Result<Vec<(ValueKind, &str)>, SkipReason> {
    let mut values = Vec::new();
    observation_values(pattern, &mut values)?;
    Ok(values)
}

fn observation_values<'p>(
    observation: &'p Observation,
    values: &mut Vec<(ValueKind, &'p str)>,
) -> Result<(), SkipReason> {
    match observation {
        Observation::Match(comparison) => comparison_values(comparison, values),
        Observation::Or(parts) => parts
            .iter()
            .try_for_each(|part| observation_values(part, values)),
        Observation::And(_) => Err(SkipReason::PatternAnd),
        Observation::FollowedBy(_) => Err(SkipReason::PatternSequence),
        Observation::Qualified(..) => Err(SkipReason::PatternQualifier),
    }
}

fn comparison_values<'p>(
    comparison: &'p Comparison,
    values: &mut Vec<(ValueKind, &'p str)>,
) -> Result<(), SkipReason> {
    match comparison {
        Comparison::Or(parts) => parts
            .iter()
            .try_for_each(|part| comparison_values(part, values)),
        Comparison::And(_) => Err(SkipReason::PatternAnd),
        Comparison::Exists(_) => Err(SkipReason::PatternOperator),
        Comparison::Test {
            path,
            negated,
            operator,
            value,
        } => {
            if *negated || *operator != Operator::Equal {
                return Err(SkipReason::PatternOperator);
            }
            let kind = kind_of_path(path).ok_or(SkipReason::PatternObjectPath)?;
            let Literal::Text(text) = value else {
                return Err(SkipReason::InvalidValue);
            };
            if !kind.fits(text) {
                return Err(SkipReason::InvalidValue);
            }
            if values.len() == MAX_VALUES {
                return Err(SkipReason::TooLarge);
            }
            values.push((kind, text));
            Ok(())
        }
    }
}

/// The kind an object path names, if it names one we look up.
fn kind_of_path(path: &ObjectPath) -> Option<ValueKind> {
    let steps: Vec<&str> = path
        .steps
        .iter()
        .map(|step| match step {
            PathStep::Property(name) => Some(name.as_str()),
            PathStep::Index(_) => None,
        })
        .collect::<Option<_>>()?;
    Some(match (path.object_type.as_str(), steps.as_slice()) {
        ("url", ["value"]) => ValueKind::Url,
        ("domain-name", ["value"]) => ValueKind::Domain,
        ("ipv4-addr", ["value"]) => ValueKind::Ipv4,
        ("ipv6-addr", ["value"]) => ValueKind::Ipv6,
        ("file", ["hashes", algorithm]) => match *algorithm {
            "MD5" => ValueKind::Md5,
            "SHA-1" | "SHA1" => ValueKind::Sha1,
            "SHA-256" | "SHA256" => ValueKind::Sha256,
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::pattern::parse;
    use super::*;

    fn values(pattern: &str) -> Result<Vec<(ValueKind, String)>, SkipReason> {
        let tree = parse(pattern).unwrap();
        values_of(&tree).map(|found| {
            found
                .into_iter()
                .map(|(kind, value)| (kind, value.to_owned()))
                .collect()
        })
    }

    #[test]
    fn equalities_joined_by_or_are_indicators() {
        assert_eq!(
            values("[ipv4-addr:value = '198.51.100.1' OR ipv6-addr:value = '2001:db8::1']"),
            Ok(vec![
                (ValueKind::Ipv4, "198.51.100.1".into()),
                (ValueKind::Ipv6, "2001:db8::1".into())
            ])
        );
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            values(&format!(
                "[file:hashes.MD5 = '{md5}'] OR ([file:hashes.'SHA-256' = '{sha256}'] OR \
                 [url:value = 'http://x.example/a'] OR [domain-name:value = 'x.example'])"
            )),
            Ok(vec![
                (ValueKind::Md5, md5.into()),
                (ValueKind::Sha256, sha256.into()),
                (ValueKind::Url, "http://x.example/a".into()),
                (ValueKind::Domain, "x.example".into())
            ])
        );
    }

    #[test]
    fn other_patterns_name_why_they_are_skipped() {
        for (pattern, reason) in [
            (
                "[url:value = 'a' AND url:value = 'b']",
                SkipReason::PatternAnd,
            ),
            (
                "[url:value = 'a'] AND [url:value = 'b']",
                SkipReason::PatternAnd,
            ),
            (
                "[url:value = 'a'] FOLLOWEDBY [url:value = 'b']",
                SkipReason::PatternSequence,
            ),
            (
                "[url:value = 'a'] WITHIN 5 SECONDS",
                SkipReason::PatternQualifier,
            ),
            ("[url:value != 'a']", SkipReason::PatternOperator),
            ("[url:value NOT = 'a']", SkipReason::PatternOperator),
            ("[url:value LIKE 'a%']", SkipReason::PatternOperator),
            ("[EXISTS url:value]", SkipReason::PatternOperator),
            (
                "[email-addr:value = 'a@b.example']",
                SkipReason::PatternObjectPath,
            ),
            (
                "[file:hashes.'SHA-512' = 'ab']",
                SkipReason::PatternObjectPath,
            ),
            ("[file:name = 'x.exe']", SkipReason::PatternObjectPath),
            ("[url:value = 5]", SkipReason::InvalidValue),
            ("[file:hashes.MD5 = 'abc']", SkipReason::InvalidValue),
        ] {
            assert_eq!(values(pattern), Err(reason), "{pattern}");
        }
        let many: Vec<String> = (0..=MAX_VALUES)
            .map(|i| format!("url:value = 'http://{i}.example'"))
            .collect();
        assert_eq!(
            values(&format!("[{}]", many.join(" OR "))),
            Err(SkipReason::TooLarge)
        );
    }
}
