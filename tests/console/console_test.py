"""The web console in a real browser: headless Chromium from Debian driven over WebDriver
(selenium). Started by tests/tests/mesh/console.rs against a mesh it set up: the seed's
event raised an alert, the UserGate emulator holds the appliance's state, and people of
several roles and tenants have passwords. Every step asserts what a person would see; a
screenshot of each page goes to the screenshot folder. Exit 0: every check held.

    console_test.py CONFIG_JSON
"""

import http.client
import json
import re
import sys
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

CONFIG = json.loads(sys.argv[1])
BASE = CONFIG["console"]  # http://HOST:8080
SHOTS = CONFIG["screenshots"]
WAIT = 20


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CONFIG["chromium"]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CONFIG["chromedriver"]), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def wait_for_text(driver, wanted):
    """Waits (bounded) until the page shows `wanted`; a page being replaced is looked at again."""
    WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,
                                                    WebDriverException)).until(
        lambda d: wanted in d.find_element(By.TAG_NAME, "body").text)


def gone(element):
    """A wait condition: `element`'s page has been replaced. Chromium says so as a stale
    element, or, while the new document comes in, as a node of another document."""
    def replaced(_):
        try:
            element.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
    return replaced


def follow(driver, element):
    """Clicks a link or button and waits until the page it leads to has replaced this one."""
    element.click()
    WebDriverWait(driver, WAIT).until(gone(element))


def submit(driver, css):
    """Clicks the button `css` finds, as `follow`."""
    follow(driver, driver.find_element(By.CSS_SELECTOR, css))


def link(driver, text):
    """Follows the link named `text`."""
    follow(driver, driver.find_element(By.LINK_TEXT, text))


def shot(driver, name):
    driver.save_screenshot(f"{SHOTS}/{name}.png")


def text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def check(condition, what, driver=None):
    if not condition:
        detail = f"\n--- page {driver.current_url} ---\n{text(driver)}" if driver else ""
        raise AssertionError(what + detail)


def sign_in(driver, user, password):
    driver.delete_all_cookies()
    driver.get(f"{BASE}/console/alerts")
    check("/console/sign-in" in driver.current_url, "the console asks to sign in first", driver)
    driver.find_element(By.NAME, "user").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    submit(driver, "form[action='/console/sign-in'] button")
    WebDriverWait(driver, WAIT).until(seen.url_contains("/console/alerts"))
    check(user in text(driver), f"{user} is shown as signed in", driver)


def no_sideways_scroll(driver, what):
    wide = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    check(wide[0] <= wide[1], f"{what}: the page scrolls sideways ({wide[0]} > {wide[1]})", driver)


def every_control_labelled(driver, what):
    unlabelled = driver.execute_script("""
        return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
          .filter(e => e.labels.length === 0).map(e => e.name)""")
    check(not unlabelled, f"{what}: controls without a label: {unlabelled}", driver)


def open_alert(driver, title_part):
    driver.get(f"{BASE}/console/alerts")
    link = WebDriverWait(driver, WAIT).until(
        seen.presence_of_element_located((By.PARTIAL_LINK_TEXT, title_part)))
    follow(driver, link)
    WebDriverWait(driver, WAIT).until(seen.url_contains("/console/alerts/"))
    return driver.current_url.rsplit("/", 1)[-1]


def emulator_state():
    with urllib.request.urlopen(f"{CONFIG['usergate']}/control/state", timeout=10) as answer:
        return json.load(answer)


def items(state, name):
    return sorted(i for l in state["lists"] if l["name"] == name for i in l["items"])


def post_form(path, cookie, fields):
    """A form POSTed outside the browser, with the browser's session cookie: the status and
    the page."""
    url = urllib.parse.urlparse(BASE)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT)
    connection.request("POST", path, urllib.parse.urlencode(fields), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"xdr_session={cookie}",
    })
    answer = connection.getresponse()
    return answer.status, answer.read().decode(), answer.getheader("Set-Cookie")


