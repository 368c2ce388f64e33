//! The dashboard's accessibility check, in the same headless Chromium and
//! CDP client as the end-to-end test (this module is its child, so it uses
//! that harness as it is): axe-core, from npm, injected into every main page
//! in English and in Chinese, and a keyboard walk through each page with the
//! Tab key. On the Chinese pages the server's sentences (explain, at-risk)
//! are checked to be Chinese, with no raw code.
//!
//! axe-core is installed by `.ci/run` (`npm ci` in
//! `crates/penalty-server/tests/a11y/`, whose package-lock.json pins it).
//! Outside CI a machine without Chromium or without that `node_modules`
//! skips this test with a message naming what is missing; in CI (`CI=true`)
//! the same absence fails it, so the check can never silently not run there.

use std::path::PathBuf;

use serde_json::Value;

use super::super::support::{OPERATOR, SELLER_S01};
use super::{api_as, serve_the_demo, Cdp};

/// The instant of the seller's end-to-end test: S01 has orders at risk and
/// notices then.
const AT: &str = "2026-03-20T00:00:00+08:00";

/// The WCAG 2.0/2.1 A and AA rules and axe's best practices.
const AXE_TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/// Rules turned off, each with its reason. None today: every rule of the
/// tags above runs, and a violation of any impact fails the test.
const AXE_DISABLED: &[(&str, &str)] = &[];

fn axe_script() -> Result<PathBuf, String> {
    let path = super::super::support::repo_root()
        .join("crates/penalty-server/tests/a11y/node_modules/axe-core/axe.min.js");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: install axe-core with `npm ci --prefix crates/penalty-server/tests/a11y` (.ci/run does)",
            path.display()
        ))
    }
}

fn find_chromium() -> Result<PathBuf, String> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&paths).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "headless Chromium was not found on PATH: install it with `apt-get install -y chromium` (.ci/run does)"
                .to_string()
        })
}

/// What the test needs from outside cargo, or `None` when it must be
/// skipped (outside CI only; in CI a missing piece fails).
fn requirements() -> Option<(PathBuf, String)> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    match (find_chromium(), axe_script()) {
        (Ok(browser), Ok(axe)) => Some((browser, std::fs::read_to_string(axe).unwrap())),
        (browser, axe) => {
            let missing: Vec<String> = [browser.err(), axe.err()].into_iter().flatten().collect();
            let message = missing.join("; ");
            assert!(
                !in_ci,
                "the accessibility check cannot run in CI: {message}"
            );
            eprintln!("SKIPPED: the dashboard's accessibility check: {message}");
            None
        }
    }
}

/// Runs axe-core on the page loaded now and fails, listing every
/// violation (rule, impact, help, the first elements), if there is any.
fn assert_axe_clean(cdp: &mut Cdp, axe: &str, page: &str) {
    if cdp.eval("typeof window.axe === 'object'") != Value::Bool(true) {
        let injected = cdp.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": axe, "returnByValue": true}),
        );
        assert!(
            injected.get("exceptionDetails").is_none(),
            "injecting axe-core: {injected}"
        );
    }
    let mut rules = serde_json::Map::new();
    for (rule, _why) in AXE_DISABLED {
        rules.insert((*rule).to_string(), serde_json::json!({"enabled": false}));
    }
    let options = serde_json::json!({
        "runOnly": {"type": "tag", "values": AXE_TAGS},
        "rules": rules,
    });
    let result = cdp.eval(&format!(
        "axe.run(document, {options}).then(function (r) {{ return {{ passes: r.passes.length, \
           incomplete: r.incomplete.map(function (v) {{ return v.id + ' x' + v.nodes.length + ' ' + v.nodes.slice(0, 3).map(function (n) {{ \
             return n.target.join(' ') + ': ' + (n.any[0] && n.any[0].message); }}).join(' | '); }}), \
           violations: r.violations.map(function (v) {{ \
           return {{ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(function (n) {{ \
             return n.target.join(' ') + ' :: ' + n.failureSummary; }}) }}; }}) }}; }})"
    ));
    // A run that checked nothing would pass whatever the page: the rules
    // that held are counted too.
    let passes = result["passes"].as_u64().unwrap_or(0);
    assert!(
        passes >= 10,
        "axe-core checked almost nothing on {page}: {result}"
    );
    eprintln!(
        "{page}: axe-core: {passes} rules pass; left for a person to judge: {}",
        result["incomplete"]
    );
    let violations = result["violations"].as_array().expect("axe's violations");
    if !violations.is_empty() {
        let listed: Vec<String> = violations
            .iter()
            .map(|v| {
                format!(
                    "  {} ({}): {}\n    {}",
                    v["id"].as_str().unwrap_or(""),
                    v["impact"].as_str().unwrap_or(""),
                    v["help"].as_str().unwrap_or(""),
                    v["nodes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|n| n.as_str().unwrap_or("").replace('\n', " "))
                        .collect::<Vec<_>>()
                        .join("\n    ")
                )
            })
            .collect();
        panic!(
            "axe-core finds {} violation(s) on {page}:\n{}",
            violations.len(),
            listed.join("\n")
        );
    }
}

