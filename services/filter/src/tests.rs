//! Every operator with a positive, a negative, a case and an "If not" case; groups; saved
//! filters inlined and cycles refused.

use std::collections::HashMap;

use xdr_proto::pb::{
    self, Event, FieldValue, FilterGroup, FilterNode, Operator, StringList, TiMatch,
    field_value::Kind, filter_group::Op, filter_node::Node, operand,
};

use super::*;

fn field(name: &str) -> pb::Operand {
    pb::Operand {
        kind: Some(operand::Kind::Field(name.into())),
    }
}

fn text(value: &str) -> pb::Operand {
    pb::Operand {
        kind: Some(operand::Kind::Constant(FieldValue {
            kind: Some(Kind::Text(value.into())),
        })),
    }
}

fn list(values: &[&str]) -> pb::Operand {
    pb::Operand {
        kind: Some(operand::Kind::List(StringList {
            values: values.iter().map(|v| v.to_string()).collect(),
        })),
    }
}

fn condition(left: &str, operator: Operator, right: pb::Operand) -> pb::Condition {
    pb::Condition {
        left: Some(field(left)),
        operator: operator as i32,
        right: vec![right],
        ..Default::default()
    }
}

fn node(condition: pb::Condition) -> FilterNode {
    FilterNode {
        node: Some(Node::Condition(condition)),
    }
}

fn group(op: Op, children: Vec<FilterNode>) -> FilterNode {
    FilterNode {
        node: Some(Node::Group(FilterGroup {
            op: op as i32,
            children,
        })),
    }
}

struct Saved(HashMap<String, pb::Filter>);

impl Definitions for Saved {
    fn saved(&self, id: &str) -> Option<pb::Filter> {
        self.0.get(id).cloned()
    }

    fn resource(&self, id: &str) -> Option<(pb::ResourceKind, String)> {
        resources()
            .iter()
            .find(|r| r.id == id)
            .map(|r| (r.kind(), r.tenant.clone()))
    }
}

/// Saved filters that count how often each is read.
struct Counted(Saved, std::cell::RefCell<HashMap<String, usize>>);

impl Definitions for Counted {
    fn saved(&self, id: &str) -> Option<pb::Filter> {
        *self.1.borrow_mut().entry(id.to_owned()).or_default() += 1;
        self.0.saved(id)
    }

    fn resource(&self, id: &str) -> Option<(pb::ResourceKind, String)> {
        resources()
            .iter()
            .find(|r| r.id == id)
            .map(|r| (r.kind(), r.tenant.clone()))
    }
}

/// One resource of each kind, with the entries the test event has (or lacks).
fn resources() -> Vec<pb::Resource> {
    use pb::{ResourceEntry, ResourceKind::*};
    let resource = |id: &str, kind: pb::ResourceKind, keys: &[&str]| pb::Resource {
        id: id.into(),
        name: id.into(),
        tenant: "Shared".into(),
        kind: kind as i32,
        entries: keys
            .iter()
            .map(|k| ResourceEntry {
                key: k.to_string(),
                values: [("CVE-2024-0001".to_owned(), "high".to_owned())].into(),
            })
            .collect(),
        ..Default::default()
    };
    vec![
        resource("blocked", ActiveList, &["192.0.2.77", "Admin"]),
        resource("pairs", Dictionary, &["192.0.2.771500"]),
        resource("context", ContextTable, &["vpn"]),
        resource("servers", AssetCategory, &["192.0.2.77"]),
        resource("admins", AdGroup, &["Admin"]),
        resource("vulnerable", Vulnerabilities, &["192.0.2.77"]),
    ]
}

fn none() -> Saved {
    Saved(HashMap::new())
}

