//! A "device" for integration tests: its own cookie jar, User-Agent and address, talking to the
//! app through Rocket's local client (no network, the real routing, guards and fairings).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};

use super::html::Document;

pub const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0";

/// What came back, owned, so a test can keep it after the next request.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> &str {
        self.header("Location")
            .unwrap_or_else(|| panic!("expected a redirect, got {} {}", self.status, self.body))
    }

    /// The `Set-Cookie` for `name`, parsed.
    pub fn set_cookie(&self, name: &str) -> Option<Cookie<'static>> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
            .filter_map(|(_, v)| Cookie::parse_encoded(v.clone()).ok())
            .find(|cookie| cookie.name() == name)
    }

    /// The body, parsed as HTML.
    pub fn html(&self) -> Document {
        Document::parse(&self.body)
    }

    /// The text of the first `data-testid` element (see [`Document::testid_text`]).
    pub fn testid_text(&self, testid: &str) -> Option<String> {
        self.html().testid_text(testid)
    }

    /// Whether the page says `words` (see [`Document::shows`]).
    pub fn shows(&self, words: &str) -> bool {
        self.html().shows(words)
    }

    /// The body as JSON; panics (with the body) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON, got {} {:?}: {e}", self.status, self.body))
    }

    /// The `error` code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
            .to_owned()
    }

    pub fn count_testid(&self, testid: &str) -> usize {
        self.html().count_testid(testid)
    }

    /// The hidden CSRF field of the (first) form on the page.
    pub fn csrf_token(&self) -> String {
        self.html().csrf_token()
    }

    /// Where the page's idle warning starts counting down from (`data-idle-seconds-left`).
    pub fn idle_seconds_left(&self) -> Option<String> {
        self.html()
            .testids("idle-warning")
            .first()?
            .value()
            .attr("data-idle-seconds-left")
            .map(str::to_owned)
    }
}

/// One browser: cookies persist between its requests, as a browser's would.
pub struct Device<'c> {
    client: &'c Client,
    cookies: Mutex<BTreeMap<String, String>>,
    pub user_agent: String,
    pub ip: IpAddr,
    pub extra_headers: Mutex<Vec<(String, String)>>,
}

impl<'c> Device<'c> {
    pub fn new(client: &'c Client) -> Self {
        Device::with(client, CHROME_LINUX, "127.0.0.1")
    }

    pub fn with(client: &'c Client, user_agent: &str, ip: &str) -> Self {
        Device {
            client,
            cookies: Mutex::new(BTreeMap::new()),
            user_agent: user_agent.to_owned(),
            ip: ip.parse().expect("test ip"),
            extra_headers: Mutex::new(Vec::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    /// Drops a cookie, as a browser does when its Max-Age has passed.
    pub fn forget_cookie(&self, name: &str) {
        self.cookies.lock().unwrap().remove(name);
    }

    pub fn session_cookie(&self) -> Option<String> {
        self.cookie("__Host-sid")
    }

    /// Builds a request as this device would send it.
    pub fn request(&self, method: rocket::http::Method, path: &str) -> LocalRequest<'c> {
        let mut request = self
            .client
            .req(method, path.to_owned())
            .remote(SocketAddr::new(self.ip, 40000))
            .header(Header::new("User-Agent", self.user_agent.clone()));
        for (name, value) in self.extra_headers.lock().unwrap().iter() {
            request = request.header(Header::new(name.clone(), value.clone()));
        }
        // The local client takes cookies as values (it does not parse a raw Cookie header).
        for (name, value) in self.cookies.lock().unwrap().iter() {
            request = request.cookie(Cookie::new(name.clone(), value.clone()));
        }
        request
    }

    /// Sends a request and keeps the cookies the response sets, as a browser would.
    pub async fn send(&self, request: LocalRequest<'c>) -> Reply {
        let response = request.dispatch().await;
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_owned()))
            .collect();
        let body = response.into_string().await.unwrap_or_default();
        let reply = Reply {
            status,
            headers,
            body,
        };
        let mut jar = self.cookies.lock().unwrap();
        for (name, value) in &reply.headers {
            if !name.eq_ignore_ascii_case("Set-Cookie") {
                continue;
            }
            let cookie = Cookie::parse_encoded(value.clone()).expect("well-formed Set-Cookie");
            let expired = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative());
            if expired || cookie.value().is_empty() {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        reply
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(rocket::http::Method::Get, path))
            .await
    }