/// Presses and releases a key through CDP's input domain: the browser
/// handles it as a person's key press (focus moves, forms submit).
fn press(cdp: &mut Cdp, key: &str, code: &str, key_code: u32, shift: bool) {
    let text = if key == "Enter" { "\r" } else { "" };
    let modifiers = if shift { 8 } else { 0 };
    for kind in ["rawKeyDown", "char", "keyUp"] {
        if kind == "char" && text.is_empty() {
            continue;
        }
        cdp.call(
            "Input.dispatchKeyEvent",
            serde_json::json!({"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code,
                "nativeVirtualKeyCode": key_code, "modifiers": modifiers, "text": if kind == "char" { text } else { "" }}),
        );
    }
}

/// Tabs from the top of the page through every focusable element and back
/// to the start: every interactive element that is shown is reached, and
/// each one shows where the focus is (an outline or a box shadow that it
/// does not have unfocused).
fn assert_keyboard_walk(cdp: &mut Cdp, page: &str) {
    // Everything a pointer can use, as the page shows it now.
    const INTERACTIVE: &str = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), \
                               select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";
    let total = cdp.eval(&format!(
        "(function () {{ var n = 0; document.querySelectorAll({sel}).forEach(function (e) {{ \
           var r = e.getBoundingClientRect(); \
           if (r.width > 0 || r.height > 0) {{ e.setAttribute('data-a11y-expected', ''); n += 1; }} }}); \
           if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0); return n; }})()",
        sel = Value::from(INTERACTIVE)
    ));
    let total = total.as_u64().unwrap();
    assert!(total > 0, "{page} has no interactive element");
    let mut reached = 0u64;
    let mut presses = 0u64;
    loop {
        press(cdp, "Tab", "Tab", 9, false);
        presses += 1;
        // For the element now focused: whether it was already reached (the
        // walk went round), whether it is an expected one, and whether its
        // focus is visible (compared with its own unfocused style).
        let now = cdp.eval(
            "(function () { var e = document.activeElement; \
               if (!e || e === document.body || e === document.documentElement) return { none: true }; \
               if (e === window.__a11yLast) return { same: true }; \
               window.__a11yLast = e; \
               if (e.hasAttribute('data-a11y-reached')) return { again: true }; \
               e.setAttribute('data-a11y-reached', ''); \
               var s = getComputedStyle(e); \
               var outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0; \
               var shadow = s.boxShadow && s.boxShadow !== 'none'; \
               var r = e.getBoundingClientRect(); \
               return { expected: e.hasAttribute('data-a11y-expected'), visible: outline || shadow, \
                 shown: r.width > 0 && r.height > 0, what: e.outerHTML.slice(0, 160) }; })()",
        );
        if now.get("again").is_some() || (now.get("none").is_some() && reached > 0) {
            break;
        }
        // Tab also steps through the parts of one control (a date input's
        // day, month and year): the same element again is not a cycle.
        if now.get("none").is_none() && now.get("same").is_none() {
            assert_eq!(
                now["visible"], true,
                "{page}: the focus on {} is not visible",
                now["what"]
            );
            assert_eq!(
                now["shown"], true,
                "{page}: focus on a hidden element {}",
                now["what"]
            );
            if now["expected"] == true {
                reached += 1;
            }
        }
        assert!(
            presses <= 4 * total + 10,
            "{page}: {presses} presses of Tab never came back to the start"
        );
    }
    let missed = cdp.eval(
        "Array.from(document.querySelectorAll('[data-a11y-expected]:not([data-a11y-reached])')).map(function (e) { return e.outerHTML.slice(0, 160); })",
    );
    assert_eq!(reached, total, "{page}: the Tab key never reaches {missed}");
    eprintln!("{page}: Tab reaches all {total} interactive elements, each with a visible focus");
}

/// On a zh-CN page, the server's sentences (an order's explain lines, the
/// at-risk lines, the booked ledger's causes) are Chinese: each holds Chinese characters, no code of the
/// reports (`/labels`' codes) and no English word (a run of three or more
/// lowercase letters: ids and rule numbers start with a capital or a digit).
fn assert_sentences_chinese(cdp: &mut Cdp, codes: &[String], selector: &str, page: &str) {
    let lines: Vec<String> = serde_json::from_value(cdp.eval(&format!(
        "Array.from(document.querySelectorAll({})).map(function (e) {{ return e.getAttribute('title') || e.textContent; }})",
        Value::from(selector)
    )))
    .unwrap();
    assert!(!lines.is_empty(), "{page}: no sentence at {selector}");
    for line in &lines {
        assert!(
            line.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{page}: not Chinese: {line}"
        );
        for code in codes {
            assert!(
                !line.contains(code.as_str()),
                "{page}: raw code `{code}` in {line}"
            );
        }
        let english: Vec<&str> = line
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        assert!(english.is_empty(), "{page}: English {english:?} in {line}");
    }
}

fn state(cdp: &mut Cdp) -> Value {
    cdp.eval("document.getElementById('app').getAttribute('data-state')")
}

