//! End to end: the real `penalty serve` on a loopback port, the demo posted
//! to it, and the dashboard rendered by headless Chromium. The figures the
//! pages show must equal the API's.
//!
//! Chromium is Debian's `chromium` package (installed by `.ci/run`). Without
//! it this test fails, saying so: a dashboard that was never rendered is not
//! a dashboard that was tested.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{demo_events, http, AS_OF, OPERATOR, SELLER_S01};

/// `target/<profile>`, from this test binary's own path
/// (`target/<profile>/deps/server-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `penalty` binary of this workspace, built by cargo beside this test
/// (`target/<profile>/penalty`). The CLI depends on this crate, so it cannot
/// be a dependency of this test, and the test does not build it itself (a
/// cargo inside a test fights the outer one for the target directory's
/// lock): it fails naming the command that builds it.
fn penalty_binary() -> PathBuf {
    let profile = profile_dir();
    let binary = profile.join(format!("penalty{}", std::env::consts::EXE_SUFFIX));
    let release = profile.file_name().is_some_and(|name| name == "release");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build{} -p penalty-cli` (scripts/test does)",
        binary.display(),
        if release { " --release" } else { "" }
    );
    binary
}

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        }) {
            return path;
        }
    }
    panic!(
        "headless Chromium is needed for the dashboard test and was not found on PATH; \
         install it with `apt-get install -y chromium` (.ci/run does)"
    );
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn wait_healthy(addr: SocketAddr, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("penalty serve exited early: {status}");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            let (status, _) = http(addr, "GET", "/healthz", None, b"");
            if status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "penalty serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server of a Chromium test: `penalty serve` on a free loopback port,
/// over a new data directory in `dir`, answering, with the demo posted to
/// it. With `tokens`, the operator's and S01's seller token are its only
/// tokens (written to `dir/tokens.json`); without, it serves anyone.
fn serve_the_demo(dir: &Path, tokens: bool) -> (Server, SocketAddr) {
    let mut command = Command::new(penalty_binary());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    command
        .arg("--db")
        .arg(dir.join("db"))
        .args(["serve", "--addr", &addr.to_string()]);
    if tokens {
        let path = dir.join("tokens.json");
        std::fs::write(
            &path,
            serde_json::json!([
                {"sha256": penalty_server::auth::token_hash_hex(OPERATOR), "role": "operator"},
                {"sha256": penalty_server::auth::token_hash_hex(SELLER_S01), "role": "seller", "shop_id": "S01"},
            ])
            .to_string(),
        )
        .unwrap();
        command.arg("--tokens").arg(path);
    }
    let mut server = Server(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting penalty serve"),
    );
    wait_healthy(addr, &mut server);
    let (status, body) = http(
        addr,
        "POST",
        "/events",
        tokens.then_some(OPERATOR),
        &demo_events(),
    );
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["appended"], 757, "{summary}");
    (server, addr)
}

/// Signs in with the form: `token` typed into it and the button clicked;
/// returns once the page it lands on has settled.
fn sign_in_with_form(cdp: &mut Cdp, token: &str) {
    cdp.settle_after(&format!(
        "document.getElementById('token').value = {}; document.getElementById('sign-in').click(); true",
        Value::from(token)
    ));
}

/// Loads `url` in headless Chromium, lets its scripts run, and returns the
/// DOM as HTML. Retries a few times until the page reports it is ready.
fn dump_dom(browser: &Path, url: &str, profile: &Path) -> String {
    let mut last = String::new();
    for budget_ms in [5_000, 10_000, 20_000] {
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={budget_ms}"))
            .arg("--dump-dom")
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        // The DOM is read while the browser runs (a page larger than the
        // pipe's buffer would otherwise block it), and a browser that hangs
        // is killed.
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut dom = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut dom);
            dom
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let dom = reader.join().unwrap();
        last = String::from_utf8_lossy(&dom).to_string();
        if last.contains("data-state=\"ready\"") {
            return last;
        }
    }
    panic!("the page {url} never became ready; last DOM:\n{last}");
}

/// The value of `attr` on the element with `id="…"`.
fn attr_of(dom: &str, id: &str, attr: &str) -> String {
    let needle = format!("id=\"{id}\"");
    let at = dom
        .find(&needle)
        .unwrap_or_else(|| panic!("no element #{id} in the page"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let tag = &dom[start..end];
    let key = format!(" {attr}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {attr}: {tag}"))
        + key.len();
    let to = from + tag[from..].find('"').unwrap();
    unescape(&tag[from..to])
}

fn number(dom: &str, id: &str) -> i64 {
    attr_of(dom, id, "data-value")
        .parse()
        .unwrap_or_else(|_| panic!("#{id} is not a number"))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of every `<li>` inside the element with this id.
fn list_items(dom: &str, id: &str) -> Vec<String> {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap();
    let end = at + dom[at..].find("</ol>").unwrap();
    dom[at..end]
        .split("<li>")
        .skip(1)
        .map(|item| unescape(item.split("</li>").next().unwrap()))
        .collect()
}

fn api(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, None, b"");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn the_dashboard_shows_the_figures_of_the_api() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    // The demo, loaded through the API.
    let (_server, addr) = serve_the_demo(dir.path(), false);

    let profile = dir.path().join("chromium-profile");
    let base = format!("http://{addr}");

    // The shops table.
    let shops = api(addr, &format!("/shops?as_of={AS_OF}"))["shops"].clone();
    let dom = dump_dom(&browser, &format!("{base}/?as_of={AS_OF}"), &profile);
    assert_eq!(number(&dom, "shops-count"), 6);
    let total: i64 = shops
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["charged_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(number(&dom, "shops-charged"), total);
    for shop in shops.as_array().unwrap() {
        let id = shop["shop_id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-id=\"{id}\"")), "{id} listed");
    }
    assert!(dom.contains("id=\"sort-charges\""));
    assert!(dom.contains("id=\"sort-timeouts\""));
    assert!(dom.contains("id=\"sort-rate\""));
    // Shops -> shop: the link the table shows.
    let shop_href = format!("/ui/shops/S01?as_of={AS_OF}");
    assert!(
        dom.contains(&format!("href=\"{shop_href}\"")),
        "a link to S01"
    );

    // The shop page.
    let report = api(addr, &format!("/shops/S01?as_of={AS_OF}"));
    let dom = dump_dom(&browser, &format!("{base}{shop_href}"), &profile);
    assert_eq!(attr_of(&dom, "shop-title", "data-shop-id"), "S01");
    for (id, field) in [
        ("shop-orders", "orders"),
        ("shop-judgments", "judgments"),
        ("shop-violating", "violating_orders"),
        ("shop-charged", "charged_fen"),
        ("shop-waived", "waived_fen"),
        ("shop-pending", "pending_fen"),
        ("shop-deposit", "deposit_balance_fen"),
        ("shop-booked-fen", "booked_fen"),
    ] {
        assert_eq!(
            number(&dom, id),
            report[field].as_i64().unwrap(),
            "#{id} shows the API's {field}"
        );
    }
    // The chart's per-day figures add up to the report's.
    let chart_charged: i64 = attr_of(&dom, "shop-chart", "data-total-charged")
        .parse()
        .unwrap();
    assert_eq!(chart_charged, report["charged_fen"].as_i64().unwrap());
    let chart_judgments: i64 = attr_of(&dom, "shop-chart", "data-total-judgments")
        .parse()
        .unwrap();
    assert_eq!(chart_judgments, report["judgments"].as_i64().unwrap());
    let cap_hits = report["deductions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "waived" || d["status"] == "partial")
        .count() as i64;
    let chart_cap_hits: i64 = attr_of(&dom, "shop-chart", "data-total-cap-hits")
        .parse()
        .unwrap();
    assert_eq!(chart_cap_hits, cap_hits);
    assert!(cap_hits > 0, "the demo's S01 hits the daily cap");
    assert!(dom.contains("<svg"), "the chart is drawn");
    for ban in report["banned_products"].as_array().unwrap() {
        let product = ban["product_id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-product-id=\"{product}\"")));
    }
    for flag in report["closure_review"].as_array().unwrap() {
        let order = flag["order_id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-order-id=\"{order}\"")));
    }

    // The booked ledger (R14): the API's postings, corrections marked.
    let ledger = api(
        addr,
        &format!("/shops/S01/postings?as_of={AS_OF}&limit=1000"),
    );
    assert_eq!(
        attr_of(&dom, "shop-booked", "data-booked-fen"),
        ledger["booked_fen"].to_string()
    );
    assert_eq!(
        attr_of(&dom, "shop-booked", "data-postings"),
        ledger["total"].to_string()
    );
    let postings = ledger["postings"].as_array().unwrap();
    let corrections = postings.iter().filter(|p| p["kind"] != "charge").count();
    assert_eq!(
        attr_of(&dom, "shop-booked", "data-corrections"),
        corrections.to_string()
    );
    assert!(!postings.is_empty(), "the demo's S01 has booked postings");
    assert!(
        dom.contains("id=\"shop-postings\""),
        "the postings table is drawn"
    );
    assert_eq!(
        dom.matches("class=\"correction\"").count(),
        corrections,
        "every correction's row is marked"
    );

    // Shop -> order: follow the first order link of the page.
    let link_at = dom.find("class=\"order-link\"").expect("an order link");
    let tag_start = dom[..link_at].rfind('<').unwrap();
    let tag = &dom[tag_start..link_at + dom[link_at..].find('>').unwrap()];
    let href_at = tag.find("href=\"").unwrap() + 6;
    let href = unescape(&tag[href_at..href_at + tag[href_at..].find('"').unwrap()]);
    assert!(href.starts_with("/ui/orders/"), "{href}");
    let order_id = href
        .trim_start_matches("/ui/orders/")
        .split('?')
        .next()
        .unwrap()
        .to_string();

    let order = api(addr, &format!("/orders/{order_id}?as_of={AS_OF}"));
    let events = api(addr, &format!("/orders/{order_id}/events?as_of={AS_OF}"));
    let dom = dump_dom(&browser, &format!("{base}{href}"), &profile);
    assert_eq!(attr_of(&dom, "order-title", "data-order-id"), order_id);
    assert_eq!(attr_of(&dom, "order-title", "data-shop-id"), "S01");
    assert_eq!(attr_of(&dom, "order-status", "data-value"), order["status"]);
    let charged: i64 = order["deductions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["charged_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(number(&dom, "order-charged"), charged);
    let standing = order["judgments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["revoked"] == false)
        .count() as i64;
    assert_eq!(number(&dom, "order-judgments"), standing);
    assert_eq!(
        number(&dom, "order-amount"),
        order["amount_fen"].as_i64().unwrap()
    );
    let explain: Vec<String> = order["explain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap().to_string())
        .collect();
    assert!(!explain.is_empty());
    assert_eq!(list_items(&dom, "order-explain"), explain);
    let shown_events: usize = attr_of(&dom, "order-timeline", "data-events")
        .parse()
        .unwrap();
    assert_eq!(shown_events, events["events"].as_array().unwrap().len());
    assert!(shown_events >= 1);
}

/// A Chrome DevTools Protocol client over `--remote-debugging-pipe`: the
/// browser reads commands on its fd 3 and writes answers on its fd 4, each a
/// JSON message ended by a NUL byte. The fds are two named pipes opened by
/// `sh` (no unsafe code is needed to hand them over), and every wait has a
/// deadline, so a hung browser fails the test instead of hanging it.
struct Cdp {
    child: Child,
    to: std::fs::File,
    from: std::sync::mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
}

impl Drop for Cdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CDP_WAIT: Duration = Duration::from_secs(60);

impl Cdp {
    fn launch(browser: &Path, dir: &Path) -> Cdp {
        let commands = dir.join("cdp-in");
        let answers = dir.join("cdp-out");
        let made = Command::new("mkfifo")
            .arg(&commands)
            .arg(&answers)
            .status()
            .expect("mkfifo");
        assert!(made.success(), "mkfifo failed");
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                "exec \"$0\" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
                 --no-first-run --disable-background-networking --disable-component-update \
                 --disable-sync --disable-extensions --remote-debugging-pipe \
                 --user-data-dir=\"$3\" about:blank 3<\"$1\" 4>\"$2\"",
            )
            .arg(browser)
            .arg(&commands)
            .arg(&answers)
            .arg(dir.join("cdp-profile"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        // The shell opens the command pipe first, then the answer pipe: open
        // them in the same order.
        let to = std::fs::OpenOptions::new()
            .write(true)
            .open(&commands)
            .unwrap();
        let from = std::fs::File::open(&answers).unwrap();
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut reader = std::io::BufReader::new(from);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                            if send.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut cdp = Cdp {
            child,
            to,
            from: receive,
            next_id: 0,
            session: String::new(),
        };
        let target = cdp.call(
            "Target.createTarget",
            serde_json::json!({"url": "about:blank"}),
        );
        let attached = cdp.call(
            "Target.attachToTarget",
            serde_json::json!({"targetId": target["targetId"], "flatten": true}),
        );
        cdp.session = attached["sessionId"].as_str().unwrap().to_string();
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
        );
        cdp
    }

    /// Sends a command (to the page once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|answer| panic!("{method}: {answer}"))
    }

    /// As [`Cdp::call`], but a CDP error comes back as `Err` with the whole
    /// answer.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = self.session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        std::io::Write::write_all(&mut self.to, &bytes).unwrap();
        let deadline = Instant::now() + CDP_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} within {CDP_WAIT:?}"));
            if answer["id"] == id {
                if answer.get("error").is_some() {
                    return Err(answer);
                }
                return Ok(answer["result"].clone());
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true, polling; panics after the deadline.
    fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + CDP_WAIT;
        loop {
            // A navigation that the awaited action started may replace the
            // document while it is being evaluated; Chromium then answers
            // "Inspected target navigated or closed", which only means "not
            // yet": ask again. Any other error still fails the test.
            let answer = self.try_call(
                "Runtime.evaluate",
                serde_json::json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            );
            match answer {
                Ok(result) => {
                    assert!(
                        result.get("exceptionDetails").is_none(),
                        "{expression}: {result}"
                    );
                    if result["result"]["value"] == Value::Bool(true) {
                        return;
                    }
                }
                Err(answer)
                    if answer["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("navigated or closed")) => {}
                Err(answer) => panic!("Runtime.evaluate: {answer}"),
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` never held; the page says: {}",
                self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Marks the current document, then waits until a new one has loaded
    /// and the dashboard settled (ready, login or error).
    fn settle_after(&mut self, action: &str) {
        self.eval("window.__old = true");
        self.eval(action);
        self.wait_for(
            "!window.__old && document.readyState === 'complete' && !!document.getElementById('app') \
             && ['ready', 'login', 'error'].indexOf(document.getElementById('app').getAttribute('data-state')) >= 0",
        );
    }

    fn open(&mut self, url: &str) {
        self.settle_after(&format!("window.location.assign({})", Value::from(url)));
    }

    fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap()
            .to_string()
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        let dir = profile_dir().parent().unwrap().join("dashboard-screens");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
    {
        let value = ALPHABET.iter().position(|a| *a == byte).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

fn api_as(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let (status, body) = http(addr, "GET", path, Some(token), b"");
    (status, serde_json::from_slice(&body).unwrap())
}

/// A seller signs in with the form, lands on its own shop with the at-risk
/// list first and its notices, cannot open another shop by URL, reads the
/// page in Chinese without a raw code, and signs out.
#[test]
fn a_seller_signs_in_and_sees_its_own_shop_only() {
    const AT: &str = "2026-03-20T00:00:00+08:00";
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = serve_the_demo(dir.path(), true);
    let at = AT.replace('+', "%2B");
    let (_, at_risk) = api_as(
        addr,
        &format!("/shops/S01/at-risk?as_of={at}&within=24h&limit=200"),
        SELLER_S01,
    );
    let (_, notices) = api_as(
        addr,
        &format!("/shops/S01/notices?as_of={at}&limit=1000"),
        SELLER_S01,
    );
    let base = format!("http://{addr}");

    let mut cdp = Cdp::launch(&browser, dir.path());
    cdp.call("Page.enable", serde_json::json!({}));
    cdp.open(&format!("{base}/?as_of={at}"));
    assert_eq!(
        cdp.eval("document.getElementById('app').getAttribute('data-state')"),
        "login"
    );
    let login = cdp.text();
    assert!(
        !login.contains("Authorization") && !login.contains("Bearer"),
        "{login}"
    );
    cdp.screenshot("login");

    // A wrong token: the form says so and stays.
    cdp.eval("document.getElementById('token').value = 'wrong'; document.getElementById('sign-in').click(); true");
    cdp.wait_for("document.getElementById('login-message').className === 'error'");

    // The seller's token: its own shop, at-risk list first.
    sign_in_with_form(&mut cdp, SELLER_S01);
    assert_eq!(cdp.eval("window.location.pathname"), "/ui/shops/S01");
    assert_eq!(
        cdp.eval("document.getElementById('app').getAttribute('data-state')"),
        "ready"
    );
    assert_eq!(
        cdp.eval("document.cookie.indexOf('penalty_session') < 0"),
        true,
        "the session cookie is HttpOnly"
    );
    let shown: Vec<String> = serde_json::from_value(cdp.eval(
        "Array.from(document.querySelectorAll('#at-risk-table tbody tr')).map(function (r) { return r.getAttribute('data-order-id'); })",
    ))
    .unwrap();
    let expected: Vec<String> = at_risk["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!expected.is_empty(), "S01 has orders at risk at {AT}");
    assert_eq!(shown, expected);
    assert_eq!(
        cdp.eval("document.querySelector('h2').parentNode.id"),
        "at-risk",
        "the at-risk list comes first"
    );
    let notice_count = notices["notices"].as_array().unwrap().len();
    assert!(notice_count > 0);
    assert_eq!(
        cdp.eval("Number(document.getElementById('notices').getAttribute('data-count'))"),
        notice_count
    );
    // The inbox draws the newest 50, newest first; "more" draws 50 older.
    let rows = "document.querySelectorAll('#notices-table tbody tr')";
    let newest: Vec<String> = notices["notices"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|n| n["cursor"].as_str().unwrap().to_string())
        .collect();
    let drawn: Vec<String> = serde_json::from_value(cdp.eval(&format!(
        "Array.from({rows}).map(function (r) {{ return r.getAttribute('data-cursor'); }})"
    )))
    .unwrap();
    assert_eq!(drawn, newest[..notice_count.min(50)]);
    // The demo's S01 has 50 notices or fewer: every one is drawn and "more"
    // stays hidden (the "more" path itself is not exercised here).
    assert!(
        notice_count <= 50,
        "update this check: S01 has more than a screen"
    );
    assert_eq!(
        cdp.eval("document.getElementById('notices-more').hidden"),
        true
    );
    let page = cdp.text();
    assert!(
        page.contains("ship") || page.contains("shipping-timeout judgment"),
        "{page}"
    );
    cdp.screenshot("seller-home");

    // The booked ledger a page at a time (rows=20): "more" appends the next
    // page in the API's order until every posting is drawn.
    let (_, ledger) = api_as(
        addr,
        &format!("/shops/S01/postings?as_of={at}&limit=1000"),
        SELLER_S01,
    );
    let all: Vec<String> = ledger["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["order_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        all.len() > 20,
        "the demo's S01 has more than a page of postings"
    );
    cdp.open(&format!("{base}/ui/shops/S01?as_of={at}&rows=20"));
    let posting_rows = "document.querySelectorAll('#shop-postings tbody tr')";
    assert_eq!(cdp.eval(&format!("{posting_rows}.length")), 20);
    for _ in 0..all.len() / 20 + 1 {
        if cdp.eval("document.getElementById('postings-more').hidden") == true {
            break;
        }
        let before = cdp.eval(&format!("{posting_rows}.length"));
        cdp.eval("document.getElementById('postings-more').click()");
        cdp.wait_for(&format!("{posting_rows}.length > {before}"));
    }
    let drawn: Vec<String> = serde_json::from_value(cdp.eval(&format!(
        "Array.from({posting_rows}).map(function (r) {{ return r.getAttribute('data-order-id'); }})"
    )))
    .unwrap();
    assert_eq!(drawn, all);

    // Another shop by URL: the unknown shop's answer, nothing of S02.
    cdp.open(&format!("{base}/ui/shops/S02?as_of={at}"));
    assert_eq!(
        cdp.eval("document.getElementById('app').getAttribute('data-state')"),
        "error"
    );
    let other = cdp.text();
    cdp.open(&format!("{base}/ui/shops/S99?as_of={at}"));
    let unknown = cdp.text();
    assert_eq!(other.replace("S02", "S99"), unknown);
    assert!(!other.contains("charged"), "{other}");
    cdp.screenshot("seller-other-shop");

    // In Chinese: no raw code on the page.
    cdp.eval("localStorage.setItem('penalty.lang', 'zh-CN'); true");
    cdp.open(&format!("{base}/ui/shops/S01?as_of={at}"));
    let zh = cdp.text();
    assert!(zh.contains("待") || zh.contains("判罚"), "{zh}");
    // The title, the booked ledger's prose and the chart's legend too.
    for english in [
        "Shop S01",
        "What the settlement runs",
        "by day judged",
        "cap hits",
    ] {
        assert!(!zh.contains(english), "`{english}` on the zh-CN page: {zh}");
    }
    assert!(zh.contains("店铺 S01") && zh.contains("按判罚日"), "{zh}");
    let (_, labels) = api_as(addr, "/labels", SELLER_S01);
    for entry in labels.as_array().unwrap() {
        let code = entry["code"].as_str().unwrap();
        if code.contains('_') {
            assert!(!zh.contains(code), "raw code `{code}` on the zh-CN page");
        }
    }
    cdp.screenshot("seller-home-zh");
    // An order page in Chinese too.
    let order = &expected[0];
    cdp.open(&format!("{base}/ui/orders/{order}?as_of={at}"));
    let zh_order = cdp.text();
    for entry in labels.as_array().unwrap() {
        let code = entry["code"].as_str().unwrap();
        if code.contains('_') {
            assert!(
                !zh_order.contains(code),
                "raw code `{code}` on the zh-CN order page"
            );
        }
    }
    cdp.screenshot("seller-order-zh");

    // Sign out: back to the form, and the old cookie reads nothing.
    cdp.settle_after("document.getElementById('logout').click(); true");
    assert_eq!(
        cdp.eval("document.getElementById('app').getAttribute('data-state')"),
        "login"
    );

    // An operator signs in, searches an order id from the header, and pages
    // and filters a shop's orders, server-side.
    sign_in_with_form(&mut cdp, OPERATOR);
    assert_eq!(
        cdp.eval("document.getElementById('app').getAttribute('data-state')"),
        "ready"
    );
    assert_eq!(cdp.eval("!!document.getElementById('shops-table')"), true);
    cdp.settle_after(&format!(
        "document.getElementById('search-id').value = {}; document.querySelector('#search-form button').click(); true",
        Value::from(order.as_str())
    ));
    assert_eq!(
        cdp.eval("window.location.pathname"),
        format!("/ui/orders/{order}")
    );
    assert_eq!(
        cdp.eval("document.getElementById('order-title').getAttribute('data-order-id')"),
        order.as_str()
    );
    cdp.screenshot("operator-search-order");

    // The worst shops: a heading's button ranks on the server, two shops a
    // page; each page equals the API's page of the same ranking.
    let ranked = |query: &str| -> Vec<String> {
        let (_, page) = api_as(addr, &format!("/shops?as_of={at}&{query}"), OPERATOR);
        page["shops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["shop_id"].as_str().unwrap().to_string())
            .collect()
    };
    let shop_rows = |cdp: &mut Cdp| -> Vec<String> {
        serde_json::from_value(cdp.eval(
            "Array.from(document.querySelectorAll('#shops-table tbody tr')).map(function (r) { return r.getAttribute('data-id'); })",
        ))
        .unwrap()
    };
    let settled = "!document.getElementById('app').hasAttribute('data-loading')";
    cdp.open(&format!("{base}/?as_of={at}&rows=2"));
    assert_eq!(shop_rows(&mut cdp), ranked("limit=2"));
    cdp.eval("document.getElementById('sort-timeouts').click(); true");
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('shops-table').getAttribute('data-sort') === 'judgments'"
    ));
    assert_eq!(shop_rows(&mut cdp), ranked("sort=judgments&limit=2"));
    assert_ne!(ranked("sort=judgments&limit=6"), ranked("limit=6"));
    cdp.eval("document.getElementById('shops-next').click(); true");
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('shops-holder').getAttribute('data-offset') === '2'"
    ));
    assert_eq!(
        shop_rows(&mut cdp),
        ranked("sort=judgments&limit=2&offset=2")
    );
    cdp.eval("var m = document.getElementById('shops-min-orders'); m.value = '60'; m.dispatchEvent(new Event('change')); true");
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('shops-holder').getAttribute('data-offset') === '0'"
    ));
    assert_eq!(
        shop_rows(&mut cdp),
        ranked("sort=judgments&min_orders=60&limit=2")
    );
    let (_, big) = api_as(addr, &format!("/shops?as_of={at}&min_orders=60"), OPERATOR);
    assert_eq!(
        cdp.eval("Number(document.getElementById('shops-count').getAttribute('data-value'))"),
        big["total"]
    );
    cdp.screenshot("operator-worst-shops");

    // O0253's events were written at +00:00 and +08:00: the timeline shows
    // every time in the policy's offset.
    cdp.open(&format!("{base}/ui/orders/O0253?as_of={at}"));
    let times: Vec<String> = serde_json::from_value(cdp.eval(
        "Array.from(document.querySelectorAll('#order-timeline tbody tr td:first-child')).map(function (td) { return td.textContent; })",
    ))
    .unwrap();
    assert!(times.len() >= 2, "{times:?}");
    assert!(times.iter().all(|at| at.ends_with("+08:00")), "{times:?}");
    assert!(
        times.contains(&"2026-03-06T09:57:31.475+08:00".to_string()),
        "{times:?}"
    );

    let (_, all) = api_as(
        addr,
        &format!("/orders?as_of={at}&shop=S01&limit=1000"),
        OPERATOR,
    );
    let all_ids: Vec<&str> = all["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert!(all_ids.len() > 40, "S01 has more than two pages of 20");
    cdp.open(&format!("{base}/ui/shops/S01?as_of={at}&rows=20"));
    let page_ids = |cdp: &mut Cdp| -> Vec<String> {
        serde_json::from_value(cdp.eval(
            "Array.from(document.querySelectorAll('#shop-orders-table tbody tr')).map(function (r) { return r.getAttribute('data-id'); }).sort()",
        ))
        .unwrap()
    };
    assert_eq!(page_ids(&mut cdp), all_ids[..20]);
    assert_eq!(
        cdp.eval("Number(document.getElementById('orders').getAttribute('data-total'))"),
        all_ids.len()
    );
    cdp.eval("document.getElementById('orders-next').click(); true");
    cdp.wait_for(
        "document.getElementById('orders').getAttribute('data-offset') === '20' && !document.getElementById('orders').hasAttribute('data-loading')",
    );
    assert_eq!(page_ids(&mut cdp), all_ids[20..40]);
    cdp.screenshot("operator-shop-page-2");
    // A column header asks the server for its order: the first page and
    // the next are the API's pages of that sort, in its order.
    let shown_ids = |cdp: &mut Cdp| -> Vec<String> {
        serde_json::from_value(cdp.eval(
            "Array.from(document.querySelectorAll('#shop-orders-table tbody tr')).map(function (r) { return r.getAttribute('data-id'); })",
        ))
        .unwrap()
    };
    let sorted_ids = |offset: usize| -> Vec<String> {
        let (_, page) = api_as(
            addr,
            &format!("/orders?as_of={at}&shop=S01&sort=charged&limit=20&offset={offset}"),
            OPERATOR,
        );
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_string())
            .collect()
    };
    cdp.eval("document.getElementById('orders-sort-charged').click(); true");
    cdp.wait_for(
        "document.getElementById('shop-orders-table').getAttribute('data-sort') === 'charged' && document.getElementById('orders').getAttribute('data-offset') === '0' && !document.getElementById('orders').hasAttribute('data-loading')",
    );
    let first = shown_ids(&mut cdp);
    assert_eq!(first, sorted_ids(0));
    assert_ne!(first, all_ids[..20], "the sort changes the first page");
    assert_eq!(
        cdp.eval("document.querySelector('#shop-orders-table th[data-key=charged_fen]').getAttribute('aria-sort')"),
        "descending"
    );
    cdp.eval("document.getElementById('orders-next').click(); true");
    cdp.wait_for(
        "document.getElementById('orders').getAttribute('data-offset') === '20' && !document.getElementById('orders').hasAttribute('data-loading')",
    );
    assert_eq!(shown_ids(&mut cdp), sorted_ids(20));
    cdp.eval("document.getElementById('orders-sort-order').click(); true");
    cdp.wait_for(
        "document.getElementById('shop-orders-table').getAttribute('data-sort') === 'order' && !document.getElementById('orders').hasAttribute('data-loading')",
    );
    assert_eq!(shown_ids(&mut cdp), all_ids[..20]);
    let (_, shipped) = api_as(
        addr,
        &format!("/orders?as_of={at}&shop=S01&status=shipped&limit=1"),
        OPERATOR,
    );
    cdp.eval("var s = document.getElementById('orders-status'); s.value = 'shipped'; s.dispatchEvent(new Event('change')); true");
    cdp.wait_for(&format!(
        "document.getElementById('orders').getAttribute('data-offset') === '0' && !document.getElementById('orders').hasAttribute('data-loading') && document.getElementById('orders').getAttribute('data-total') !== '{}'",
        all_ids.len()
    ));
    assert_eq!(
        cdp.eval("Number(document.getElementById('orders').getAttribute('data-total'))"),
        shipped["total"]
    );
    assert!(shipped["total"].as_u64().unwrap() < all_ids.len() as u64);
    // Never more rows than a page.
    assert!(page_ids(&mut cdp).len() <= 20);

    operator_filters_pages_and_downloads_the_csv(
        &mut cdp,
        addr,
        &penalty_binary(),
        &dir.path().join("db"),
    );
}

