//! Raw HTTP/1.1 over a socket to an app on 127.0.0.1: for bytes no client library would send
//! (broken cookies, control characters, repeated headers) and for the app binary running as a
//! process of its own. Every header line goes out exactly as written.

use rocket::http::Cookie;
use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpStream;
use serde_json::Value;

use super::html::Document;
use super::http::form_body;

/// One request, built line by line. `Host` (127.0.0.1 and the port), `Connection: close` and,
/// when there is a body or the method is not GET, `Content-Length` are added when it is sent.
pub struct RawRequest {
    method: String,
    path: String,
    header_lines: Vec<String>,
    body: Vec<u8>,
}

impl RawRequest {
    pub fn new(method: &str, path: &str) -> RawRequest {
        RawRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            header_lines: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(path: &str) -> RawRequest {
        RawRequest::new("GET", path)
    }

    pub fn post(path: &str) -> RawRequest {
        RawRequest::new("POST", path)
    }

    /// One header line, sent byte for byte (`"Cookie: __Host-sid=%%%"`).
    pub fn header(mut self, line: impl Into<String>) -> RawRequest {
        self.header_lines.push(line.into());
        self
    }

    /// Several header lines, in order.
    pub fn headers<L: Into<String>>(mut self, lines: impl IntoIterator<Item = L>) -> RawRequest {
        self.header_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// The body, as bytes (no `Content-Type` is added: say it with [`RawRequest::header`]).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = body.into();
        self
    }

    /// A form body (`application/x-www-form-urlencoded`, encoded by `form_urlencoded`).
    pub fn form(self, fields: &[(&str, &str)]) -> RawRequest {
        self.header("Content-Type: application/x-www-form-urlencoded")
            .body(form_body(fields))
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> RawRequest {
        self.header("Content-Type: application/json")
            .body(body.to_string())
    }

    /// The request's bytes, as they go to the app listening on `port`.
    pub fn to_bytes(&self, port: u16) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n",
            self.method, self.path
        );
        if !self.body.is_empty() || self.method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for line in &self.header_lines {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends the request over a fresh connection to 127.0.0.1:`port` and reads the whole answer.
    pub async fn send(self, port: u16) -> RawResponse {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .write_all(&self.to_bytes(port))
            .await
            .expect("send the request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read the response");
        RawResponse::parse(&String::from_utf8_lossy(&response))
    }
}

/// A response as it came over the wire: the status code, the head (status line and header
/// lines) and the body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// Parses a whole answer as read from the socket.
    pub fn parse(raw: &str) -> RawResponse {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        RawResponse {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// The value of a response header (the first one of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Where a redirect points; panics when the response is not one.
    pub fn location(&self) -> &str {
        self.header("Location")
            .unwrap_or_else(|| panic!("expected a redirect, got {}", self.head))
    }

    /// The whole `Set-Cookie` value of the cookie `name` (with its attributes).
    pub fn set_cookie_line(&self, name: &str) -> String {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(key, _)| key.eq_ignore_ascii_case("Set-Cookie"))
            .map(|(_, value)| value.trim())
            .find(|value| value.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {}", self.head))
            .to_owned()
    }

    /// The cookie `name` as the response sets it, parsed.
    pub fn set_cookie(&self, name: &str) -> Cookie<'static> {
        Cookie::parse_encoded(self.set_cookie_line(name))
            .unwrap_or_else(|e| panic!("malformed Set-Cookie for {name}: {e}"))
    }

    /// The value of the cookie `name` as it is on the wire: what a browser sends back.
    pub fn cookie(&self, name: &str) -> String {
        let line = self.set_cookie_line(name);
        let pair = line.split(';').next().unwrap_or_default();
        pair[name.len() + 1..].to_owned()
    }

    /// The body, parsed as HTML.
    pub fn html(&self) -> Document {
        Document::parse(&self.body)
    }

    /// The body as JSON; panics (with the body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON, got {} {:?}: {e}", self.status, self.body))
    }
}
