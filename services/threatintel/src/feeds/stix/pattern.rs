//! STIX 2.1 patterning (the specification's part 9 and its ANTLR grammar, `STIXPattern.g4`):
//! a tokenizer and a recursive-descent parser into a tree, each grammar rule one function,
//! precedence as the grammar orders it (`FOLLOWEDBY` below `OR` below `AND` between
//! observations; `OR` below `AND` inside one). The whole language parses, so a pattern we do
//! not turn into indicators is told apart from one that is not STIX at all. Nesting and
//! length are bounded: a pattern comes from a feed, and a feed is outside input.

use std::fmt;

/// The longest pattern read; a longer one is skipped.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;
/// The deepest nesting of brackets and parentheses read.
const MAX_DEPTH: usize = 32;

/// Observation expressions, the pattern's top level.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// `[ comparison ]`.
    Match(Comparison),
    And(Vec<Observation>),
    Or(Vec<Observation>),
    FollowedBy(Vec<Observation>),
    /// An observation with `WITHIN`, `REPEATS` or `START … STOP`.
    Qualified(Box<Observation>, Qualifier),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Qualifier {
    Within(String),
    Repeats(i64),
    StartStop(String, String),
}

/// Comparison expressions, inside one observation's brackets.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    Test {
        path: ObjectPath,
        negated: bool,
        operator: Operator,
        value: Literal,
    },
    Exists(ObjectPath),
    And(Vec<Comparison>),
    Or(Vec<Comparison>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    In,
    Like,
    Matches,
    IsSubset,
    IsSuperset,
}

/// `object-type:property.property[index]…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPath {
    pub object_type: String,
    pub steps: Vec<PathStep>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    Property(String),
    /// `[n]`, or `[*]` (`None`).
    Index(Option<i64>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Binary(String),
    Hex(String),
    Timestamp(String),
    Set(Vec<Literal>),
}