def tier1_blocks_the_host_from_the_alert(driver):
    sign_in(driver, "ann", CONFIG["password"])
    shot(driver, "01-alerts")
    every_control_labelled(driver, "alerts")
    check("KL_BotnetCnC_URL" in text(driver), "the seed's alert is listed", driver)
    alert_id = open_alert(driver, "KL_BotnetCnC_URL")
    page = text(driver)
    for value in ("http://fakess123bn.nu", "fakess123bn.nu", "KL_BotnetCnC_URL"):
        check(value in page, f"the alert card shows {value}", driver)
    check("Status and assignee" in page, "a Tier 1 analyst may change the status", driver)
    every_control_labelled(driver, "alert card")
    shot(driver, "02-alert-card")

    # A dry run first: what would be sent, and nothing sent.
    Select(driver.find_element(By.NAME, "playbook")).select_by_visible_text("Block host via UserGate")
    submit(driver, "button[value=dry-run]")
    wait_for_text(driver, "Dry run — nothing was sent")
    check("What would be sent to UserGate" in text(driver), "the dry run previews the calls",
          driver)
    check(items(emulator_state(), "XDR blocked URLs") == [], "a dry run sends nothing")
    shot(driver, "03-dry-run")

    # Then the launch: its outcome, its History entry, and the items on the appliance.
    Select(driver.find_element(By.NAME, "playbook")).select_by_visible_text("Block host via UserGate")
    submit(driver, "button[value=launch]")
    wait_for_text(driver, "Succeeded")
    history = driver.find_element(By.ID, "history").text
    check("launched usergate.block_host" in history and "ann" in history,
          f"the History shows the launch: {history}", driver)
    check("succeeded" in history, "the History shows the outcome", driver)
    shot(driver, "04-launched")
    state = emulator_state()
    check(items(state, "XDR blocked URLs") == ["fakess123bn.nu", "http://fakess123bn.nu"],
          f"the emulator holds the URL and domain: {state['lists']}")

    # Status and assignee, through the form.
    Select(driver.find_element(By.NAME, "status")).select_by_visible_text("in progress")
    assignee = driver.find_element(By.NAME, "assignee")
    assignee.clear()
    assignee.send_keys("ann")
    submit(driver, "form[action$='/update'] button")
    wait_for_text(driver, "Saved.")
    check("assigned to ann" in driver.find_element(By.ID, "history").text,
          "the History shows the assignment", driver)

    # A form without the session's CSRF value changes nothing.
    cookie = driver.get_cookie("xdr_session")["value"]
    status, page, _ = post_form(f"/console/alerts/{alert_id}/update", cookie,
                                {"status": "ALERT_STATUS_CLOSED", "assignee": ""})
    check(status == 403 and "nothing was changed" in page, f"a forged form is refused: {status}")

    # Events: the seed's SELECT, and from the event to its alert.
    driver.get(f"{BASE}/console/events")
    every_control_labelled(driver, "events")
    submit(driver, "form[action='/console/events'] button")
    wait_for_text(driver, "KL_BotnetCnC_URL")
    check("http://fakess123bn.nu" in text(driver), "the search finds the seed's event", driver)
    shot(driver, "05-events")
    link(driver, "Its alert")
    WebDriverWait(driver, WAIT).until(seen.url_contains(f"/console/alerts/{alert_id}"))

    # A refused query is shown with the checker's message.
    driver.get(f"{BASE}/console/events?sql=" + urllib.parse.quote("DELETE FROM events"))
    check("error" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").get_attribute("class"),
          "a refused query shows the checker's message", driver)
    shot(driver, "06-refused-query")

    for page_name in ("enrichment", "threatintel", "collectors", "incidents"):
        driver.get(f"{BASE}/console/{page_name}")
        check(driver.title.endswith("xdr console"), f"{page_name} opens", driver)
        every_control_labelled(driver, page_name)
        shot(driver, f"07-{page_name}")
    check(not driver.find_elements(By.LINK_TEXT, "Secrets"), "secrets are not offered to a Tier 1")

    # Both viewports, no sideways scrolling.
    for width, height in ((1280, 800), (390, 844)):
        driver.set_window_size(width, height)
        for path in ("/console/alerts", f"/console/alerts/{alert_id}",
                     "/console/events?sql=" + urllib.parse.quote(CONFIG["select"]),
                     "/console/enrichment"):
            driver.get(BASE + path)
            no_sideways_scroll(driver, f"{path} at {width}x{height}")
        shot(driver, f"08-enrichment-{width}x{height}")
        driver.get(f"{BASE}/console/alerts/{alert_id}")
        shot(driver, f"08-alert-card-{width}x{height}")
    driver.set_window_size(1280, 800)

    # Keyboard: Tab from the top reaches the first section link.
    driver.get(f"{BASE}/console/alerts")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    body.send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    check(focused.tag_name == "a", "Tab moves through the links", driver)

    # Signing out ends the session: the old cookie no longer opens a page.
    submit(driver, "form[action='/console/sign-out'] button")
    WebDriverWait(driver, WAIT).until(seen.url_contains("/console/sign-in"))
    status, _, _ = post_form(f"/console/alerts/{alert_id}/update", cookie, {})
    check(status == 303, f"a signed-out session is sent to sign in: {status}")
    return alert_id


def administrator_sees_secrets_by_name_only(driver):
    sign_in(driver, "adam", CONFIG["password"])
    link(driver, "Secrets")
    page = text(driver)
    check("usergate" in page and "credentials" in page, "the secret is listed by name and type",
          driver)
    check(CONFIG["usergate_password"] not in driver.page_source, "no password on the page")
    shot(driver, "12-secrets")


