//! Test harness shared by the integration tests: starts `shardline-node` or a
//! reference `redis-server` on a free port (killed on drop, even when the
//! test panics) and talks raw RESP to them.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod writer;

/// Default timeout for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the reference server used by differential tests.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Path of the `shardline-node` binary: cargo's own when the node's tests
/// run; for other packages' tests that include this harness, the one in the
/// workspace's target directory, built first if missing.
pub fn node_bin() -> String {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_shardline-node") {
        return bin.to_string();
    }
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            let bin = target.join("debug").join("shardline-node");
            // Always ask cargo: it returns at once when the binary is fresh.
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-q", "-p", "shardline-node"])
                .current_dir(&workspace)
                .status()
                .expect("run cargo build -p shardline-node");
            assert!(status.success(), "cargo build -p shardline-node failed");
            bin.to_string_lossy().into_owned()
        })
        .clone()
}

/// A port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A running server process, killed when dropped.
pub struct Server {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Starts `shardline-node` with `args` on a free port, with its own
    /// temporary `--dir`, and waits until it answers PING.
    pub fn start(args: &[&str]) -> Server {
        Self::start_bin(&node_bin(), args, &[])
    }

    /// Starts the reference `redis-server` (no persistence).
    pub fn start_redis() -> Server {
        if !Path::new(REDIS_SERVER).exists() {
            panic!(
                "{REDIS_SERVER} not found: the differential and tool tests need redis-server 7.0; \
                 run the test command from the README (it installs redis-server, redis-cli and \
                 redis-benchmark first)"
            );
        }
        Self::start_redis_with(&[])
    }

    /// Starts the reference `redis-server` (no persistence) with extra
    /// arguments.
    pub fn start_redis_with(args: &[&str]) -> Server {
        if !Path::new(REDIS_SERVER).exists() {
            panic!("{REDIS_SERVER} not found: run the README's test command first");
        }
        Self::start_redis_with_files(&[], args)
    }

    /// Starts the reference `redis-server` (no persistence) with extra
    /// arguments, after writing `files` (name, content) into its `--dir`
    /// (e.g. a `dump.rdb` for it to load at startup).
    pub fn start_redis_with_files(files: &[(&str, &[u8])], args: &[&str]) -> Server {
        if !Path::new(REDIS_SERVER).exists() {
            panic!("{REDIS_SERVER} not found: run the README's test command first");
        }
        let mut all = vec!["--save", "", "--appendonly", "no"];
        all.extend_from_slice(args);
        Self::start_bin(REDIS_SERVER, &all, files)
    }

    fn start_bin(bin: &str, args: &[&str], files: &[(&str, &[u8])]) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..8 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            for (name, content) in files {
                std::fs::write(dir.path().join(name), content).expect("write file");
            }
            let log = dir.path().join("server.log");
            let logf = std::fs::File::create(&log).expect("create log");
            let mut cmd = Command::new(bin);
            cmd.arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--dir")
                .arg(dir.path());
            cmd.args(args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("clone log"))
                .stderr(logf);
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot spawn {bin}: {e}"),
            };
            let mut s = Server {
                port,
                child,
                dir,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = s.child.try_wait() {
                    last_err = format!("{bin} exited early: {}", s.log_text());
                    break;
                }
                if let Ok(mut c) = Conn::try_connect(port) {
                    // PONG, or NOAUTH when a password is required.
                    if let Ok(r) = c.try_call(&[b"PING"]) {
                        if r == Reply::Status("PONG".into())
                            || matches!(&r, Reply::Error(e) if e.starts_with("NOAUTH"))
                        {
                            return s;
                        }
                    }
                }
                if Instant::now() > deadline {
                    last_err = format!("{bin} did not answer PING: {}", s.log_text());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Port taken by someone else, or a slow start: try another port.
        }
        panic!("could not start {bin}: {last_err}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new raw connection to the server.
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    /// A `redis` crate async connection.
    pub async fn redis_async(&self) -> redis::aio::MultiplexedConnection {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("redis client");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Whether the process has exited (waits up to `within`).
    pub fn exited_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A decoded RESP2/RESP3 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Nil,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Push(Vec<Reply>),
    Double(String),
    Bool(bool),
    Verbatim(String, Vec<u8>),
    BigNum(String),
}

impl Reply {
    pub fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }
    pub fn ok() -> Reply {
        Reply::Status("OK".into())
    }
    /// Text of a bulk, status or verbatim reply.
    pub fn text(&self) -> String {
        match self {
            Reply::Bulk(b) | Reply::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            other => panic!("not a string reply: {other:?}"),
        }
    }
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("not an integer reply: {other:?}"),
        }
    }
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => v,
            other => panic!("not an array reply: {other:?}"),
        }
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

