//! One headless Chromium per `Browser`, each with its own ChromeDriver, profile folder and cookies
//! (two browsers are two devices). Browser tests run one at a time: each is ~10 processes.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rocket::tokio::sync::{Mutex, MutexGuard};
use rocket::tokio::time::sleep;
use serde_json::json;
use url::Url;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Where screenshots go, to be looked at after a run.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// The widths every checked page is looked at: a desktop window and the narrowest common phone.
const WIDTHS: [(&str, u32, u32); 2] = [("desktop", 1200, 900), ("phone", 320, 900)];

/// axe-core's script, from its npm package: `scripts/test` fetches it and sets `AXE_CORE_JS`.
fn axe_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
            panic!("AXE_CORE_JS is not set: run the browser tests through scripts/test, which fetches axe-core")
        });
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {path}: {error}"))
    })
}

/// The focused element as a screen reader announces it (`Browser::focus_on`).
#[derive(Debug)]
pub struct Focus {
    /// Its `role` attribute ("alert"), or "" without one.
    pub role: String,
    /// Its text, without what is hidden from assistive technology, whitespace collapsed.
    pub text: String,
    /// The texts its `aria-describedby` names, in order, whitespace collapsed.
    pub description: String,
}

/// Serializes browser tests within this binary.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn program(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// What Chromium needs to take part in Device Bound Session Credentials on a test machine: the
/// feature without an origin-trial token or refresh quota, and software keys instead of a TPM
/// (dropping either stops registration on Chromium 156).
const DBSC_FEATURES: &str = "--enable-features=DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false/\
CheckSubdomainRegistration/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting";

impl Browser {
    pub async fn launch() -> Browser {
        Browser::launch_with(Vec::new(), None).await
    }

    /// A browser whose clock reads in the time zone `tz` (an IANA name, as `TZ` takes it).
    pub async fn launch_in_time_zone(tz: &str) -> Browser {
        Browser::launch_with(Vec::new(), Some(tz)).await
    }

    /// A browser with DBSC switched on that trusts the certificate whose public key hashes to
    /// `spki_sha256` (see `tls::TlsProxy`) as if a CA had issued it.
    pub async fn launch_dbsc(spki_sha256: &str) -> Browser {
        Browser::launch_with(
            vec![
                DBSC_FEATURES.to_owned(),
                format!("--ignore-certificate-errors-spki-list={spki_sha256}"),
            ],
            None,
        )
        .await
    }

    /// A browser that sends this User-Agent: another kind of device, as the app sees it.
    pub async fn launch_as(user_agent: &str) -> Browser {
        Browser::launch_with(vec![format!("--user-agent={user_agent}")], None).await
    }