/// An operator opens a shop without an as-of: the demo lies in the past, so
/// the page is as of the end of the data and says so, with the data's range.
/// It filters the orders by paid dates and capped days (R5), pages, and
/// downloads the CSV of that view with its session cookie: the rows and the
/// charged total equal `penalty export orders --format csv` of the same
/// filter, byte for byte. Then closure review (R7) alone.
fn operator_filters_pages_and_downloads_the_csv(
    cdp: &mut Cdp,
    addr: SocketAddr,
    binary: &Path,
    db: &Path,
) {
    let base = format!("http://{addr}");
    let (_, range) = api_as(addr, "/data-range", OPERATOR);
    let end = range["to"].as_str().unwrap().to_string();
    cdp.open(&format!("{base}/ui/shops/S01?rows=20"));
    let stamp = |cdp: &mut Cdp, attr: &str| -> Value {
        cdp.eval(&format!(
            "document.getElementById('data-stamp').getAttribute('{attr}')"
        ))
    };
    assert_eq!(stamp(cdp, "data-from"), range["from"]);
    assert_eq!(stamp(cdp, "data-to"), range["to"]);
    assert_eq!(stamp(cdp, "data-as-of"), end.as_str());
    assert_eq!(stamp(cdp, "data-as-of-source"), "end of the data");
    let text = cdp.eval("document.getElementById('data-stamp').textContent");
    let text = text.as_str().unwrap();
    assert!(
        text.contains(&range["from"].as_str().unwrap().replace('T', " "))
            && (text.contains("end of the data") || text.contains("数据截止")),
        "{text}"
    );
    let settled = "!document.getElementById('orders').hasAttribute('data-loading')";
    let set = |cdp: &mut Cdp, id: &str, js: &str| {
        cdp.eval(&format!(
            "var e = document.getElementById('{id}'); {js}; e.dispatchEvent(new Event('change')); true"
        ));
    };
    set(cdp, "orders-paid-from", "e.value = '2026-03-15'");
    set(cdp, "orders-paid-to", "e.value = '2026-03-22'");
    set(cdp, "orders-capped", "e.checked = true");
    let filter = "paid_from=2026-03-15&paid_to=2026-03-22&capped_day=true";
    let as_of = end.replace('+', "%2B");
    let (_, expected) = api_as(
        addr,
        &format!("/orders?as_of={as_of}&shop=S01&{filter}&limit=1000"),
        OPERATOR,
    );
    let total = expected["total"].as_u64().unwrap();
    assert!(total > 20, "more than a page of capped orders: {total}");
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('orders').getAttribute('data-total') === '{total}'"
    ));
    let ids: Vec<String> = expected["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    let rows = |cdp: &mut Cdp| -> Vec<String> {
        serde_json::from_value(cdp.eval(
            "Array.from(document.querySelectorAll('#shop-orders-table tbody tr')).map(function (r) { return r.getAttribute('data-id'); }).sort()",
        ))
        .unwrap()
    };
    assert_eq!(rows(cdp), ids[..20]);
    cdp.eval("document.getElementById('orders-next').click(); true");
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('orders').getAttribute('data-offset') === '20'"
    ));
    assert_eq!(rows(cdp), ids[20..(40.min(ids.len()))]);
    cdp.screenshot("operator-filtered-orders");

    // The download: the link's URL fetched with the page's session cookie.
    let href = cdp.eval("document.getElementById('orders-csv').getAttribute('href')");
    let href = href.as_str().unwrap();
    assert!(href.starts_with("/orders.csv?"), "{href}");
    let csv = cdp.eval(&format!(
        "fetch({}).then(function (r) {{ return r.status === 200 ? r.text() : 'status ' + r.status; }})",
        Value::from(href)
    ));
    let csv = csv.as_str().unwrap().to_string();
    let export = Command::new(binary)
        .arg("--db")
        .arg(db)
        .args([
            "export",
            "orders",
            "--as-of",
            &end,
            "--shop",
            "S01",
            "--paid-from",
            "2026-03-15",
            "--paid-to",
            "2026-03-22",
            "--capped-day",
            "--format",
            "csv",
        ])
        .output()
        .expect("running penalty export orders");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let export = String::from_utf8(export.stdout).unwrap();
    let figures = |csv: &str| -> (usize, i64) {
        let lines: Vec<&str> = csv.trim_end().split("\r\n").skip(1).collect();
        let charged = lines
            .iter()
            .map(|line| line.split(',').nth(10).unwrap().parse::<i64>().unwrap())
            .sum();
        (lines.len(), charged)
    };
    let (count, charged) = figures(&csv);
    assert_eq!((count, charged), figures(&export));
    assert_eq!(count as u64, total);
    let api_charged: i64 = expected["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["charged_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(charged, api_charged);
    assert!(charged > 0);
    assert_eq!(csv, export, "the download is the export's bytes");

    // The booked ledger's link: every posting of the shop, as the export.
    let href = cdp.eval("document.getElementById('postings-csv').getAttribute('href')");
    let href = href.as_str().unwrap();
    assert!(href.starts_with("/shops/S01/postings.csv?"), "{href}");
    let postings = cdp.eval(&format!(
        "fetch({}).then(function (r) {{ return r.status === 200 ? r.text() : 'status ' + r.status; }})",
        Value::from(href)
    ));
    let export = Command::new(binary)
        .arg("--db")
        .arg(db)
        .args([
            "export", "postings", "--as-of", &end, "--shop", "S01", "--format", "csv",
        ])
        .output()
        .expect("running penalty export postings");
    assert!(export.status.success());
    assert_eq!(
        postings.as_str().unwrap(),
        String::from_utf8(export.stdout).unwrap()
    );
    let (_, booked) = api_as(
        addr,
        &format!("/shops/S01/postings?as_of={as_of}&limit=1"),
        OPERATOR,
    );
    assert_eq!(
        postings.as_str().unwrap().trim_end().split("\r\n").count() as u64 - 1,
        booked["total"].as_u64().unwrap()
    );

    // Closure review alone.
    set(cdp, "orders-capped", "e.checked = false");
    set(cdp, "orders-paid-from", "e.value = ''");
    set(cdp, "orders-paid-to", "e.value = ''");
    set(cdp, "orders-closure", "e.checked = true");
    let (_, flagged) = api_as(
        addr,
        &format!("/orders?as_of={as_of}&shop=S01&closure_review=true"),
        OPERATOR,
    );
    let flagged_total = flagged["total"].as_u64().unwrap();
    assert!(flagged_total > 0);
    cdp.wait_for(&format!(
        "{settled} && document.getElementById('orders').getAttribute('data-total') === '{flagged_total}' && document.getElementById('orders-csv').getAttribute('href').indexOf('closure_review=true') > 0"
    ));
    assert_eq!(
        cdp.eval("document.querySelectorAll('#shop-orders-table tbody tr').length"),
        flagged_total
    );
    cdp.screenshot("operator-closure-review");
}

/// The accessibility check of the main pages, in this harness.
mod a11y;
