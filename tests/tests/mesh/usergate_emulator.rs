//! The UserGate emulator speaks XML-RPC as Python's standard `xmlrpc.client` does (the seed's
//! own scripts are Python) and refuses what an appliance refuses: a bad or expired token, an
//! unknown list, wrong argument counts or types, a name taken, an item present, a list fed
//! from a URL — so the playbook client cannot pass against it by accident.

use std::process::Command;

use serde_json::json;
use xdr_tests::playbook::{USERGATE_LOGIN, UserGate};

const SCRIPT: &str = r#"
import sys, xmlrpc.client as rpc
url, login, password = sys.argv[1:4]
ug = rpc.ServerProxy(url)

def fault(call):
    try:
        call()
    except rpc.Fault as f:
        return f.faultCode
    return None

print("bad-password", fault(lambda: ug.v2.core.login(login, "wrong", {"origin": "py"})))
print("no-origin", fault(lambda: ug.v2.core.login(login, password, {})))
token = ug.v2.core.login(login, password, {"origin": "py"})["auth_token"]
print("bad-token", fault(lambda: ug.v2.nlists.list("nope", "network", 0, 100, {})))
print("wrong-count", fault(lambda: ug.v2.nlists.list(token, "network")))
print("wrong-type", fault(lambda: ug.v2.nlists.list(token, "network", "0", 100, {})))
print("unknown-method", fault(lambda: ug.v9.reboot(token)))
list_id = ug.v2.nlists.add(token, {"name": "py hosts", "type": "network"})
print("name-taken", fault(lambda: ug.v2.nlists.add(token, {"name": "py hosts", "type": "network"})))
print("unknown-list", fault(lambda: ug.v2.nlists.list.add.items(token, 99999, [{"value": "192.0.2.1"}])))
print("added", ug.v2.nlists.list.add.items(token, list_id, [{"value": "192.0.2.1"}]))
print("present", fault(lambda: ug.v2.nlists.list.add.items(token, list_id, [{"value": "192.0.2.1"}, {"value": "192.0.2.2"}])))
print("not-an-address", fault(lambda: ug.v2.nlists.list.add.items(token, list_id, [{"value": "evil.example"}])))
print("items", [i["value"] for i in ug.v2.nlists.list.list(token, list_id, 0, 100, "", [])["items"]])
print("bad-rule-target", fault(lambda: ug.v1.firewall.rule.add(token, {"name": "r", "action": "drop", "dst_ips": [["list_id", 99999]]})))
print("logout", ug.v2.core.logout(token))
print("after-logout", fault(lambda: ug.v2.core.session.ping(token)))
"#;

#[test]
fn pythons_xmlrpc_client_gets_the_faults_an_appliance_gives() {
    let usergate = UserGate::start("py-secret", "5m");
    usergate.control(
        "POST",
        "lists",
        Some(json!({"name": "fed", "type": "url", "url": "http://feeds.example/x"})),
    );
    let output = Command::new("python3")
        .args(["-c", SCRIPT, &usergate.url(), USERGATE_LOGIN, "py-secret"])
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = [
        "bad-password 5",
        "no-origin -32602",
        "bad-token 104",
        "wrong-count -32602",
        "wrong-type -32602",
        "unknown-method -32601",
        "name-taken 409",
        "unknown-list 404",
        "added 1",
        "present 2001",
        "not-an-address -32602",
        "items ['192.0.2.1']",
        "bad-rule-target -32602",
        "logout True",
        "after-logout 104",
    ];
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines, expected, "{said}");

    // A list fed from a URL takes no items (fault 2003).
    let fed = Command::new("python3")
        .args([
            "-c",
            r#"
import sys, xmlrpc.client as rpc
ug = rpc.ServerProxy(sys.argv[1])
token = ug.v2.core.login(sys.argv[2], sys.argv[3], {"origin": "py"})["auth_token"]
fed = [l for l in ug.v2.nlists.list(token, "url", 0, 100, {})["items"] if l["name"] == "fed"][0]
try:
    ug.v2.nlists.list.add.items(token, fed["id"], [{"value": "evil.example"}])
except rpc.Fault as f:
    print(f.faultCode, fed["editable"])
"#,
            &usergate.url(),
            USERGATE_LOGIN,
            "py-secret",
        ])
        .output()
        .expect("python3 runs");
    assert_eq!(
        String::from_utf8_lossy(&fed.stdout).trim(),
        "2003 False",
        "{fed:?}"
    );
}
