//! A small HTTP/1.1 client over `TcpStream` for the `serve` tests: every header is under the
//! test's control (Host, Origin, Sec-Fetch-Site, Last-Event-ID, cookies), bodies are bytes
//! (non-UTF-8 downloads compare exactly), and an event stream can be read event by event and
//! cut off mid-stream to test reconnection. Only loopback addresses are ever contacted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A whole response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "tests only talk to loopback");
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

fn send_head(
    s: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(body).expect("send body");
}

fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    (status, headers)
}

fn chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
}

/// One request; the whole response.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    request_with_body(addr, method, path, headers, b"")
}

/// One request with a body; the whole response.
pub(crate) fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = connect(addr);
    send_head(&mut s, addr, method, path, headers, body);
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut body = Vec::new();
    if method == "HEAD" {
    } else if chunked(&headers) {
        let mut c = Chunked {
            inner: r,
            left: 0,
            done: false,
        };
        c.read_to_end(&mut body).expect("chunked body");
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    Response {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

/// A `Transfer-Encoding: chunked` body as a plain reader.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        Ok(n)
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) event: String,
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

/// An open event stream.
pub(crate) struct Sse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    reader: Option<BufReader<Chunked<BufReader<TcpStream>>>>,
    stream: TcpStream,
}

/// Opens `path` as an event stream.
pub(crate) fn sse(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
    let mut s = connect(addr);
    let mut all = vec![("Accept", "text/event-stream")];
    all.extend_from_slice(headers);
    send_head(&mut s, addr, "GET", path, &all, b"");
    let stream = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let reader = (status == 200 && chunked(&headers)).then(|| {
        BufReader::new(Chunked {
            inner: r,
            left: 0,
            done: false,
        })
    });
    Sse {
        status,
        headers,
        reader,
        stream,
    }
}

impl Sse {
    /// The next event (comments skipped); `None` when the stream ended or `within` passed.
    pub(crate) fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + within;
        let reader = self.reader.as_mut()?;
        let mut ev = SseEvent::default();
        let mut any = false;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if any {
                    if ev.event.is_empty() {
                        ev.event = "message".into();
                    }
                    return Some(ev);
                }
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            any = true;
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            let v = v.strip_prefix(' ').unwrap_or(v);
            match k {
                "event" => ev.event = v.to_owned(),
                "id" => ev.id = Some(v.to_owned()),
                "data" => {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(v);
                }
                _ => {}
            }
        }
    }

    /// Events until `stop` says so (the stopping event included) or `within` passes.
    pub(crate) fn until(
        &mut self,
        within: Duration,
        stop: impl Fn(&SseEvent) -> bool,
    ) -> Vec<SseEvent> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(e) => {
                    let done = stop(&e);
                    out.push(e);
                    if done {
                        break;
                    }
                }
                None => break,
            }
        }
        out
    }

    /// Cuts the connection, as a network failure would.
    pub(crate) fn cut(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
