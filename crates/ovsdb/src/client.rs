use crate::error::Error;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Where an OVSDB server listens: `unix:PATH`, a bare absolute path, or
/// `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(String),
    Tcp(String),
}

impl Endpoint {
    /// Checks the form up front, so a bad endpoint is a configuration
    /// error and not a failure to connect: unix paths must be absolute, TCP
    /// endpoints an IP address and port (no name lookups).
    pub fn parse(s: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| Error::Protocol(format!("OVSDB endpoint {s:?} {why}"));
        if let Some(a) = s.strip_prefix("tcp:") {
            a.parse::<std::net::SocketAddr>()
                .map_err(|_| bad("is not tcp:IP:PORT"))?;
            return Ok(Endpoint::Tcp(a.to_string()));
        }
        let path = s.strip_prefix("unix:").unwrap_or(s);
        if !path.starts_with('/') {
            return Err(bad(
                "is neither unix:/ABSOLUTE/PATH, /ABSOLUTE/PATH nor tcp:IP:PORT",
            ));
        }
        Ok(Endpoint::Unix(path.to_string()))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{p}"),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// One OVSDB connection. Replies are matched to requests by id; `update`
/// notifications that arrive meanwhile are queued for [`Client::next_update`].
pub struct Client {
    writer: Stream,
    reader: Stream,
    framer: crate::framer::Framer,
    next_id: u64,
    updates: VecDeque<Value>,
    timeout: Option<Duration>,
}

impl Client {
    pub fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Client, Error> {
        let connect_err = |source| Error::Connect {
            endpoint: endpoint.to_string(),
            source,
        };
        let stream = match endpoint {
            Endpoint::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(connect_err)?),
            Endpoint::Tcp(a) => {
                let addr = a
                    .parse()
                    .map_err(|_| Error::Protocol(format!("{a:?} is not HOST:PORT")))?;
                let s = TcpStream::connect_timeout(&addr, timeout).map_err(connect_err)?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = stream.try_clone()?;
        Ok(Client {
            writer: stream,
            reader,
            framer: crate::framer::Framer::default(),
            next_id: 1,
            updates: VecDeque::new(),
            timeout: Some(timeout),
        })
    }

    /// Sends a request and waits for its reply, answering `echo` requests
    /// and queueing notifications that arrive in between.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}))?;
        loop {
            let msg = self.read_message()?;
            if msg.get("id").and_then(Value::as_u64) == Some(id) && msg.get("method").is_none() {
                return match msg.get("error") {
                    None | Some(Value::Null) => {
                        Ok(msg.get("result").cloned().unwrap_or(Value::Null))
                    }
                    Some(e) => Err(Error::Rpc {
                        method: method.to_string(),
                        error: e.to_string(),
                    }),
                };
            }
        }
    }

    /// Runs one transaction on `db` and returns the per-operation results,
    /// or the first operation error.
    pub fn transact(&mut self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, Error> {
        let n = ops.len();
        let mut params = Vec::with_capacity(n + 1);
        params.push(Value::String(db.to_string()));
        params.extend(ops);
        let result = self.call("transact", Value::Array(params))?;
        let Value::Array(results) = result else {
            return Err(Error::Protocol(format!(
                "transact result is not a list: {result}"
            )));
        };
        for (index, r) in results.iter().enumerate() {
            if let Some(err) = r.get("error").and_then(Value::as_str) {
                return Err(Error::Transaction {
                    index,
                    error: err.to_string(),
                    details: r.get("details").and_then(Value::as_str).map(str::to_string),
                });
            }
        }
        if results.len() < n {
            return Err(Error::Protocol(format!(
                "transact returned {} results for {n} operations",
                results.len()
            )));
        }
        Ok(results)
    }

    /// Starts a monitor and returns the initial table contents.
    pub fn monitor(
        &mut self,
        db: &str,
        monitor_id: Value,
        requests: Value,
    ) -> Result<Value, Error> {
        self.call("monitor", json!([db, monitor_id, requests]))
    }

    /// The next `update` notification's table-updates, waiting at most
    /// `timeout`; `Ok(None)` when none arrived in time.
    pub fn next_update(&mut self, timeout: Duration) -> Result<Option<Value>, Error> {
        if let Some(u) = self.updates.pop_front() {
            return Ok(Some(u));
        }
        self.writer
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let got = self.read_message();
        self.writer.set_read_timeout(self.timeout)?;
        match got {
            Ok(_) => Ok(self.updates.pop_front()),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Changes how long a reply may take, e.g. around a blocking `wait`.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), Error> {
        self.timeout = Some(timeout);
        self.writer.set_read_timeout(self.timeout)?;
        Ok(())
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub fn echo(&mut self) -> Result<(), Error> {
        self.call("echo", json!(["linen"])).map(|_| ())
    }

    fn send(&mut self, msg: &Value) -> Result<(), Error> {
        let bytes = serde_json::to_vec(msg)?;
        self.writer.write_all(&bytes)?;
        Ok(())
    }

    /// Reads one message; handles server-initiated requests in place.
    fn read_message(&mut self) -> Result<Value, Error> {
        let msg: Value = loop {
            if let Some(bytes) = self.framer.next_message() {
                break serde_json::from_slice(&bytes)?;
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.reader.read(&mut chunk)?;
            if n == 0 {
                return Err(Error::Closed);
            }
            self.framer.push(&chunk[..n]);
        };
        match msg.get("method").and_then(Value::as_str) {
            Some("echo") => {
                let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
                self.send(&reply)?;
            }
            Some("update") => {
                if let Some(updates) = msg["params"].get(1) {
                    self.updates.push_back(updates.clone());
                }
            }
            _ => {}
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A scripted server on a socketpair-like listener: it checks each request
    /// and writes back what the test says, exercising the stream framing.
    fn serve(
        script: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> (Endpoint, thread::JoinHandle<()>, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("db.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let h = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            script(&mut s);
        });
        (Endpoint::Unix(path.to_string_lossy().into_owned()), h, dir)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "ovsdb-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn read_one(s: &mut UnixStream) -> Value {
        let mut de = serde_json::Deserializer::from_reader(s).into_iter::<Value>();
        de.next().unwrap().unwrap()
    }

    #[test]
    fn answers_echo_and_queues_updates_while_waiting_for_a_reply() {
        let (ep, h, _d) = serve(|s| {
            let req = read_one(s);
            assert_eq!(req["method"], "transact");
            assert_eq!(req["params"][0], "Open_vSwitch");
            // Interleave an echo and an update before the reply, in one
            // write with no delimiters, as a real server may.
            s.write_all(
                br#"{"id":"echo","method":"echo","params":[]}{"id":null,"method":"update","params":[null,{"Bridge":{}}]}"#,
            )
            .unwrap();
            let echo = read_one(s);
            assert_eq!(echo["id"], "echo");
            assert_eq!(echo["result"], json!([]));
            let reply = json!({"id": req["id"], "result": [{"rows": []}], "error": null});
            s.write_all(reply.to_string().as_bytes()).unwrap();
        });
        let mut c = Client::connect(&ep, Duration::from_secs(5)).unwrap();
        let r = c
            .transact(
                "Open_vSwitch",
                vec![json!({"op":"select","table":"Bridge","where":[]})],
            )
            .unwrap();
        assert_eq!(r, vec![json!({"rows": []})]);
        assert_eq!(
            c.next_update(Duration::from_millis(10)).unwrap(),
            Some(json!({"Bridge":{}}))
        );
        h.join().unwrap();
    }

    #[test]
    fn operation_errors_are_reported_with_their_index() {
        let (ep, h, _d) = serve(|s| {
            let req = read_one(s);
            let reply = json!({"id": req["id"], "error": null, "result": [
                {}, {"error": "timed out", "details": "wait"}
            ]});
            s.write_all(reply.to_string().as_bytes()).unwrap();
        });
        let mut c = Client::connect(&ep, Duration::from_secs(5)).unwrap();
        let e = c
            .transact("Open_vSwitch", vec![json!({}), json!({})])
            .unwrap_err();
        assert!(e.is_wait_timeout());
        assert!(matches!(e, Error::Transaction { index: 1, .. }));
        h.join().unwrap();
    }

    #[test]
    fn a_closed_server_is_an_error_not_a_hang() {
        let (ep, h, _d) = serve(|_| {});
        let mut c = Client::connect(&ep, Duration::from_secs(5)).unwrap();
        h.join().unwrap();
        assert!(matches!(c.echo(), Err(Error::Closed) | Err(Error::Io(_))));
    }

    #[test]
    fn no_update_within_timeout_is_none() {
        let (ep, h, _d) = serve(|_| thread::sleep(Duration::from_millis(100)));
        let mut c = Client::connect(&ep, Duration::from_secs(5)).unwrap();
        assert_eq!(c.next_update(Duration::from_millis(20)).unwrap(), None);
        drop(c);
        h.join().unwrap();
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("/run/db.sock").unwrap(),
            Endpoint::Unix("/run/db.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:/x").unwrap(),
            Endpoint::Unix("/x".into())
        );
        assert_eq!(
            Endpoint::parse("tcp:127.0.0.1:6640").unwrap(),
            Endpoint::Tcp("127.0.0.1:6640".into())
        );
        assert!(Endpoint::parse("db.sock").is_err());
        assert!(Endpoint::parse("unix:relative.sock").is_err());
        assert!(Endpoint::parse("tcp:localhost:6640").is_err());
        assert_eq!(
            Endpoint::parse("tcp:[::1]:6640").unwrap(),
            Endpoint::Tcp("[::1]:6640".into())
        );
    }
}
