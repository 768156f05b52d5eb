//! A scripted HTTP/1.1 server: answers each request with whatever the test's function says
//! and records what it received. For what the sandbox (a correct Finfra) never does: a proxy's
//! HTML 502, a redirect, an undecodable success, a token that is refused on every call, a
//! storage host that must not see our Bearer token.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Lower-case header names with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Scripted {
    pub url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw HTTP/1.1 response with `Connection: close` and a length.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status} Scripted\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

/// A JSON response.
pub fn json(status: u16, body: &str) -> String {
    response(status, &[("content-type", "application/json")], body)
}

/// The answer of a token endpoint: a token valid for an hour.
pub fn token(access: &str) -> String {
    token_with_ttl(access, 3600)
}

/// The answer of a token endpoint with `expires_in` = `ttl_secs`.
pub fn token_with_ttl(access: &str, ttl_secs: u64) -> String {
    json(
        200,
        &format!(
            r#"{{"access_token":"{access}","refresh_token":"r-{access}","token_type":"Bearer","expires_in":{ttl_secs}}}"#
        ),
    )
}

/// Starts a server that answers every request with `respond`.
pub async fn start(respond: impl Fn(&Seen) -> String + Send + Sync + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let respond = Arc::clone(&respond);
            tokio::spawn(async move {
                if let Some(request) = read_request(stream).await {
                    let (mut stream, seen) = request;
                    let answer = respond(&seen);
                    log.lock().expect("not poisoned").push(seen);
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    Scripted { url, seen, task }
}

async fn read_request(mut stream: TcpStream) -> Option<(TcpStream, Seen)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((
        stream,
        Seen {
            method,
            path,
            headers,
            body,
        },
    ))
}