/// Signs in with the keyboard alone: Tab to the token field, type, Enter.
fn sign_in_with_keyboard(cdp: &mut Cdp, token: &str) {
    cdp.eval("if (document.activeElement) document.activeElement.blur(); true");
    let mut presses = 0;
    while cdp.eval("document.activeElement && document.activeElement.id") != "token" {
        press(cdp, "Tab", "Tab", 9, false);
        presses += 1;
        assert!(presses < 50, "the token field is never reached with Tab");
    }
    cdp.call("Input.insertText", serde_json::json!({"text": token}));
    cdp.eval("window.__old = true");
    press(cdp, "Enter", "Enter", 13, false);
    cdp.wait_for(
        "!window.__old && document.readyState === 'complete' && !!document.getElementById('app') \
         && ['ready', 'error'].indexOf(document.getElementById('app').getAttribute('data-state')) >= 0",
    );
}

#[test]
fn the_main_pages_pass_axe_and_the_keyboard_walk_in_both_languages() {
    let Some((browser, axe)) = requirements() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve_the_demo(dir.path(), true);
    let at = AT.replace('+', "%2B");
    let (_, at_risk) = api_as(
        addr,
        &format!("/shops/S01/at-risk?as_of={at}&within=24h&limit=1"),
        SELLER_S01,
    );
    let order = at_risk["orders"][0]["order_id"]
        .as_str()
        .expect("S01 has an order at risk")
        .to_string();
    let (_, labels) = api_as(addr, "/labels", SELLER_S01);
    let codes: Vec<String> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap().to_string())
        .filter(|code| code.contains('_'))
        .collect();
    let base = format!("http://{addr}");
    // Twenty rows a list: the walk stays short, and every kind of row is there.
    let rows = "rows=20";

    let mut cdp = Cdp::launch(&browser, dir.path());
    cdp.call("Page.enable", serde_json::json!({}));
    for lang in ["en", "zh-CN"] {
        let check = |cdp: &mut Cdp, page: &str| {
            let page = format!("{page} ({lang})");
            assert_eq!(
                cdp.eval("document.documentElement.lang"),
                lang,
                "{page}: <html lang> follows the language switch"
            );
            assert_axe_clean(cdp, &axe, &page);
            if lang == "zh-CN" {
                // A screen reader reads a control's label in the page's
                // language: none is left in English.
                let english = cdp.eval(
                    "Array.from(document.querySelectorAll('label, [aria-label]')).map(function (e) { \
                       return e.getAttribute('aria-label') || e.textContent; }).filter(function (text) { \
                       return !/[\\u4e00-\\u9fff]/.test(text); })",
                );
                assert_eq!(
                    english,
                    serde_json::json!([]),
                    "{page}: labels left in English"
                );
            }
            assert_keyboard_walk(cdp, &page);
        };
        cdp.open(&format!("{base}/?as_of={at}"));
        cdp.eval(&format!(
            "localStorage.setItem('penalty.lang', {}); true",
            Value::from(lang)
        ));
        cdp.open(&format!("{base}/?as_of={at}&{rows}"));
        assert_eq!(state(&mut cdp), "login");
        check(&mut cdp, "the sign-in form");

        // The seller: the form submitted with Enter lands on its home.
        sign_in_with_keyboard(&mut cdp, SELLER_S01);
        assert_eq!(cdp.eval("window.location.pathname"), "/ui/shops/S01");
        assert_eq!(state(&mut cdp), "ready");
        assert!(
            cdp.eval("document.querySelectorAll('#at-risk-table tbody tr').length")
                .as_u64()
                > Some(0)
        );
        assert!(
            cdp.eval("document.querySelectorAll('#notices-table tbody tr').length")
                .as_u64()
                > Some(0)
        );
        check(&mut cdp, "the seller's home");
        if lang == "zh-CN" {
            assert_sentences_chinese(
                &mut cdp,
                &codes,
                "#at-risk-table tbody tr",
                "the seller's home",
            );
            assert_sentences_chinese(
                &mut cdp,
                &codes,
                "#shop-postings tbody td:last-child",
                "the seller's home",
            );
        }
        cdp.open(&format!("{base}/ui/orders/{order}?as_of={at}"));
        assert_eq!(state(&mut cdp), "ready");
        check(&mut cdp, "an order page");
        if lang == "zh-CN" {
            assert_sentences_chinese(&mut cdp, &codes, "#order-explain li", "an order page");
        }
        cdp.settle_after("document.getElementById('logout').click(); true");
        assert_eq!(state(&mut cdp), "login");

        // The operator: the shop list, then a shop's page.
        sign_in_with_keyboard(&mut cdp, OPERATOR);
        assert_eq!(state(&mut cdp), "ready");
        cdp.open(&format!("{base}/?as_of={at}&{rows}"));
        assert_eq!(cdp.eval("!!document.getElementById('shops-table')"), true);
        check(&mut cdp, "the operator's shop list");
        cdp.open(&format!("{base}/ui/shops/S01?as_of={at}&{rows}"));
        assert_eq!(state(&mut cdp), "ready");
        check(&mut cdp, "a shop's page");
        cdp.settle_after("document.getElementById('logout').click(); true");
    }
}