    async fn launch_with(extra_args: Vec<String>, tz: Option<&str>) -> Browser {
        let port = free_port();
        let mut driver = Command::new(program("CHROMEDRIVER", "/usr/bin/chromedriver"));
        // The browser inherits the driver's environment, and with it the time zone.
        if let Some(tz) = tz {
            driver.env("TZ", tz);
        }
        let driver = driver
            .arg(format!("--port={port}"))
            // Its own process group, which the browser joins: one signal stops both (see Drop).
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/test installs it)");
        let profile =
            std::env::temp_dir().join(format!("ss-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--window-size=1200,900",
        ]
        .map(String::from)
        .into();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra_args);
        let capabilities = json!({
            "goog:chromeOptions": { "binary": program("CHROMIUM", "/usr/bin/chromium"), "args": args }
        });
        let capabilities = capabilities.as_object().expect("an object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        profile,
                    };
                }
                Err(error) => last_error = Some(error),
            }
            sleep(Duration::from_millis(100)).await;
        }
        panic!("chromium did not start through chromedriver: {last_error:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn by_testid(&self, testid: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(5))
            .for_element(Locator::Css(&format!("[data-testid=\"{testid}\"]")))
            .await
            .expect(testid)
    }

    /// Sends `name: value` with every request from now on, as a proxy in front of the app would
    /// add it: with the app's `ip_header` set to `name`, the browser appears to come from the
    /// address `value` (every browser here is otherwise on loopback, one network).
    pub async fn send_header(&self, name: &str, value: &str) {
        self.devtools("Network.enable", json!({})).await;
        self.devtools(
            "Network.setExtraHTTPHeaders",
            json!({ "headers": { name: value } }),
        )
        .await;
    }

    /// Runs a DevTools protocol command in the current tab, through ChromeDriver.
    async fn devtools(&self, command: &str, params: serde_json::Value) {
        self.client
            .issue_cmd(DevTools {
                command: command.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|error| panic!("DevTools {command}: {error}"));
    }

    pub async fn has_testid(&self, testid: &str) -> bool {
        self.client
            .find(Locator::Css(&format!("[data-testid=\"{testid}\"]")))
            .await
            .is_ok()
    }

    pub async fn count_testid(&self, testid: &str) -> usize {
        self.client
            .find_all(Locator::Css(&format!("[data-testid=\"{testid}\"]")))
            .await
            .map_or(0, |found| found.len())
    }

    pub async fn text_of(&self, testid: &str) -> String {
        self.by_testid(testid).await.text().await.expect("text")
    }

    pub async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("[name=\"{name}\"]")))
            .await
            .expect(name);
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Clicks and waits for the next page: the clicked element goes stale once the browser has
    /// navigated, even when the new page has the same URL (a form that posts back to its page).
    pub async fn click_and_wait(&self, locator: Locator<'_>) {
        let element = self.client.find(locator).await.expect("element to click");
        element.click().await.expect("click");
        for _ in 0..200 {
            if element.tag_name().await.is_err() {
                break;
            }
            sleep(Duration::from_millis(25)).await;
        }
        self.wait_loaded().await;
    }

    /// Submits the form that contains `[name=field]` and waits for the next page.
    pub async fn submit(&self, form_css: &str) {
        self.click_and_wait(Locator::Css(&format!("{form_css} button[type=submit]")))
            .await;
    }

    pub async fn wait_loaded(&self) {
        for _ in 0..100 {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .expect("js");
            if state == json!("complete") {
                return;
            }
            sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.client.get_named_cookie(name).await.ok()
    }

    /// Looks at the page as it is now, at desktop and at phone width: axe-core finds no
    /// accessibility violation, nothing scrolls sideways, and a screenshot of each lands in
    /// target/screenshots/ (`{name}-desktop.png`, `{name}-phone.png`).
    pub async fn screenshot(&self, name: &str) {
        for (label, width, height) in WIDTHS {
            self.client
                .set_window_size(width, height)
                .await
                .expect("resize the window");
            let inner = self
                .client
                .execute("return window.innerWidth", vec![])
                .await
                .expect("js");
            assert_eq!(inner, json!(width), "{name}: the {label} viewport");
            let overflow = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                    vec![],
                )
                .await
                .expect("js");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(screenshot_dir().join(format!("{name}-{label}.png")), png)
                .expect("write screenshot");
            assert!(
                overflow.as_i64().is_some_and(|px| px <= 0),
                "{name} scrolls sideways at {width} px wide by {overflow} px"
            );
            let violations = self.axe_violations().await;
            assert!(
                violations.is_empty(),
                "axe-core finds accessibility violations on {name} at {width} px wide:\n{}",
                violations.join("\n")
            );
        }
        let (_, width, height) = WIDTHS[0];
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Runs axe-core (every rule it applies by default: WCAG 2.x A and AA and its best
    /// practices) on the page, and describes each violation with the elements it found.
    async fn axe_violations(&self) -> Vec<String> {
        // Injected through WebDriver, which the page's Content-Security-Policy does not govern;
        // once per page (the script is half a megabyte).
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object'", vec![])
            .await
            .expect("js");
        if loaded != json!(true) {
            self.client
                .execute(axe_source(), vec![])
                .await
                .expect("inject axe-core");
        }
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ["violations"] }).then(
                  (results) => done(results.violations.map((v) =>
                    v.id + " (" + v.impact + "): " + v.help + "\n    " +
                    v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary.replace(/\n/g, " ")).join("\n    "))),
                  (error) => done(["axe-core failed: " + error]));"#,
                vec![],
            )
            .await
            .expect("run axe-core");
        serde_json::from_value(found).expect("a list of violations")
    }

    /// Presses a key where the focus is, as a keyboard user does.
    pub async fn press(&self, key: Key) {
        self.type_text(&char::from(key).to_string()).await;
    }

    /// Types into the focused element.
    pub async fn type_text(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(text)
            .await
            .expect("type");
    }

    /// Presses Tab until the focus is on `css` (at most 40 times), as a keyboard user gets there.
    pub async fn tab_to(&self, css: &str) {
        for _ in 0..40 {
            if self.focus_matches(css).await {
                return;
            }
            self.press(Key::Tab).await;
        }
        panic!("Tab never reached {css}");
    }

    /// Whether a page just loaded gives `css` the focus: waited for up to 3 s, since a page's
    /// `autofocus` applies as it renders, which on a loaded machine can follow its load event.
    pub async fn autofocused(&self, css: &str) -> bool {
        for _ in 0..100 {
            if self.focus_matches(css).await {
                return true;
            }
            sleep(Duration::from_millis(30)).await;
        }
        false
    }

    /// Whether the focused element matches `css`.
    pub async fn focus_matches(&self, css: &str) -> bool {
        self.client
            .execute(
                "return document.activeElement !== null && document.activeElement.matches(arguments[0])",
                vec![json!(css)],
            )
            .await
            .expect("js")
            == json!(true)
    }

    /// What a screen reader says on reaching the focused element once `css` has the focus
    /// (waited for up to 3 s: a page's `autofocus` applies as it renders): its role, its text,
    /// and the text of what its `aria-describedby` names. Panics if the focus goes elsewhere.
    pub async fn focus_on(&self, css: &str) -> Focus {
        for _ in 0..100 {
            if self.focus_matches(css).await {
                let found = self
                    .client
                    .execute(
                        "const focused = document.activeElement;
                         const described = (focused.getAttribute('aria-describedby') || '').split(' ')
                           .map((id) => document.getElementById(id)).filter((e) => e !== null)
                           .map((e) => e.textContent.replace(/\\s+/g, ' ').trim()).join(' ');
                         const heard = focused.cloneNode(true);
                         heard.querySelectorAll('[aria-hidden=true]').forEach((e) => e.remove());
                         return [focused.getAttribute('role') || '',
                                 heard.textContent.replace(/\\s+/g, ' ').trim(), described];",
                        vec![],
                    )
                    .await
                    .expect("js");
                let (role, text, description) =
                    serde_json::from_value(found).expect("role, text, description");
                return Focus {
                    role,
                    text,
                    description,
                };
            }
            sleep(Duration::from_millis(30)).await;
        }
        let focused = self
            .client
            .execute(
                "return document.activeElement.outerHTML.slice(0, 200)",
                vec![],
            )
            .await
            .expect("js");
        panic!("the focus is not on {css} but on {focused}");
    }

    /// Presses Enter on the focused element and waits for the page it leads to.
    pub async fn press_enter_and_wait(&self) {
        let focused = self.client.active_element().await.expect("focus");
        focused
            .send_keys(&char::from(Key::Enter).to_string())
            .await
            .expect("Enter");
        for _ in 0..200 {
            if focused.tag_name().await.is_err() {
                break;
            }
            sleep(Duration::from_millis(25)).await;
        }
        self.wait_loaded().await;
    }

    pub async fn title(&self) -> String {
        self.client.title().await.expect("title")
    }

    pub async fn sign_in(&self, base_url: &str, username: &str, password: &str) {
        self.goto(&format!("{base_url}/login")).await;
        self.fill("username", username).await;
        self.fill("password", password).await;
        self.submit("[data-testid=login-form]").await;
    }

    /// Ends the WebDriver session politely; `Drop` then stops the processes.
    pub async fn close(self) {
        self.client.clone().close().await.ok();
    }
}

/// Also runs when a test panics half-way: no driver or browser outlives its test.
impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .ok();
        self.driver.wait().ok();
        std::fs::remove_dir_all(&self.profile).ok();
    }
}

/// `POST /session/{id}/goog/cdp/execute`: ChromeDriver's way to send a DevTools protocol command.
#[derive(Debug)]
struct DevTools {
    command: String,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}
