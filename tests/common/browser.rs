//! Headless Chromium (Debian's `chromium`, which `.ci/run` installs): a screenshot or the DOM
//! of a local HTML file. A test that needs it fails when it is missing — it does not skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds a browser run may take before `timeout` stops it.
const BROWSER_SECONDS: &str = "90";

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("the HTML report tests need Chromium: install Debian's `chromium` (`apt-get install chromium`; .ci/run does)")
    })
}

/// Runs headless Chromium on `page` with its own profile (tests run in parallel; root needs
/// `--no-sandbox`) and a 1280 x 4000 window, under a timeout; returns stdout.
fn run_on(page: &Path, extra: &[&str]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .arg(BROWSER_SECONDS)
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
            "--window-size=1280,4000",
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium on {}: {:?}\n{}",
        page.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The DOM of `page` after it loaded, serialized (`--dump-dom`).
pub fn dump_dom(page: &Path) -> String {
    String::from_utf8(run_on(page, &["--dump-dom"])).expect("utf-8 DOM")
}

/// A PNG screenshot of `page` written to `png`.
pub fn screenshot(page: &Path, png: &Path) {
    run_on(page, &[&format!("--screenshot={}", png.display())]);
    assert!(png.is_file(), "no screenshot at {}", png.display());
}