fn find_line(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// Parses one reply starting at `pos`. `Ok(None)` = incomplete.
pub fn parse_reply(buf: &[u8], pos: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(end) = find_line(buf, pos + 1) else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[pos + 1..end]).into_owned();
    let next = end + 2;
    let num = || -> Result<i64, String> {
        line.parse::<i64>()
            .map_err(|_| format!("bad length line {line:?}"))
    };
    let agg = |n: i64, mut at: usize| -> Result<Option<(Vec<Reply>, usize)>, String> {
        let mut v = Vec::new();
        for _ in 0..n {
            match parse_reply(buf, at)? {
                Some((r, p)) => {
                    v.push(r);
                    at = p;
                }
                None => return Ok(None),
            }
        }
        Ok(Some((v, at)))
    };
    Ok(match t {
        b'+' => Some((Reply::Status(line), next)),
        b'-' => Some((Reply::Error(line), next)),
        b':' => Some((Reply::Int(num()?), next)),
        b'_' => Some((Reply::Nil, next)),
        b',' => Some((Reply::Double(line), next)),
        b'(' => Some((Reply::BigNum(line), next)),
        b'#' => Some((Reply::Bool(line == "t"), next)),
        b'$' | b'=' | b'!' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let n = n as usize;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            let data = buf[next..next + n].to_vec();
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err("bulk not terminated by CRLF".into());
            }
            let r = match t {
                b'$' => Reply::Bulk(data),
                b'!' => Reply::Error(String::from_utf8_lossy(&data).into_owned()),
                _ => {
                    let fmt = String::from_utf8_lossy(&data[..3.min(data.len())]).into_owned();
                    Reply::Verbatim(fmt, data.get(4..).unwrap_or_default().to_vec())
                }
            };
            Some((r, next + n + 2))
        }
        b'*' | b'~' | b'>' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            agg(n, next)?.map(|(v, p)| {
                let r = match t {
                    b'*' => Reply::Array(v),
                    b'~' => Reply::Set(v),
                    _ => Reply::Push(v),
                };
                (r, p)
            })
        }
        b'%' => {
            let n = num()?;
            match agg(2 * n, next)? {
                None => None,
                Some((v, p)) => {
                    let mut pairs = Vec::new();
                    let mut it = v.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Some((Reply::Map(pairs), p))
                }
            }
        }
        other => {
            return Err(format!(
                "unexpected reply type byte {:?}",
                char::from(other)
            ))
        }
    })
}

/// Encodes a request as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A raw, blocking RESP connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        Self::try_connect(port).unwrap_or_else(|e| panic!("connect to port {port}: {e}"))
    }

    pub fn try_connect(port: u16) -> std::io::Result<Conn> {
        Self::try_connect_addr(&format!("127.0.0.1:{port}"))
    }

    /// Connects to `ip:port` (any address, e.g. a 127.0.x.y loopback).
    pub fn try_connect_addr(addr: &str) -> std::io::Result<Conn> {
        let sa: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
        let stream = TcpStream::connect_timeout(&sa, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads more bytes; Ok(0) on EOF.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads one complete reply and returns its raw bytes.
    pub fn try_read_raw(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            match parse_reply(&self.buf, 0) {
                Ok(Some((_, end))) => {
                    let raw: Vec<u8> = self.buf.drain(..end).collect();
                    return Ok(raw);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        ErrorKind::InvalidData,
                        format!("{e}: {:?}", String::from_utf8_lossy(&self.buf)),
                    ))
                }
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed with partial reply {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    pub fn read_raw(&mut self) -> Vec<u8> {
        self.try_read_raw().expect("read reply")
    }

    pub fn try_read(&mut self) -> std::io::Result<Reply> {
        let raw = self.try_read_raw()?;
        let (r, _) = parse_reply(&raw, 0)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?
            .expect("complete reply");
        Ok(r)
    }

    pub fn read(&mut self) -> Reply {
        self.try_read().expect("read reply")
    }

    pub fn try_call(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.try_send(&encode(args))?;
        self.try_read()
    }

    /// Sends a command and returns its decoded reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.send(&encode(args));
        self.read()
    }

    /// `call` with string arguments.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.call(&a)
    }

    /// Splits a command line on spaces and runs it.
    pub fn run(&mut self, line: &str) -> Reply {
        let a: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&a)
    }

    /// Sends a command and returns the raw reply bytes.
    pub fn call_raw(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_raw()
    }

    /// True if the server closes the connection within `within` (reading
    /// and discarding anything it still sends).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Bytes received but not yet consumed as replies.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// True if nothing arrives within `within`.
    pub fn nothing_within(&mut self, within: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(within)).expect("timeout");
        let mut tmp = [0u8; 4096];
        let r = match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                false
            }
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
        self.stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("timeout");
        r
    }
}

/// The value of `field` in an INFO reply.
pub fn info_field(info: &Reply, field: &str) -> Option<String> {
    let text = info.text();
    text.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// INFO `section` field as an integer (panics if missing).
pub fn info_int(c: &mut Conn, section: &str, field: &str) -> i64 {
    let info = c.cmd(&["INFO", section]);
    info_field(&info, field)
        .unwrap_or_else(|| panic!("INFO {section} lacks {field}: {info:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("INFO field {field} is not an integer"))
}

/// Polls `f` until it returns true or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
