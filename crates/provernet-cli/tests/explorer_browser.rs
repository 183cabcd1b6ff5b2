//! The explorer in a real browser: headless Chromium (Debian's `chromium`) loads its pages
//! from a validator of a two-validator network on which a job was proven, and the test checks
//! what a person would see there (the job's state, the prover's earnings, the height, a search
//! that goes nowhere) against the API, and that attacker-chosen text stays text. Screenshots go
//! to `target/test-output/explorer/`. Needs root (the prover nodes' sandbox) and Chromium; CI
//! installs it (`.ci/run`), elsewhere the test says how and passes without a browser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Chromium's headless flags: no sandbox (tests run as root), nothing fetched from outside.
fn browser(exe: &Path, profile: &Path) -> Command {
    let mut c = Command::new(exe);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1600",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The page's DOM once its data has loaded and rendered (`<body data-ready="1">`).
fn dom(exe: &Path, profile: &Path, url: &str) -> String {
    for _ in 0..4 {
        let out = browser(exe, profile)
            .args(["--virtual-time-budget=20000", "--dump-dom", url])
            .output()
            .expect("chromium runs");
        let html = String::from_utf8_lossy(&out.stdout).into_owned();
        if html.contains("data-ready=\"1\"") {
            return html;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{url} never finished loading in Chromium");
}

fn screenshot(exe: &Path, profile: &Path, url: &str, out: &Path) {
    // Headless Chromium now and then exits early on a loaded machine (as `dom` allows for):
    // a few tries, and the last one's words if none works.
    let mut last = String::new();
    for _ in 0..3 {
        let run = browser(exe, profile)
            .args(["--virtual-time-budget=20000"])
            .arg(format!("--screenshot={}", out.display()))
            .arg(url)
            .output()
            .expect("chromium runs");
        if run.status.success() && std::fs::metadata(out).is_ok_and(|m| m.len() > 10_000) {
            return;
        }
        last = format!("{}: {}", run.status, String::from_utf8_lossy(&run.stderr));
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("screenshot of {url} into {}: {last}", out.display());
}

/// The text directly inside the first element carrying `data-testid="<id>"`.
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("data-testid=\"{id}\"")).unwrap_or_else(|| panic!("{id}: {html}"));
    let start = at + html[at..].find('>').expect("tag ends") + 1;
    let end = start + html[start..].find('<').expect("text ends");
    html[start..end].trim()
}

/// An attribute of the first element carrying `data-testid="<id>"`.
fn attr_of<'a>(html: &'a str, id: &str, attr: &str) -> &'a str {
    let at = html.find(&format!("data-testid=\"{id}\"")).unwrap_or_else(|| panic!("{id}"));
    let open = html[..at].rfind('<').expect("tag opens");
    let close = at + html[at..].find('>').expect("tag ends");
    let tag = &html[open..close];
    let key = format!("{attr}=\"");
    let v = tag.find(&key).unwrap_or_else(|| panic!("{attr} in {tag}")) + key.len();
    &tag[v..v + tag[v..].find('"').expect("value ends")]
}