/// Why a pattern does not parse: short, naming where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {at}")]
pub struct SyntaxError {
    pub at: usize,
    pub reason: &'static str,
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object_type)?;
        let mut first = true;
        for step in &self.steps {
            match step {
                PathStep::Property(name) => {
                    f.write_str(if first { ":" } else { "." })?;
                    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                    if plain {
                        f.write_str(name)?;
                    } else {
                        write!(f, "'{name}'")?;
                    }
                }
                PathStep::Index(Some(index)) => write!(f, "[{index}]")?,
                PathStep::Index(None) => f.write_str("[*]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// The tree of `pattern`.
pub fn parse(pattern: &str) -> Result<Observation, SyntaxError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(SyntaxError {
            at: MAX_PATTERN_BYTES,
            reason: "pattern too long",
        });
    }
    let tokens = tokenize(pattern)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end: pattern.len(),
    };
    let tree = parser.observations()?;
    match parser.peek() {
        None => Ok(tree),
        Some(_) => Err(parser.error("unexpected text after the pattern")),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// A word: a keyword, an object type or a property name (`[A-Za-z_][A-Za-z0-9_-]*`).
    Word(String),
    Text(String),
    Integer(i64),
    Float(f64),
    Binary(String),
    Hex(String),
    Timestamp(String),
    Punct(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let byte = bytes[at];
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let token = match byte {
            b'\'' => {
                let (value, end) = quoted(text, at + 1)?;
                at = end;
                Token::Text(value)
            }
            b'b' | b'h' | b't' if bytes.get(at + 1) == Some(&b'\'') => {
                let (value, end) = quoted(text, at + 2)?;
                at = end;
                match byte {
                    b'b' => Token::Binary(value),
                    b'h' => Token::Hex(value),
                    _ => Token::Timestamp(value),
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                at += 1;
                while at < bytes.len()
                    && (bytes[at].is_ascii_alphanumeric() || matches!(bytes[at], b'_' | b'-'))
                {
                    at += 1;
                }
                Token::Word(text[start..at].to_owned())
            }
            b'0'..=b'9' | b'-' | b'+' => {
                at += 1;
                while at < bytes.len() && (bytes[at].is_ascii_digit() || bytes[at] == b'.') {
                    at += 1;
                }
                let number = &text[start..at];
                if let Ok(integer) = number.parse::<i64>() {
                    Token::Integer(integer)
                } else if let Ok(float) = number.parse::<f64>() {
                    Token::Float(float)
                } else {
                    return Err(SyntaxError {
                        at: start,
                        reason: "a malformed number",
                    });
                }
            }
            _ => {
                let two = text.get(at..at + 2).unwrap_or_default();
                let punct = ["!=", "<>", "<=", ">="]
                    .into_iter()
                    .find(|p| *p == two)
                    .or_else(|| {
                        ["[", "]", "(", ")", ":", ".", ",", "=", "<", ">", "*"]
                            .into_iter()
                            .find(|p| p.as_bytes()[0] == byte)
                    })
                    .ok_or(SyntaxError {
                        at,
                        reason: "a character patterns do not use",
                    })?;
                at += punct.len();
                Token::Punct(punct)
            }
        };
        tokens.push((start, token));
    }
    Ok(tokens)
}

/// The string starting at `at` (after its opening quote), with `\'` and `\\` unescaped, and
/// where it ends (after its closing quote).
fn quoted(text: &str, mut at: usize) -> Result<(String, usize), SyntaxError> {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut run = at;
    while at < bytes.len() {
        match bytes[at] {
            b'\'' => {
                value.push_str(&text[run..at]);
                return Ok((value, at + 1));
            }
            b'\\' => {
                value.push_str(&text[run..at]);
                match bytes.get(at + 1) {
                    Some(b'\'') => value.push('\''),
                    Some(b'\\') => value.push('\\'),
                    _ => {
                        return Err(SyntaxError {
                            at,
                            reason: "an escape other than \\' or \\\\",
                        });
                    }
                }
                at += 2;
                run = at;
            }
            _ => at += 1,
        }
    }
    Err(SyntaxError {
        at: text.len(),
        reason: "a string that does not end",
    })
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    depth: usize,
    /// The pattern's length, where an error at its end is.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, token)| token)
    }

    fn error(&self, reason: &'static str) -> SyntaxError {
        let at = self.tokens.get(self.next).map_or(self.end, |(at, _)| *at);
        SyntaxError { at, reason }
    }

    fn take(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).map(|(_, token)| token.clone());
        self.next += 1;
        token
    }

    fn is_punct(&self, punct: &str) -> bool {
        matches!(self.peek(), Some(Token::Punct(p)) if *p == punct)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn expect_punct(
        &mut self,
        punct: &'static str,
        reason: &'static str,
    ) -> Result<(), SyntaxError> {
        if !self.is_punct(punct) {
            return Err(self.error(reason));
        }
        self.next += 1;
        Ok(())
    }

    fn expect_word(&mut self, word: &str, reason: &'static str) -> Result<(), SyntaxError> {
        if !self.is_word(word) {
            return Err(self.error(reason));
        }
        self.next += 1;
        Ok(())
    }

    fn deeper(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("brackets nested too deep"));
        }
        Ok(())
    }

    /// `observationExpressions: observationExpressionOr (FOLLOWEDBY observationExpressionOr)*`.
    fn observations(&mut self) -> Result<Observation, SyntaxError> {
        let mut parts = vec![self.observation_or()?];
        while self.is_word("FOLLOWEDBY") {
            self.next += 1;
            parts.push(self.observation_or()?);
        }
        Ok(joined(parts, Observation::FollowedBy))
    }

    fn observation_or(&mut self) -> Result<Observation, SyntaxError> {
        let mut parts = vec![self.observation_and()?];
        while self.is_word("OR") {
            self.next += 1;
            parts.push(self.observation_and()?);
        }
        Ok(joined(parts, Observation::Or))
    }

    fn observation_and(&mut self) -> Result<Observation, SyntaxError> {
        let mut parts = vec![self.observation()?];
        while self.is_word("AND") {
            self.next += 1;
            parts.push(self.observation()?);
        }
        Ok(joined(parts, Observation::And))
    }

    /// `[ comparisonExpression ]` or `( observationExpressions )`, then any qualifiers.
    fn observation(&mut self) -> Result<Observation, SyntaxError> {
        self.deeper()?;
        let mut observation = if self.is_punct("[") {
            self.next += 1;
            let comparison = self.comparison_or()?;
            self.expect_punct("]", "an observation without its closing ]")?;
            Observation::Match(comparison)
        } else if self.is_punct("(") {
            self.next += 1;
            let inner = self.observations()?;
            self.expect_punct(")", "an observation group without its closing )")?;
            inner
        } else {
            return Err(self.error("an observation must start with [ or ("));
        };
        self.depth -= 1;
        while let Some(qualifier) = self.qualifier()? {
            observation = Observation::Qualified(Box::new(observation), qualifier);
        }
        Ok(observation)
    }

    fn qualifier(&mut self) -> Result<Option<Qualifier>, SyntaxError> {
        Ok(Some(match self.peek() {
            Some(Token::Word(w)) if w == "WITHIN" => {
                self.next += 1;
                let seconds = match self.take() {
                    Some(Token::Integer(n)) if n > 0 => n.to_string(),
                    Some(Token::Float(f)) if f > 0.0 => f.to_string(),
                    _ => return Err(self.error("WITHIN needs a positive number")),
                };
                self.expect_word("SECONDS", "WITHIN n needs SECONDS")?;
                Qualifier::Within(seconds)
            }
            Some(Token::Word(w)) if w == "REPEATS" => {
                self.next += 1;
                let times = match self.take() {
                    Some(Token::Integer(n)) if n > 0 => n,
                    _ => return Err(self.error("REPEATS needs a positive integer")),
                };
                self.expect_word("TIMES", "REPEATS n needs TIMES")?;
                Qualifier::Repeats(times)
            }
            Some(Token::Word(w)) if w == "START" => {
                self.next += 1;
                let Some(Token::Timestamp(start)) = self.take() else {
                    return Err(self.error("START needs a t'…' timestamp"));
                };
                self.expect_word("STOP", "START needs STOP")?;
                let Some(Token::Timestamp(stop)) = self.take() else {
                    return Err(self.error("STOP needs a t'…' timestamp"));
                };
                Qualifier::StartStop(start, stop)
            }
            _ => return Ok(None),
        }))
    }

    fn comparison_or(&mut self) -> Result<Comparison, SyntaxError> {
        let mut parts = vec![self.comparison_and()?];
        while self.is_word("OR") {
            self.next += 1;
            parts.push(self.comparison_and()?);
        }
        Ok(joined(parts, Comparison::Or))
    }

    fn comparison_and(&mut self) -> Result<Comparison, SyntaxError> {
        let mut parts = vec![self.property_test()?];
        while self.is_word("AND") {
            self.next += 1;
            parts.push(self.property_test()?);
        }
        Ok(joined(parts, Comparison::And))
    }

    /// `propTest`: a path compared with a literal, `EXISTS path`, or a parenthesized
    /// comparison expression.
    fn property_test(&mut self) -> Result<Comparison, SyntaxError> {
        if self.is_punct("(") {
            self.deeper()?;
            self.next += 1;
            let inner = self.comparison_or()?;
            self.expect_punct(")", "a comparison group without its closing )")?;
            self.depth -= 1;
            return Ok(inner);
        }
        if self.is_word("EXISTS") {
            self.next += 1;
            return Ok(Comparison::Exists(self.object_path()?));
        }
        let path = self.object_path()?;
        let negated = self.is_word("NOT");
        if negated {
            self.next += 1;
        }
        let operator = match self.take() {
            Some(Token::Punct("=")) => Operator::Equal,
            Some(Token::Punct("!=" | "<>")) => Operator::NotEqual,
            Some(Token::Punct("<")) => Operator::Less,
            Some(Token::Punct("<=")) => Operator::LessOrEqual,
            Some(Token::Punct(">")) => Operator::Greater,
            Some(Token::Punct(">=")) => Operator::GreaterOrEqual,
            Some(Token::Word(w)) => match w.as_str() {
                "IN" => Operator::In,
                "LIKE" => Operator::Like,
                "MATCHES" => Operator::Matches,
                "ISSUBSET" => Operator::IsSubset,
                "ISSUPERSET" => Operator::IsSuperset,
                _ => {
                    self.next -= 1;
                    return Err(self.error("an unknown comparison operator"));
                }
            },
            _ => {
                self.next -= 1;
                return Err(self.error("a comparison without its operator"));
            }
        };
        let value = if operator == Operator::In {
            self.set()?
        } else {
            self.literal()?
        };
        let fits = match operator {
            Operator::Like | Operator::Matches | Operator::IsSubset | Operator::IsSuperset => {
                matches!(value, Literal::Text(_))
            }
            _ => true,
        };
        if !fits {
            return Err(self.error("this operator compares with a string"));
        }
        Ok(Comparison::Test {
            path,
            negated,
            operator,
            value,
        })
    }

    fn set(&mut self) -> Result<Literal, SyntaxError> {
        self.expect_punct("(", "IN needs a ( set )")?;
        let mut members = vec![self.literal()?];
        while self.is_punct(",") {
            self.next += 1;
            members.push(self.literal()?);
        }
        self.expect_punct(")", "a set without its closing )")?;
        Ok(Literal::Set(members))
    }

    fn literal(&mut self) -> Result<Literal, SyntaxError> {
        Ok(match self.take() {
            Some(Token::Text(text)) => Literal::Text(text),
            Some(Token::Integer(n)) => Literal::Integer(n),
            Some(Token::Float(f)) => Literal::Float(f),
            Some(Token::Binary(b)) => Literal::Binary(b),
            Some(Token::Hex(h)) => Literal::Hex(h),
            Some(Token::Timestamp(t)) => Literal::Timestamp(t),
            Some(Token::Word(w)) if w == "true" => Literal::Boolean(true),
            Some(Token::Word(w)) if w == "false" => Literal::Boolean(false),
            _ => {
                self.next -= 1;
                return Err(self.error("a comparison without a literal value"));
            }
        })
    }

    /// `objectType ':' firstPathComponent objectPathComponent*`.
    fn object_path(&mut self) -> Result<ObjectPath, SyntaxError> {
        let Some(Token::Word(object_type)) = self.take() else {
            self.next -= 1;
            return Err(self.error("an object path must start with its object type"));
        };
        self.expect_punct(":", "an object type without : and a property")?;
        let mut steps = vec![PathStep::Property(self.property()?)];
        loop {
            if self.is_punct(".") {
                self.next += 1;
                steps.push(PathStep::Property(self.property()?));
            } else if self.is_punct("[") {
                self.next += 1;
                let index = match self.take() {
                    Some(Token::Integer(n)) => Some(n),
                    Some(Token::Punct("*")) => None,
                    _ => {
                        self.next -= 1;
                        return Err(self.error("a list index must be a number or *"));
                    }
                };
                self.expect_punct("]", "a list index without its closing ]")?;
                steps.push(PathStep::Index(index));
            } else {
                return Ok(ObjectPath { object_type, steps });
            }
        }
    }

    fn property(&mut self) -> Result<String, SyntaxError> {
        match self.take() {
            Some(Token::Word(name) | Token::Text(name)) => Ok(name),
            _ => {
                self.next -= 1;
                Err(self.error("a path needs a property name"))
            }
        }
    }
}

