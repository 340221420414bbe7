//! A small HTTP/1.1 client for servers the tools start on 127.0.0.1: whether a page answers
//! (`.ci/run`, the benchmarks waiting for a server), and requests on one kept-alive connection
//! (the sign-in timing benchmark). Loopback only, no TLS; bodies by `Content-Length`, chunked,
//! or up to the end of the connection.

use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// An answer: status, headers in the order they came, body, and how long it took from the
/// request's first byte sent to the body's last byte read.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Response {
    /// The values of every header called `name` (any case).
    pub fn header<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the body holds `text`.
    pub fn body_contains(&self, text: &str) -> bool {
        let text = text.as_bytes();
        self.body.windows(text.len()).any(|window| window == text)
    }
}

/// One client of `127.0.0.1:port`, keeping its connection open between requests.
pub struct Client {
    port: u16,
    timeout: Duration,
    connection: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client of `127.0.0.1:port` whose connects, reads and writes each give up after `timeout`.
    pub fn new(port: u16, timeout: Duration) -> Client {
        Client {
            port,
            timeout,
            connection: None,
        }
    }

    /// Sends one request and reads its answer. If the kept connection fails (the server closed
    /// it), the request is sent once more on a new one, and timed from there.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        match self.try_send(method, path, headers, body) {
            Ok(response) => Ok(response),
            Err(_) => {
                self.connection = None;
                self.try_send(method, path, headers, body)
            }
        }
    }

    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let request = request(method, self.port, path, headers, body);
        if self.connection.is_none() {
            self.connection = Some(BufReader::new(connect(self.port, self.timeout)?));
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let started = Instant::now();
        connection.get_mut().write_all(&request)?;
        let (mut response, keep) = read_response(connection, method == "HEAD")?;
        response.elapsed = started.elapsed();
        if !keep {
            self.connection = None;
        }
        Ok(response)
    }
}

/// The status of `GET path` on `127.0.0.1:port`, on a connection of its own, or `None` when
/// nothing answers within `timeout` (per connect, write and read).
pub fn status_of(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let mut connection = BufReader::new(connect(port, timeout).ok()?);
    let request = request("GET", port, path, &[("Connection", "close")], b"");
    connection.get_mut().write_all(&request).ok()?;
    read_response(&mut connection, false)
        .ok()
        .map(|(response, _)| response.status)
}

fn connect(port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The bytes of a request, with `Host` and `Content-Length` added.
fn request(method: &str, port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// One line without its line ending; an error at the end of the stream.
fn line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads one response (to a HEAD request if `head`), and whether the connection stays open.
fn read_response(reader: &mut impl BufRead, head: bool) -> io::Result<(Response, bool)> {
    let status_line = line(reader)?;
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid("not an HTTP/1 status line"))?;
    let mut headers = Vec::new();
    loop {
        let header = line(reader)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| invalid("a header line without a colon"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut keep = version == "HTTP/1.1"
        && !response
            .header("Connection")
            .any(|value| value.eq_ignore_ascii_case("close"));
    let chunked = response
        .header("Transfer-Encoding")
        .any(|value| value.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("Content-Length")
        .next()
        .map(str::parse::<usize>)
        .transpose()
        .map_err(|_| invalid("a Content-Length that is not a number"))?;
    let has_body = !(head || status / 100 == 1 || status == 204 || status == 304);
    if has_body && chunked {
        response.body = read_chunked(reader)?;
    } else if let (true, Some(length)) = (has_body, length) {
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else if has_body {
        reader.read_to_end(&mut response.body)?;
        keep = false;
    }
    Ok((response, keep))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = line(reader)?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| invalid("a chunk size that is not hex"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            while !line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !line(reader)?.is_empty() {
            return Err(invalid("a chunk longer than its size"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> (Response, bool) {
        read_response(&mut io::BufReader::new(bytes), false).unwrap()
    }

    #[test]
    fn a_body_is_read_to_its_content_length_and_the_connection_kept() {
        let (response, keep) = parse(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 5\r\n\r\nhelloNEXT",
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello");
        assert_eq!(
            response.header("Set-Cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert!(response.body_contains("ell") && !response.body_contains("NEXT"));
        assert!(keep);
    }

    #[test]
    fn a_chunked_body_is_put_together() {
        let (response, keep) = parse(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"er\r\na;x=y\r\nror\":\"no\"}\r\n0\r\n\r\n",
        );
        assert_eq!(response.status, 401);
        assert_eq!(response.body, b"{\"error\":\"no\"}");
        assert!(keep);
    }

    #[test]
    fn a_body_without_a_length_ends_with_the_connection() {
        let (response, keep) = parse(b"HTTP/1.1 303 See Other\r\nConnection: close\r\n\r\nrest");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (303, &b"rest"[..])
        );
        assert!(!keep);
        let (_, keep) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert!(!keep);
    }

    #[test]
    fn what_is_not_http_is_an_error() {
        for bytes in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert!(read_response(&mut io::BufReader::new(bytes), false).is_err());
        }
    }

    #[test]
    fn a_request_names_its_host_and_length() {
        let bytes = request("POST", 8000, "/login", &[("Cookie", "a=b")], b"x=1");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 3\r\nCookie: a=b\r\n\r\nx=1"
        );
    }

    #[test]
    fn a_port_nothing_listens_on_has_no_status() {
        let free = pg_cluster::any_free_port().unwrap();
        assert_eq!(status_of(free, "/", Duration::from_secs(1)), None);
    }
}