    /// Posts a form. The body is built at once, so the fields need not outlive the request.
    pub fn post_form<'s>(
        &'s self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> impl Future<Output = Reply> + use<'s, 'c> {
        let body = form_body(fields);
        self.send(
            self.request(rocket::http::Method::Post, path)
                .header(ContentType::Form)
                .body(body),
        )
    }

    /// Posts a JSON body, as an API client would.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.send(
            self.request(rocket::http::Method::Post, path)
                .header(ContentType::JSON)
                .body(body.to_string()),
        )
        .await
    }

    /// A request carrying `Authorization: Bearer <token>`.
    pub async fn with_bearer(
        &self,
        method: rocket::http::Method,
        path: &str,
        token: &str,
    ) -> Reply {
        self.send(
            self.request(method, path)
                .header(Header::new("Authorization", format!("Bearer {token}"))),
        )
        .await
    }

    /// Signs in through the real form (CSRF token included); returns the POST's reply.
    pub async fn sign_in(&self, username: &str, password: &str) -> Reply {
        self.sign_in_to("/login", username, password).await
    }

    /// Signs in from a specific login URL (to carry `next`).
    pub async fn sign_in_to(&self, login_url: &str, username: &str, password: &str) -> Reply {
        let page = self.get(login_url).await;
        assert_eq!(page.status, Status::Ok, "login page: {}", page.body);
        let csrf = page.csrf_token();
        let next = page.html().field("next");
        let mut fields = vec![
            ("username", username),
            ("password", password),
            ("csrf_token", csrf.as_str()),
        ];
        if let Some(next) = next.as_deref() {
            fields.push(("next", next));
        }
        self.post_form("/login", &fields).await
    }

    /// A form post from a page of this session: the CSRF token is read from `page` first.
    pub async fn post_from(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.get(page).await.csrf_token();
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_form(action, &all).await
    }

    pub async fn sign_out(&self) -> Reply {
        self.post_from("/account", "/logout", &[]).await
    }
}

/// A form body, `application/x-www-form-urlencoded` as a browser encodes it.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// One value as a form body carries it (`a b&c` is `a+b%26c`).
pub fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Device<'_> {
    /// Re-enters the password at /confirm ("sudo mode"); returns the POST's reply.
    pub async fn confirm(&self, password: &str) -> Reply {
        self.confirm_at("/confirm", password).await
    }

    /// Confirms from a given confirmation page (one with `?next=`), as the form would: with the
    /// action the page names, if any.
    pub async fn confirm_at(&self, confirm_url: &str, password: &str) -> Reply {
        let page = self.get(confirm_url).await;
        let csrf = page.csrf_token();
        let page = page.html();
        let next = page.field("next").unwrap_or_default();
        let mut fields = vec![
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("next", next.as_str()),
        ];
        // The action the page names, when one waits for this confirmation.
        let action = page.field("action");
        if let Some(action) = action.as_deref() {
            fields.push(("action", action));
        }
        self.post_form("/confirm", &fields).await
    }

    /// The public ids of the account page's device rows, and which is this device.
    pub async fn devices(&self) -> Vec<(String, bool)> {
        let page = self.get("/account").await.html();
        page.testids("session-row")
            .into_iter()
            .map(|row| {
                let row = row.value();
                let public_id = row.attr("data-session-id").expect("a session id");
                (
                    public_id.to_owned(),
                    row.attr("data-current") == Some("true"),
                )
            })
            .collect()
    }
}