/// The response head of `GET path` (lower-case header names, as hyper writes them).
fn http_head(host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_shows_a_proven_job_and_its_prover_in_a_real_browser() {
    let Some(exe) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test: install Debian's chromium (.ci/run does)"
        );
        eprintln!("skipped: no Chromium here (apt-get install chromium)");
        return;
    };
    // Two validators; the job goes in through validator 0, the node and the browser use
    // validator 1.
    let mut net = Net::many(8, 2, 1, &[], |_| 1).await;
    net.start_node(0).await;
    deploy_native(&net, "winterfell-chain");
    let statement = format!("statement={}", net.write("statement", b"3 1024"));
    let id = submit(&net, "winterfell-chain", &[statement], &[]);
    let job = net.wait_final(&id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "Verified", "{job:#}");
    let prover_id = job["attempts"][0]["prover"].as_str().unwrap().to_owned();
    let api = &net.apis[1];
    let explorer = provernet_sdk::Client::new(api).unwrap();
    let prover = explorer.prover(&prover_id.parse().unwrap()).await.unwrap().unwrap();
    assert!(prover.earned_micro_credits.0 > 0, "the prover was paid: {prover:?}");

    let profile = tempfile::tempdir().unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-output/explorer");
    std::fs::create_dir_all(&shots).unwrap();

    // The job's page shows its state as the chain has it.
    let page = dom(&exe, profile.path(), &format!("{api}/#/job/{id}"));
    assert_eq!(text_of(&page, "job-status"), "Verified");
    assert_eq!(text_of(&page, "job-id"), id);
    screenshot(&exe, profile.path(), &format!("{api}/#/job/{id}"), &shots.join("job.png"));

    // The prover's page shows what it earned.
    let page = dom(&exe, profile.path(), &format!("{api}/#/prover/{prover_id}"));
    let earned = attr_of(&page, "prover-earned", "data-value");
    assert_eq!(earned, prover.earned_micro_credits.0.to_string());
    assert!(page.contains("µc"), "amounts are shown with their unit");
    screenshot(
        &exe,
        profile.path(),
        &format!("{api}/#/prover/{prover_id}"),
        &shots.join("prover.png"),
    );

    // Home: the height, the latest blocks and the charts.
    let page = dom(&exe, profile.path(), &format!("{api}/"));
    let height: u64 = text_of(&page, "status-height").parse().expect("a height");
    assert!(height >= job["finished_at"].as_u64().unwrap(), "{height}");
    for chart in ["chart-jobs-per-block", "chart-latency", "chart-rewards"] {
        assert!(page.contains(&format!("data-testid=\"{chart}\"")), "{chart}");
    }
    assert!(page.contains("<svg"), "charts are drawn");
    screenshot(&exe, profile.path(), &format!("{api}/"), &shots.join("home.png"));

    // A block with the job's submission.
    let submitted = job["submitted_at"].as_u64().unwrap();
    let page = dom(&exe, profile.path(), &format!("{api}/#/block/{submitted}"));
    assert_eq!(text_of(&page, "block-height"), submitted.to_string());
    assert!(page.contains("submit_job"), "the block lists the submission");

    // A search that finds nothing says so; markup in it is shown as text, never run.
    let page = dom(&exe, profile.path(), &format!("{api}/#/search?q=xyz"));
    assert!(text_of(&page, "search-error").contains("xyz"), "{page}");
    let hostile = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    let page = dom(&exe, profile.path(), &format!("{api}/#/search?q={hostile}"));
    assert!(!page.contains("<img"), "markup from the address bar became an element");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "it is shown as text");
    let page = dom(&exe, profile.path(), &format!("{api}/#/job/{}", "zz".repeat(32)));
    assert!(page.contains("data-testid=\"error\""), "a malformed id gets a message");

    // A workflow of two nodes, the second reading the first's proof: its page lists both,
    // and a node's job page links back to it.
    let flow = net.write(
        "flow.yaml",
        b"nodes:\n  - name: first\n    program: winterfell-chain\n    inputs:\n      statement: { text: \"3 64\" }\n  - name: second\n    program: winterfell-chain\n    inputs:\n      statement: { text: \"5 64\" }\n      previous: { from: first/proof }\n",
    );
    let w = net.cli_json(&["workflow", "submit", &flow, "--wait"]);
    assert_eq!(w["status"], "verified", "{w:#}");
    let wid = w["id"].as_str().unwrap().to_owned();
    let page = dom(&exe, profile.path(), &format!("{api}/#/workflow/{wid}"));
    assert_eq!(text_of(&page, "workflow-status"), "verified");
    assert_eq!(text_of(&page, "workflow-id"), wid);
    assert!(page.contains("data-testid=\"workflow-nodes\""), "{page}");
    assert!(page.contains("first/proof → previous"), "the wire is shown: {page}");
    screenshot(
        &exe,
        profile.path(),
        &format!("{api}/#/workflow/{wid}"),
        &shots.join("workflow.png"),
    );
    let second = w["nodes"][1]["job"].as_str().unwrap();
    let page = dom(&exe, profile.path(), &format!("{api}/#/job/{second}"));
    assert!(page.contains(&format!("#/workflow/{wid}")), "the job links its workflow");
    let page = dom(&exe, profile.path(), &format!("{api}/#/search?q={wid}"));
    assert_eq!(text_of(&page, "workflow-id"), wid, "a search finds the workflow");

    // The pages are served under the explorer's Content-Security-Policy.
    let head = http_head(api.trim_start_matches("http://"), "/");
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .unwrap_or_else(|| panic!("no CSP: {head}"));
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    net.nodes[0].kill();
}
