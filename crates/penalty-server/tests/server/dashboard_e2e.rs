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

use super::support::{demo_events, http, repo_root, AS_OF};

/// `target/<profile>`, from this test binary's own path
/// (`target/<profile>/deps/server-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Builds the `penalty` binary of this workspace, in the same profile and
/// target directory as this test (a no-op when it is up to date), and
/// returns its path. The CLI depends on this crate, so it cannot be a
/// dependency here; building it is the robust way to get the real binary.
fn penalty_binary() -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(repo_root())
        .args(["build", "--quiet", "-p", "penalty-cli", "--bin", "penalty"])
        .arg("--target-dir")
        .arg(target);
    if profile.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    let status = command
        .status()
        .expect("running cargo build for the penalty binary");
    assert!(status.success(), "cargo build -p penalty-cli failed");
    let binary = profile.join(format!("penalty{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.exists(), "{} was not built", binary.display());
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
    let binary = penalty_binary();
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = Server(
        Command::new(&binary)
            .arg("--db")
            .arg(dir.path().join("db"))
            .args(["serve", "--addr", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting penalty serve"),
    );
    wait_healthy(addr, &mut server);

    // Load the demo through the API.
    let (status, body) = http(addr, "POST", "/events", None, &demo_events());
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["appended"], 757, "{summary}");

    let profile = dir.path().join("chromium-profile");
    let base = format!("http://{addr}");

    // The shops table.
    let shops = api(addr, &format!("/shops?as_of={AS_OF}"));
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
    assert!(dom.contains("id=\"sort-flags\""));
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