/// One part as itself, several joined by `join`.
fn joined<T>(mut parts: Vec<T>, join: fn(Vec<T>) -> T) -> T {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        join(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(object_type: &str, properties: &[&str]) -> ObjectPath {
        ObjectPath {
            object_type: object_type.into(),
            steps: properties
                .iter()
                .map(|p| PathStep::Property((*p).into()))
                .collect(),
        }
    }

    fn equals(object_type: &str, properties: &[&str], value: &str) -> Comparison {
        Comparison::Test {
            path: path(object_type, properties),
            negated: false,
            operator: Operator::Equal,
            value: Literal::Text(value.into()),
        }
    }

    #[test]
    fn comparisons_and_observations_parse_with_the_grammars_precedence() {
        assert_eq!(
            parse("[ipv4-addr:value = '198.51.100.1']").unwrap(),
            Observation::Match(equals("ipv4-addr", &["value"], "198.51.100.1"))
        );
        assert_eq!(
            parse("[file:hashes.'SHA-256' = 'ab' OR file:hashes.MD5 = 'cd' AND file:name = 'x']")
                .unwrap(),
            Observation::Match(Comparison::Or(vec![
                equals("file", &["hashes", "SHA-256"], "ab"),
                Comparison::And(vec![
                    equals("file", &["hashes", "MD5"], "cd"),
                    equals("file", &["name"], "x"),
                ]),
            ]))
        );
        assert_eq!(
            parse("[url:value = 'a'] OR [url:value = 'b'] FOLLOWEDBY [url:value = 'c']").unwrap(),
            Observation::FollowedBy(vec![
                Observation::Or(vec![
                    Observation::Match(equals("url", &["value"], "a")),
                    Observation::Match(equals("url", &["value"], "b")),
                ]),
                Observation::Match(equals("url", &["value"], "c")),
            ])
        );
    }

    #[test]
    fn the_rest_of_the_language_parses() {
        for pattern in [
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_port > 1024]",
            "[email-message:to_refs[*].value LIKE '%@example.com'] WITHIN 300 SECONDS",
            "([process:pid IN (1, 2, 3)] AND [process:name MATCHES '^x$']) REPEATS 5 TIMES",
            "[x-custom:flag = true] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
            "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
            "[artifact:payload_bin = b'dGVzdA==' OR artifact:mime_type NOT = 'text/plain']",
            "[file:size >= 1500 AND file:x_ratio < 0.5]",
            "[windows-registry-key:values[0].data = h'ff00']",
            "[EXISTS user-account:user_id]",
            "[file:name = 'it\\'s \\\\here']",
        ] {
            parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
        let Observation::Match(Comparison::Test { value, .. }) =
            parse("[file:name = 'it\\'s \\\\here']").unwrap()
        else {
            panic!("one test");
        };
        assert_eq!(value, Literal::Text("it's \\here".into()));
        assert_eq!(
            path("file", &["hashes", "SHA-256"]).to_string(),
            "file:hashes.'SHA-256'"
        );
    }

    #[test]
    fn malformed_patterns_are_errors_naming_where() {
        for (pattern, reason) in [
            (
                "ipv4-addr:value = '1.2.3.4'",
                "an observation must start with [ or (",
            ),
            (
                "[ipv4-addr:value = '1.2.3.4'",
                "an observation without its closing ]",
            ),
            ("[ipv4-addr:value = '1.2.3.4]", "a string that does not end"),
            ("[ipv4-addr:value ~ 'x']", "a character patterns do not use"),
            (
                "[ipv4-addr:value = ]",
                "a comparison without a literal value",
            ),
            (
                "[ipv4-addr:value CONTAINS 'x']",
                "an unknown comparison operator",
            ),
            (
                "[ipv4-addr = 'x']",
                "an object type without : and a property",
            ),
            (
                "[url:value = 'a'] junk",
                "unexpected text after the pattern",
            ),
            (
                "[url:value = 'a'] WITHIN SECONDS",
                "WITHIN needs a positive number",
            ),
            ("[url:value LIKE 5]", "this operator compares with a string"),
            ("[url:value = 'a\\x']", "an escape other than \\' or \\\\"),
            ("", "an observation must start with [ or ("),
        ] {
            assert_eq!(
                parse(pattern).map_err(|e| e.reason),
                Err(reason),
                "{pattern}"
            );
        }
        let error = parse("[url:value = 'a'] junk").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unexpected text after the pattern at byte 18"
        );
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!("{}[url:value = 'a']{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(
            parse(&deep).map_err(|e| e.reason),
            Err("brackets nested too deep")
        );
        let deep = format!("[{}url:value = 'a'{}]", "(".repeat(40), ")".repeat(40));
        assert_eq!(
            parse(&deep).map_err(|e| e.reason),
            Err("brackets nested too deep")
        );
        let shallow = format!("{}[url:value = 'a']{}", "(".repeat(20), ")".repeat(20));
        assert!(parse(&shallow).is_ok());
        let long = format!("[url:value = '{}']", "a".repeat(MAX_PATTERN_BYTES));
        assert_eq!(parse(&long).map_err(|e| e.reason), Err("pattern too long"));
    }

    proptest::proptest! {
        /// Any text, however broken, is a tree or an error: never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "[\\[\\]()':.=<>!a-zA-Z0-9_\\- *\\\\,]{0,80}") {
            let _ = parse(&text);
        }
    }
}