def sign_in_with_token(driver, token):
    driver.delete_all_cookies()
    driver.get(f"{BASE}/console/sign-in")
    driver.find_element(By.NAME, "token").send_keys(token)
    submit(driver, "form[action='/console/sign-in'] button")
    WebDriverWait(driver, WAIT).until(seen.url_contains("/console/alerts"))


def field_error(driver, field_id):
    field = driver.find_element(By.ID, field_id)
    check(field.get_attribute("aria-invalid") == "true", f"{field_id} is marked invalid", driver)
    return driver.find_element(By.ID, f"{field_id}-error").text


def main_administrator_edits_a_rule_and_a_filter(driver):
    sign_in_with_token(driver, CONFIG["admin_token"])
    check("main-administrator" in text(driver), "an API token signs in", driver)
    link(driver, "Enrichment")
    check("Web requests" in text(driver), "the saved filter is listed", driver)
    link(driver, "Test CT enrichment")
    every_control_labelled(driver, "rule")

    def save(field, value):
        box = driver.find_element(By.NAME, field)
        box.clear()
        box.send_keys(value)
        submit(driver, "form[action^='/console/enrichment/rules'] button")

    save("rps", "many")
    check("a whole number" in field_error(driver, "rule-rps"), "a bad RPS is shown at its field",
          driver)
    save("rps", "1000")
    save("timeout_seconds", "100000")
    check("at most" in field_error(driver, "rule-timeout_seconds"),
          "the service's refusal is shown at the timeout field", driver)
    shot(driver, "13-rule-error")
    save("timeout_seconds", "30")
    wait_for_text(driver, "Saved.")

    driver.get(f"{BASE}/console/enrichment")
    link(driver, "Web requests")
    tree = driver.find_element(By.NAME, "root")
    check("OPERATOR_STARTS_WITH" in tree.get_attribute("value"), "the filter's tree is shown",
          driver)
    kept = tree.get_attribute("value")
    tree.clear()
    tree.send_keys('{"bogus": true}')
    submit(driver, "form[action^='/console/enrichment/filters'] button")
    check("bogus" in field_error(driver, "filter-root"), "a bad tree is refused at the field",
          driver)
    shot(driver, "14-filter-error")
    tree = driver.find_element(By.NAME, "root")
    tree.clear()
    tree.send_keys(kept.replace("http", "https"))
    submit(driver, "form[action^='/console/enrichment/filters'] button")
    wait_for_text(driver, "Saved.")
    check("https" in driver.find_element(By.NAME, "root").get_attribute("value"),
          "the filter keeps the change", driver)


def administrator_adds_to_internal_ti(driver):
    sign_in(driver, "adam", CONFIG["password"])
    driver.get(f"{BASE}/console/threatintel?value=" + urllib.parse.quote("http://fakess123bn.nu"))
    check("KL_BotnetCnC_URL" in text(driver), "a lookup shows the match", driver)
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/console/threatintel'][method=post]")
    value = form.find_element(By.NAME, "value")
    value.clear()
    value.send_keys("evil-console.example")
    form.find_element(By.NAME, "category").send_keys("KL_InternalTI_Domain")
    follow(driver, form.find_element(By.TAG_NAME, "button"))
    wait_for_text(driver, "added to InternalTI")
    driver.get(f"{BASE}/console/threatintel?value=evil-console.example")
    check("KL_InternalTI_Domain" in text(driver), "the added indicator is found", driver)
    shot(driver, "15-threatintel")
    driver.get(f"{BASE}/console/collectors")
    check("http-input" in text(driver), "the quickstart's collector is listed", driver)


def analyst_opens_the_incident(driver, alert_id):
    sign_in(driver, "ann", CONFIG["password"])
    link(driver, "Incidents")
    link(driver, "Botnet C&C traffic")
    check(alert_id in text(driver), "the incident lists its alert", driver)
    check(driver.find_elements(By.CSS_SELECTOR, "button[value=dry-run]"),
          "a playbook can be launched on the incident", driver)
    Select(driver.find_element(By.NAME, "status")).select_by_visible_text("in progress")
    submit(driver, "form[action$='/update'] button")
    wait_for_text(driver, "Saved.")
    check("status → in progress" in driver.find_element(By.ID, "history").text,
          "the incident's History shows the change", driver)
    Select(driver.find_element(By.NAME, "playbook")).select_by_visible_text("Block host via UserGate")
    submit(driver, "button[value=dry-run]")
    wait_for_text(driver, "Dry run — nothing was sent")
    shot(driver, "16-incident")


