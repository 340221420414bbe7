//! A "device" for integration tests: its own cookie jar, User-Agent and address, talking to the
//! app through Rocket's local client (no network, the real routing, guards and fairings).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};

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

    /// The value of a `data-testid` element's text (first match), for simple page assertions.
    pub fn testid_text(&self, testid: &str) -> Option<String> {
        let marker = format!("data-testid=\"{testid}\"");
        let start = self.body.find(&marker)?;
        let open_end = start + self.body[start..].find('>')? + 1;
        let close = open_end + self.body[open_end..].find('<')?;
        Some(self.body[open_end..close].trim().to_owned())
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
        self.body
            .matches(&format!("data-testid=\"{testid}\""))
            .count()
    }

    /// The hidden CSRF field of the (first) form on the page.
    pub fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf_token in page: {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').expect("closing quote");
        self.body[start..end].to_owned()
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
            .map(|h| (h.name().to_string(), h.value().to_string()))
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
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
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
        let next = hidden_field(&page.body, "next");
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

fn hidden_field(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = start + body[start..].find('"')?;
    Some(html_unescape(&body[start..end]))
}

fn html_unescape(value: &str) -> String {
    value
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

/// Percent-encodes a form value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
        let next = hidden_field(&page.body, "next").unwrap_or_default();
        let mut fields = vec![
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("next", next.as_str()),
        ];
        // The action the page names, when one waits for this confirmation.
        let action = hidden_field(&page.body, "action");
        if let Some(action) = action.as_deref() {
            fields.push(("action", action));
        }
        self.post_form("/confirm", &fields).await
    }

    /// The public ids of the account page's device rows, and which is this device.
    pub async fn devices(&self) -> Vec<(String, bool)> {
        let page = self.get("/account").await;
        page.body
            .split("data-testid=\"session-row\"")
            .skip(1)
            .map(|row| {
                let current = row.trim_start().starts_with("data-current=\"true\"");
                let marker = "data-session-id=\"";
                let start = row.find(marker).expect("session id") + marker.len();
                let end = start + row[start..].find('"').expect("quote");
                (row[start..end].to_owned(), current)
            })
            .collect()
    }
}