fn event() -> Event {
    let mut fields = std::collections::BTreeMap::new();
    let mut set = |name: &str, kind: Kind| {
        fields.insert(name.to_owned(), FieldValue { kind: Some(kind) });
    };
    set("RequestUrl", Kind::Text("http://Fakess123.nu/Login".into()));
    set("SourceAddress", Kind::Text("192.0.2.77".into()));
    set("BytesIn", Kind::Integer(1500));
    set("Flags", Kind::Text("5".into()));
    set("User", Kind::Text("admin".into()));
    set(
        "Tags",
        Kind::List(StringList {
            values: vec!["vpn".into(), "Admin".into()],
        }),
    );
    Event {
        fields,
        ti: vec![TiMatch {
            category: "KL_Malicious_URL".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// (plain result, "do not match case" result, "If not" result) of one condition.
fn outcomes(condition: pb::Condition) -> (bool, bool, bool) {
    let run = |condition: pb::Condition| {
        compile(&node(condition), "Shared", &none())
            .unwrap()
            .matches(&event(), &resources::Resources::of(&resources()))
    };
    (
        run(condition.clone()),
        run(pb::Condition {
            ignore_case: true,
            ..condition.clone()
        }),
        run(pb::Condition {
            negate: true,
            ..condition
        }),
    )
}

#[test]
fn comparison_operators() {
    use Operator::*;
    assert_eq!(
        outcomes(condition("BytesIn", Eq, text("1500.0"))),
        (true, true, false),
        "numbers compare as numbers"
    );
    assert_eq!(
        outcomes(condition(
            "RequestUrl",
            Eq,
            text("http://fakess123.nu/login")
        )),
        (false, true, true)
    );
    assert_eq!(
        outcomes(condition("BytesIn", Lt, text("2000"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("BytesIn", Le, text("1500"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("BytesIn", Gt, text("1500"))),
        (false, false, true)
    );
    assert_eq!(
        outcomes(condition("BytesIn", Ge, text("1500"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", Lt, text("z"))),
        (false, false, true),
        "text is not ordered"
    );
    assert_eq!(
        outcomes(condition("Missing", Eq, text("x"))),
        (false, false, true),
        "a missing field matches nothing"
    );
}

#[test]
fn text_operators() {
    use Operator::*;
    assert_eq!(
        outcomes(condition("RequestUrl", Contains, text("fakess"))),
        (false, true, true)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", Contains, text("Fakess"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", StartsWith, text("http://"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", StartsWith, text("HTTP://"))),
        (false, true, true)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", EndsWith, text("/login"))),
        (false, true, true)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", Contains, list(&["nope", "Login"]))),
        (true, true, false),
        "any value of a list"
    );
    assert_eq!(
        outcomes(condition("RequestUrl", Match, text(r"^http://\w+\.nu/"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", Match, text("fakess123"))),
        (false, true, true)
    );
}

#[test]
fn network_bit_ti_and_list_operators() {
    use Operator::*;
    let subnet = outcomes(condition(
        "SourceAddress",
        InSubnet,
        list(&["10.0.0.0/8", "192.0.2.0/24"]),
    ));
    assert_eq!(subnet, (true, true, false));
    assert_eq!(
        outcomes(condition(
            "SourceAddress",
            InSubnet,
            text("198.51.100.0/24")
        )),
        (false, false, true)
    );
    assert_eq!(
        outcomes(condition("Flags", HasBit, list(&["0", "2"]))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("Flags", HasBit, text("1"))),
        (false, false, true)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", HasBit, text("1"))),
        (false, false, true),
        "not a number"
    );
    assert_eq!(
        outcomes(condition("Tags", Intersect, list(&["admin", "ops"]))),
        (false, true, true)
    );
    assert_eq!(
        outcomes(condition("Tags", Intersect, list(&["vpn"]))),
        (true, true, false)
    );
    let ti = |categories: &[&str]| pb::Condition {
        left: None,
        operator: TiDetect as i32,
        right: if categories.is_empty() {
            vec![]
        } else {
            vec![list(categories)]
        },
        ..Default::default()
    };
    assert_eq!(outcomes(ti(&[])), (true, true, false));
    assert_eq!(outcomes(ti(&["KL_Malicious_URL"])), (true, true, false));
    assert_eq!(outcomes(ti(&["KL_IP_Reputation"])), (false, false, true));
}

#[test]
fn groups_combine_conditions() {
    let yes = node(condition("BytesIn", Operator::Eq, text("1500")));
    let no = node(condition("BytesIn", Operator::Eq, text("1")));
    let run = |filter: FilterNode| {
        compile(&filter, "Shared", &none())
            .unwrap()
            .matches(&event(), &resources::Resources::of(&resources()))
    };
    assert!(run(group(Op::And, vec![yes.clone(), yes.clone()])));
    assert!(!run(group(Op::And, vec![yes.clone(), no.clone()])));
    assert!(run(group(Op::Or, vec![no.clone(), yes.clone()])));
    assert!(run(group(Op::Not, vec![no.clone()])));
    assert!(compile(&group(Op::Not, vec![yes.clone(), no]), "Shared", &none()).is_err());
}

#[test]
fn bad_filters_name_the_place() {
    let error = |filter: FilterNode| compile(&filter, "Shared", &none()).unwrap_err().field;
    assert_eq!(
        error(group(
            Op::And,
            vec![node(condition("RequestUrl", Operator::Match, text("(")))]
        )),
        "filter.group.children[0].condition.right[0]"
    );
    assert_eq!(
        error(node(condition(
            "SourceAddress",
            Operator::InSubnet,
            text("10.0.0.0/99")
        ))),
        "filter.condition.right[0]"
    );
    assert_eq!(
        error(node(condition("x", Operator::Unspecified, text("list")))),
        "filter.condition.operator"
    );
    assert_eq!(error(FilterNode { node: None }), "filter");
}

#[test]
fn saved_filters_are_inlined_and_cycles_refused() {
    let mut theirs = saved_filter("theirs", reference("big"));
    theirs.1.tenant = "Other".into();
    let saved = Saved(HashMap::from([
        saved_filter(
            "big",
            node(condition("BytesIn", Operator::Gt, text("1000"))),
        ),
        saved_filter("outer", group(Op::And, vec![reference("big")])),
        saved_filter("a", reference("b")),
        saved_filter("b", reference("a")),
        theirs,
    ]));
    assert!(
        compile(&reference("outer"), "Shared", &saved)
            .unwrap()
            .matches(&event(), &resources::Resources::of(&resources()))
    );
    let cycle = compile(&reference("a"), "Shared", &saved).unwrap_err();
    assert!(cycle.reason.contains("a → b → a"), "{cycle}");
    assert!(compile(&reference("missing"), "Shared", &saved).is_err());
    assert!(compile(&reference("theirs"), "Mine", &saved).is_err());
}

fn saved_filter(id: &str, root: FilterNode) -> (String, pb::Filter) {
    (
        id.to_owned(),
        pb::Filter {
            id: id.into(),
            name: id.into(),
            tenant: "Shared".into(),
            root: Some(root),
            ..Default::default()
        },
    )
}

fn reference(id: &str) -> FilterNode {
    FilterNode {
        node: Some(Node::FilterId(id.into())),
    }
}

#[test]
fn a_saved_filter_is_compiled_once_however_often_it_is_named() {
    let leaf = node(condition("BytesIn", Operator::Gt, text("1000")));
    let mut filters = HashMap::from([saved_filter("leaf", leaf)]);
    // Each level names the one below twice: 2^10 uses of `leaf`, 11 filters.
    for level in 1..=10 {
        let below = if level == 1 {
            "leaf".to_owned()
        } else {
            format!("l{}", level - 1)
        };
        let root = group(Op::Or, vec![reference(&below), reference(&below)]);
        filters.extend([saved_filter(&format!("l{level}"), root)]);
    }
    let counted = Counted(Saved(filters), Default::default());
    let compiled = compile(&reference("l10"), "Shared", &counted).expect("2048 terms fit");
    assert!(compiled.matches(&event(), &resources::Resources::of(&resources())));
    let reads = counted.1.borrow();
    assert!(reads.values().all(|&n| n == 1), "{reads:?}");
    assert_eq!(reads.len(), 11);
}

#[test]
fn depth_and_expanded_size_are_bounded() {
    let leaf = node(condition("BytesIn", Operator::Gt, text("1000")));
    let mut nested = leaf.clone();
    for _ in 0..MAX_DEPTH {
        nested = group(Op::And, vec![nested]);
    }
    let deep = compile(&nested, "Shared", &Saved(HashMap::new())).unwrap_err();
    assert!(deep.reason.contains("nested deeper than 32"), "{deep}");
    assert!(
        deep.to_string().len() < 400,
        "the path is shortened: {deep}"
    );

    let values: Vec<String> = (0..MAX_TERMS).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let wide = node(condition("BytesIn", Operator::Eq, list(&refs)));
    let large = compile(&wide, "Shared", &Saved(HashMap::new())).unwrap_err();
    assert!(large.reason.contains("more than 10000"), "{large}");
}

fn resource(id: &str) -> pb::Operand {
    pb::Operand {
        kind: Some(operand::Kind::ResourceId(id.into())),
    }
}

#[test]
fn resource_operators() {
    use Operator::*;
    assert_eq!(
        outcomes(condition(
            "SourceAddress",
            InActiveList,
            resource("blocked")
        )),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("User", InActiveList, resource("blocked"))),
        (false, false, true),
        "\"do not match case\" is ignored for active lists"
    );
    let mut dictionary = condition("SourceAddress", InDictionary, resource("pairs"));
    dictionary.right.push(field("BytesIn"));
    assert_eq!(
        outcomes(dictionary),
        (true, true, false),
        "the key joins the selected fields"
    );
    assert_eq!(
        outcomes(condition("SourceAddress", InDictionary, resource("pairs"))),
        (false, false, true)
    );
    assert_eq!(
        outcomes(condition("Tags", InContextTable, resource("context"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("SourceAddress", InCategory, resource("servers"))),
        (true, true, false)
    );
    assert_eq!(
        outcomes(condition("RequestUrl", InCategory, resource("servers"))),
        (false, false, true)
    );
    assert_eq!(
        outcomes(condition(
            "User",
            InActiveDirectoryGroup,
            resource("admins")
        )),
        (false, false, true),
        "\"do not match case\" is ignored for AD groups"
    );
    assert_eq!(
        outcomes(condition(
            "SourceAddress",
            HasVulnerability,
            resource("vulnerable")
        )),
        (true, true, false)
    );
    let mut named = condition("SourceAddress", HasVulnerability, resource("vulnerable"));
    named.right.push(text("CVE-1999-0001"));
    assert_eq!(
        outcomes(named.clone()),
        (false, false, true),
        "not that vulnerability"
    );
    named.right.push(text("CVE-2024-0001"));
    assert_eq!(outcomes(named), (true, true, false));
}

#[test]
fn resources_are_checked_at_compile_time() {
    let error = |filter: FilterNode| compile(&filter, "Shared", &none()).unwrap_err();
    let wrong_kind = error(node(condition(
        "SourceAddress",
        Operator::InActiveList,
        resource("servers"),
    )));
    assert_eq!(wrong_kind.field, "filter.condition.right[0].resource_id");
    assert!(
        wrong_kind.reason.contains("RESOURCE_KIND_ASSET_CATEGORY"),
        "{wrong_kind}"
    );
    let missing = error(node(condition(
        "SourceAddress",
        Operator::InActiveList,
        resource("nope"),
    )));
    assert!(missing.reason.contains("no resource `nope`"), "{missing}");
    let unnamed = error(node(condition(
        "SourceAddress",
        Operator::InActiveList,
        text("x"),
    )));
    assert_eq!(unnamed.field, "filter.condition.right");
    let misplaced = error(node(condition(
        "SourceAddress",
        Operator::Eq,
        resource("blocked"),
    )));
    assert_eq!(misplaced.field, "filter.condition.right[0].resource_id");
}