def a_session_ends_when_its_token_expires(driver):
    # A token of jo's that lasts 3 seconds, made by the Main administrator.
    made = urllib.request.Request(
        f"{BASE}/v1/people/tokens", method="POST",
        data=json.dumps({"user": "jo", "expiresInSeconds": 3}).encode(),
        headers={"Authorization": f"Bearer {CONFIG['admin_token']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(made, timeout=WAIT) as answer:
        short = json.load(answer)["secret"]
    sign_in_with_token(driver, short)
    check("junior-analyst" in text(driver), "the short-lived token signs in", driver)
    deadline = time.monotonic() + WAIT
    while "/console/sign-in" not in driver.current_url:
        check(time.monotonic() < deadline, "the session ends within 20 s of a 3 s token", driver)
        time.sleep(0.5)
        driver.get(f"{BASE}/console/alerts")


def junior_launches_but_does_not_change(driver, alert_id):
    sign_in(driver, "jo", CONFIG["password"])
    driver.get(f"{BASE}/console/alerts/{alert_id}")
    page = text(driver)
    check("Launch playbook" in page and driver.find_elements(By.CSS_SELECTOR, "button[value=launch]"),
          "a junior analyst may launch", driver)
    check("Status and assignee" not in page, "a junior analyst may not change the status", driver)
    shot(driver, "09-junior")


def observer_sees_no_launch_and_a_forged_launch_is_refused(driver, alert_id):
    sign_in(driver, "olga", CONFIG["password"])
    driver.get(f"{BASE}/console/alerts/{alert_id}")
    check(not driver.find_elements(By.CSS_SELECTOR, "button[value=launch]"),
          "an observer sees no launch button", driver)
    check("may not launch playbooks" in text(driver), "an observer is told why", driver)
    shot(driver, "10-observer")
    # The page hides the button; the service refuses the launch itself.
    cookie = driver.get_cookie("xdr_session")["value"]
    csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
    before = emulator_state()["calls"]
    status, page, _ = post_form(f"/console/alerts/{alert_id}/launch", cookie, {
        "csrf": csrf, "playbook": "usergate.block_host", "mode": "launch"})
    check(status == 403, f"a forged launch is refused with 403, got {status}: {page[:300]}")
    check("launch playbooks" in page, "the refusal names the permission")
    check(emulator_state()["calls"] == before, "nothing reached the appliance")


def another_tenant_sees_nothing_of_main(driver, alert_id):
    sign_in(driver, "tess", CONFIG["password"])
    check("KL_BotnetCnC_URL" not in text(driver), "Main's alert is not listed for Other", driver)
    check("Other's alert" in text(driver), "Other's own alert is listed", driver)
    driver.get(f"{BASE}/console/alerts/{alert_id}")
    check("fakess123bn.nu" not in text(driver), "Main's alert does not open for Other", driver)
    shot(driver, "11-other-tenant")


def sign_in_failures_and_cookie_flags():
    url = urllib.parse.urlparse(BASE)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=WAIT)
    connection.request("POST", "/console/sign-in",
                       urllib.parse.urlencode({"user": "ann", "password": CONFIG["password"]}),
                       {"Content-Type": "application/x-www-form-urlencoded"})
    answer = connection.getresponse()
    answer.read()
    cookie = answer.getheader("Set-Cookie") or ""
    check(answer.status == 303, f"a sign-in redirects: {answer.status}")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="):
        check(flag in cookie, f"the session cookie has {flag}: {cookie}")
    connection.request("POST", "/console/sign-in",
                       urllib.parse.urlencode({"user": "ann", "password": "wrong password!"}),
                       {"Content-Type": "application/x-www-form-urlencoded"})
    answer = connection.getresponse()
    page = answer.read().decode()
    check(answer.status == 401 and "wrong user name or password" in page,
          f"a wrong password is refused: {answer.status}")
    connection.request("POST", "/console/sign-in",
                       urllib.parse.urlencode({"user": "ann", "password": CONFIG["password"]}),
                       {"Content-Type": "application/x-www-form-urlencoded",
                        "Origin": "http://attacker.example"})
    answer = connection.getresponse()
    answer.read()
    check(answer.status == 403 and not answer.getheader("Set-Cookie"),
          f"a sign-in posted from another site is refused: {answer.status}")


def main():
    sign_in_failures_and_cookie_flags()
    driver = browser()
    try:
        alert_id = tier1_blocks_the_host_from_the_alert(driver)
        junior_launches_but_does_not_change(driver, alert_id)
        observer_sees_no_launch_and_a_forged_launch_is_refused(driver, alert_id)
        another_tenant_sees_nothing_of_main(driver, alert_id)
        administrator_sees_secrets_by_name_only(driver)
        administrator_adds_to_internal_ti(driver)
        main_administrator_edits_a_rule_and_a_filter(driver)
        analyst_opens_the_incident(driver, alert_id)
        a_session_ends_when_its_token_expires(driver)
    except Exception:
        shot(driver, "failure")
        raise
    finally:
        driver.quit()
    print("console: every check held")


if __name__ == "__main__":
    main()
