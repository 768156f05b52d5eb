//! SQL round trips, counted on the wire: a TCP proxy in this process between the benchmark's
//! store and PostgreSQL that reads the frontend protocol the client sends and counts the
//! messages after which the client waits for the server.
//!
//! A round trip is one `Sync` (`'S'`: the end of an extended-protocol batch, Parse / Bind /
//! Describe / Execute, which sqlx sends for every prepared statement), one simple `Query`
//! (`'Q'`: sqlx's `BEGIN`, `COMMIT`, `LISTEN`, raw SQL) or one `FunctionCall` (`'F'`, unused by
//! sqlx). Everything else (authentication, Terminate, the messages inside a batch) is not a
//! round trip. The store is not touched: whatever its code does, the wire says how often it
//! waited for the server.
//!
//! Framing: a startup packet has no type byte (4-byte big-endian length including itself,
//! then a 4-byte code); an `SSLRequest` or `GSSENCRequest` is answered `'N'` so the stream
//! stays plain (the proxied URL says `sslmode=disable` as well). Every later message is one
//! type byte and a 4-byte big-endian length that includes itself but not the type byte.
//! What the server sends is copied back untouched.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// `SSLRequest`'s code in a startup packet.
const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest`'s code.
const GSSENC_REQUEST: u32 = 80_877_104;
/// The longest startup packet accepted (PostgreSQL's own limit is 10,000 bytes).
const MAX_STARTUP: usize = 10_000;

/// What the proxy counted, from the client's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RoundTrips {
    /// `Sync` messages: extended-protocol batches (one per prepared-statement execution, two
    /// when sqlx first prepares a statement on a connection).
    pub syncs: u64,
    /// Simple-protocol `Query` messages.
    pub queries: u64,
    /// `FunctionCall` messages.
    pub function_calls: u64,
    /// Connections opened through the proxy.
    pub connections: u64,
}

impl RoundTrips {
    /// Every round trip.
    pub fn total(&self) -> u64 {
        self.syncs + self.queries + self.function_calls
    }
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    queries: AtomicU64,
    function_calls: AtomicU64,
    connections: AtomicU64,
}

impl Counters {
    fn add(&self, tally: Tally) {
        self.syncs.fetch_add(tally.syncs, Ordering::Relaxed);
        self.queries.fetch_add(tally.queries, Ordering::Relaxed);
        self.function_calls
            .fetch_add(tally.function_calls, Ordering::Relaxed);
    }
}

/// A running proxy; stopping it (or dropping it) closes every proxied connection.
pub struct RoundTripProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl RoundTripProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `upstream` (`host:port`).
    ///
    /// # Errors
    /// The listening socket cannot be bound.
    pub async fn start(upstream: String) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept(listener, upstream, counters.clone()));
        Ok(Self {
            addr,
            counters,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything counted so far.
    pub fn counted(&self) -> RoundTrips {
        RoundTrips {
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            queries: self.counters.queries.load(Ordering::Relaxed),
            function_calls: self.counters.function_calls.load(Ordering::Relaxed),
            connections: self.counters.connections.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and closes the proxied connections (their clients are closed already
    /// when the store was).
    pub fn stop(self) {
        self.accept.abort();
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts until aborted; the connections' tasks live in a set that is aborted with it.
async fn accept(listener: TcpListener, upstream: String, counters: Arc<Counters>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let (upstream, counters) = (upstream.clone(), counters.clone());
                    connections.spawn(async move {
                        if let Err(error) = relay(client, &upstream, &counters).await {
                            tracing::debug!(error.message = %error, "bench proxy connection ended");
                        }
                    });
                }
                Err(error) => {
                    tracing::debug!(error.message = %error, "bench proxy accept failed");
                }
            },
            // Reap finished connections so the set does not grow with the pool's churn.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One client connection: the startup exchange, then both directions until either closes.
async fn relay(mut client: TcpStream, upstream: &str, counters: &Counters) -> io::Result<()> {
    client.set_nodelay(true)?;
    let startup = loop {
        let mut length = [0u8; 4];
        client.read_exact(&mut length).await?;
        let length = u32::from_be_bytes(length) as usize;
        if !(8..=MAX_STARTUP).contains(&length) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("startup packet of {length} bytes"),
            ));
        }
        let mut packet = vec![0u8; length];
        packet[..4].copy_from_slice(&(length as u32).to_be_bytes());
        client.read_exact(&mut packet[4..]).await?;
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            // "Not supported here": the client goes on in plain text.
            client.write_all(b"N").await?;
            continue;
        }
        break packet;
    };
    let mut server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    server.write_all(&startup).await?;
    counters.connections.fetch_add(1, Ordering::Relaxed);

    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut frames = Frames::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = from_client.read(&mut buffer).await?;
            if read == 0 {
                to_server.shutdown().await?;
                return Ok::<(), io::Error>(());
            }
            counters.add(frames.feed(&buffer[..read]));
            to_server.write_all(&buffer[..read]).await?;
        }
    };
    let down = tokio::io::copy(&mut from_server, &mut to_client);
    // Either side closing ends the connection: the other has nothing more to say.
    tokio::select! {
        result = up => result,
        result = down => result.map(|_| ()),
    }
}

/// Round-trip messages seen in some bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    syncs: u64,
    queries: u64,
    function_calls: u64,
}

/// The frontend's message framing after the startup packet, fed in arbitrary pieces.
#[derive(Debug, Default)]
struct Frames {
    /// The type byte and length of the message being read, `have` bytes of it so far.
    header: [u8; 5],
    have: usize,
    /// Body bytes of the current message still to skip.
    remaining: usize,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) -> Tally {
        let mut tally = Tally::default();
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(bytes.len());
                self.remaining -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (5 - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have == 5 {
                self.have = 0;
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                self.remaining = length.saturating_sub(4);
                match self.header[0] {
                    b'S' => tally.syncs += 1,
                    b'Q' => tally.queries += 1,
                    b'F' => tally.function_calls += 1,
                    _ => {}
                }
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// A prepared statement's execution (Bind, Execute, Sync), a `BEGIN` and a Terminate.
    fn conversation() -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(message(b'B', b"\0stmt\0\0\0\0\0\0\0"));
        bytes.extend(message(b'E', b"\0\0\0\0\0"));
        bytes.extend(message(b'S', b""));
        bytes.extend(message(b'Q', b"BEGIN\0"));
        // A body that contains the letters S and Q must not count.
        bytes.extend(message(b'P', b"\0SELECT 'S', 'Q'\0\0\0"));
        bytes.extend(message(b'S', b""));
        bytes.extend(message(b'X', b""));
        bytes
    }

    #[test]
    fn counts_syncs_and_queries_whole() {
        let tally = Frames::default().feed(&conversation());
        assert_eq!(
            tally,
            Tally {
                syncs: 2,
                queries: 1,
                function_calls: 0
            }
        );
    }

    #[test]
    fn counts_the_same_in_any_split() {
        let bytes = conversation();
        for piece in 1..=bytes.len() {
            let mut frames = Frames::default();
            let mut total = Tally::default();
            for chunk in bytes.chunks(piece) {
                let t = frames.feed(chunk);
                total.syncs += t.syncs;
                total.queries += t.queries;
            }
            assert_eq!((total.syncs, total.queries), (2, 1), "pieces of {piece}");
        }
    }

    #[tokio::test]
    async fn answers_ssl_requests_with_n_and_forwards_the_startup() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream_addr = upstream.local_addr().expect("addr");
        let proxy = RoundTripProxy::start(upstream_addr.to_string())
            .await
            .expect("proxy");
        let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        client.write_all(&ssl).await.expect("ssl request");
        let mut answer = [0u8; 1];
        client.read_exact(&mut answer).await.expect("answer");
        assert_eq!(&answer, b"N");
        let mut startup = 8u32.to_be_bytes().to_vec();
        startup.extend_from_slice(&196_608u32.to_be_bytes());
        client.write_all(&startup).await.expect("startup");
        client
            .write_all(&message(b'Q', b"SELECT 1\0"))
            .await
            .expect("query");
        let (mut server, _) = upstream.accept().await.expect("accepted");
        let mut seen = vec![0u8; startup.len() + 14];
        server.read_exact(&mut seen).await.expect("forwarded");
        assert_eq!(&seen[..8], &startup[..]);
        assert_eq!(seen[8], b'Q');
        assert_eq!(proxy.counted().queries, 1);
        assert_eq!(proxy.counted().connections, 1);
        proxy.stop();
    }
}
