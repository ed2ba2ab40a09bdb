//! DUMP, RESTORE, RESTORE-ASKING and MIGRATE, as redis 7.0's (cluster.c).
//!
//! MIGRATE holds the shard locks of its keys across the whole exchange with
//! the target, so that a client never sees a key on both instances or on
//! neither: redis blocks the whole server for the same reason. The blocking
//! socket I/O runs under `block_in_place` on the multi-threaded runtime, so
//! the worker's other tasks move to another thread meanwhile.
//!
//! Connections to targets are cached per "host:port" (as redis's
//! `migrate_cached_sockets`, at most 64) and closed once idle for more than
//! 10 seconds. A connection is taken out of the cache while a MIGRATE uses
//! it, so two MIGRATEs running at once on different shards never share one.

use crate::cmdspec::atoi;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{eq_ic, err, int_arg, Access, CmdError, CmdResult, Ctx, Entry, SYNTAX};
use crate::engine::table::LRU_CLOCK_MAX;
use crate::engine::View;
use crate::node::unix_ms;
use crate::rdb::{crc64, dump_payload, restore_verified_payload, RDB_VERSION};

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let k = |run| Entry {
        run,
        access: Access::Keys,
    };
    m.insert("dump", k(dump));
    m.insert("restore", k(restore));
    m.insert("restore-asking", k(restore));
    m.insert("migrate", k(migrate));
}

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const BAD_FORMAT: &str = "ERR Bad data format";

fn dump(ctx: &mut Ctx) -> CmdResult {
    let key = &ctx.args[1];
    let view = ctx.view()?;
    let payload = view.get(key).map(dump_payload);
    match payload {
        Some(p) => ctx.out.bulk(&p),
        None => ctx.out.null(),
    }
    Ok(())
}

/// Redis's verifyDumpPayload: at least the 10-byte footer, an RDB version
/// we know, and a matching CRC64.
fn payload_ok(p: &[u8]) -> bool {
    if p.len() < 10 {
        return false;
    }
    let footer = &p[p.len() - 10..];
    if u16::from_le_bytes([footer[0], footer[1]]) > RDB_VERSION {
        return false;
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    crc64(&p[..p.len() - 8]) == u64::from_le_bytes(crc)
}

/// RESTORE / RESTORE-ASKING key ttl payload [REPLACE] [ABSTTL]
/// [IDLETIME seconds] [FREQ frequency]. Checks run in redis's order:
/// options, BUSYKEY, TTL, payload checksum, payload decoding.
fn restore(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let key = &args[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut freq, mut idle) = (-1i64, -1i64);
    let mut j = 4;
    while j < args.len() {
        let more = args.len() - j - 1;
        let a = &args[j];
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "absttl") {
            absttl = true;
        } else if eq_ic(a, "idletime") && more >= 1 && freq == -1 {
            idle = int_arg(&args[j + 1])?;
            if idle < 0 {
                return err("ERR Invalid IDLETIME value, must be >= 0");
            }
            j += 1;
        } else if eq_ic(a, "freq") && more >= 1 && idle == -1 {
            freq = int_arg(&args[j + 1])?;
            if !(0..=255).contains(&freq) {
                return err("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            j += 1;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    let limits = ctx.node.hot.limits();
    // A replica keeps keys whose absolute TTL is already past: its master
    // decides (redis's checkAlreadyExpired).
    let keep_expired = ctx.client.is_master || ctx.node.repl.is_replica();
    let view = ctx.view()?;
    if !replace && view.lookup_quiet(key) {
        return err(BUSYKEY);
    }
    let mut ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return err("ERR Invalid TTL value, must be >= 0");
    }
    let payload = &args[3];
    if !payload_ok(payload) {
        return err(BAD_PAYLOAD);
    }
    let value = restore_verified_payload(payload, &limits).map_err(|e| {
        tracing::debug!("RESTORE of a bad payload: {e}");
        CmdError::new(BAD_FORMAT)
    })?;
    let deleted = replace && view.delete_lazy(key);
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(view.now_ms);
    }
    if ttl != 0 && ttl <= view.now_ms && !keep_expired {
        // Already expired: the key is gone (or never created), as redis.
        if deleted {
            view.propagate(&[b"DEL", key]);
        }
        ctx.out.ok();
        return Ok(());
    }
    view.set(key, value, false);
    if ttl != 0 {
        view.set_expire(key, Some(ttl));
        if !absttl {
            // Propagated with the TTL as an absolute time.
            let at = ttl.to_string();
            let mut rewritten: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            rewritten[2] = at.as_bytes();
            rewritten.push(b"ABSTTL");
            view.propagate(&rewritten);
        }
    }
    set_lru_or_lfu(view, key, freq, idle);
    ctx.out.ok();
    Ok(())
}

/// Redis's objectSetLRUOrLFU for RESTORE: FREQ under an LFU policy,
/// IDLETIME (seconds) otherwise; the other option is ignored.
fn set_lru_or_lfu(view: &mut View, key: &[u8], freq: i64, idle: i64) {
    if view.lfu.is_some() {
        if (0..=255).contains(&freq) {
            let field = ((crate::engine::now_minutes() & 0xffff) << 8) | freq as u32;
            view.set_lru(key, field);
        }
    } else if idle >= 0 {
        let idle = idle.wrapping_mul(1000) / 1000;
        let mut abs = i64::from(view.lru_clock).wrapping_sub(idle);
        if abs < 0 {
            abs = abs.wrapping_add(i64::from(LRU_CLOCK_MAX));
        }
        view.set_lru(key, (abs as u64 & u64::from(LRU_CLOCK_MAX)) as u32);
    }
}

// ---------------------------------------------------------------------------
// MIGRATE
// ---------------------------------------------------------------------------

/// Cached connections kept at most (redis's MIGRATE_SOCKET_CACHE_ITEMS).
const CACHE_ITEMS: usize = 64;
/// A cached connection idle for longer than this is closed.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Longest reply line accepted from the target.
const MAX_LINE: u64 = 64 * 1024;

struct Cached {
    conn: BufReader<TcpStream>,
    /// The database last selected on this connection (-1: unknown).
    last_dbid: i64,
    last_use: Instant,
}

#[derive(Default)]
struct Cache {
    conns: HashMap<Vec<u8>, Cached>,
    pruner: bool,
}

fn cache() -> &'static Mutex<Cache> {
    static C: OnceLock<Mutex<Cache>> = OnceLock::new();
    C.get_or_init(Mutex::default)
}

/// Why no connection was made.
pub(super) enum ConnectFail {
    /// The address did not resolve, or connecting timed out: redis's
    /// "connecting" error.
    Connecting,
    /// The target refused the connection. Redis connects without blocking
    /// and only sees this when it writes, so it is a write error (retried
    /// once, like any other).
    Refused,
}

pub(super) fn connect(
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> Result<TcpStream, ConnectFail> {
    let host = std::str::from_utf8(host).map_err(|_| ConnectFail::Connecting)?;
    // getaddrinfo takes the port as a decimal service name, and keeps only
    // its low 16 bits.
    let port = atoi(port);
    if port < 0 {
        return Err(ConnectFail::Connecting);
    }
    let port = (port & 0xffff) as u16;
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("MIGRATE: cannot resolve {host}: {e}");
            return Err(ConnectFail::Connecting);
        }
    };
    let mut fail = ConnectFail::Connecting;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => {
                tracing::debug!("MIGRATE: cannot connect to {a}: {e}");
                fail = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset => {
                        ConnectFail::Refused
                    }
                    _ => ConnectFail::Connecting,
                };
            }
        }
    }
    Err(fail)
}

/// The cached connection for `name`, or a new one (None if connecting
/// failed). The connection leaves the cache until `checkin`.
fn checkout(
    name: &[u8],
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> Result<Cached, ConnectFail> {
    let cached = {
        let mut c = cache().lock();
        let found = c.conns.remove(name);
        if found.is_none() && c.conns.len() >= CACHE_ITEMS {
            if let Some(k) = c.conns.keys().next().cloned() {
                c.conns.remove(&k);
            }
        }
        found
    };
    let mut cs = match cached {
        Some(cs) => cs,
        None => Cached {
            conn: BufReader::new(connect(host, port, timeout)?),
            last_dbid: -1,
            last_use: Instant::now(),
        },
    };
    cs.last_use = Instant::now();
    let s = cs.conn.get_ref();
    if s.set_read_timeout(Some(timeout)).is_err() || s.set_write_timeout(Some(timeout)).is_err() {
        return Err(ConnectFail::Connecting);
    }
    Ok(cs)
}

/// Returns a healthy connection to the cache, starting the thread that
/// closes idle connections if it is not running.
fn checkin(name: Vec<u8>, cs: Cached) {
    let mut c = cache().lock();
    c.conns.entry(name).or_insert(cs);
    if c.pruner {
        return;
    }
    c.pruner = true;
    let spawned = std::thread::Builder::new()
        .name("migrate-cache".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            let mut c = cache().lock();
            c.conns.retain(|_, cs| cs.last_use.elapsed() <= CACHE_TTL);
            if c.conns.is_empty() {
                c.pruner = false;
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the MIGRATE connection cache thread: {e}");
        c.pruner = false;
    }
}

/// Runs blocking I/O without stalling the async runtime's other tasks.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads one reply line, without its CRLF. An early end of the stream is
/// an error.
pub(super) fn read_line(r: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed or reply line too long",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// What came back from one exchange with the target.
enum Io {
    /// Writing, or reading the AUTH or SELECT reply, failed.
    Early { write_error: bool, timed_out: bool },
    Replies {
        auth: Option<Vec<u8>>,
        select: Option<Vec<u8>>,
        /// One line per RESTORE read before any socket error.
        lines: Vec<Vec<u8>>,
        /// Set when reading a RESTORE reply failed (true: a timeout).
        socket_error: Option<bool>,
    },
}

fn exchange(cs: &mut Cached, cmd: &[u8], auth: bool, select: bool, n: usize) -> Io {
    if let Err(e) = cs.conn.get_mut().write_all(cmd) {
        return Io::Early {
            write_error: true,
            timed_out: is_timeout(&e),
        };
    }
    let mut read_opt = |wanted: bool| -> Result<Option<Vec<u8>>, Io> {
        if !wanted {
            return Ok(None);
        }
        read_line(&mut cs.conn).map(Some).map_err(|e| Io::Early {
            write_error: false,
            timed_out: is_timeout(&e),
        })
    };
    let auth = match read_opt(auth) {
        Ok(l) => l,
        Err(io) => return io,
    };
    let select = match read_opt(select) {
        Ok(l) => l,
        Err(io) => return io,
    };
    let mut lines = Vec::with_capacity(n);
    let mut socket_error = None;
    for _ in 0..n {
        match read_line(&mut cs.conn) {
            Ok(l) => lines.push(l),
            Err(e) => {
                socket_error = Some(is_timeout(&e));
                break;
            }
        }
    }
    Io::Replies {
        auth,
        select,
        lines,
        socket_error,
    }
}

pub(super) fn bulk(buf: &mut Vec<u8>, b: &[u8]) {
    buf.push(b'$');
    buf.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(b);
    buf.extend_from_slice(b"\r\n");
}

pub(super) fn array(buf: &mut Vec<u8>, n: usize) {
    buf.push(b'*');
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

pub(super) fn io_error(write_error: bool) -> CmdError {
    CmdError(format!(
        "IOERR error or timeout {} to target instance",
        if write_error { "writing" } else { "reading" }
    ))
}

struct MigrateArgs<'a> {
    host: &'a [u8],
    port: &'a [u8],
    keys: &'a [Bytes],
    dbid: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    username: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    restore_cmd: &'static [u8],
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password] [AUTH2 username password] [KEYS key ...]
fn migrate(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (mut copy, mut replace) = (false, false);
    let (mut username, mut password): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let (mut first_key, mut num_keys) = (3, 1);
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = &args[j];
        if eq_ic(a, "copy") {
            copy = true;
        } else if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "auth") {
            if more == 0 {
                return err(SYNTAX);
            }
            j += 1;
            password = Some(&args[j]);
        } else if eq_ic(a, "auth2") {
            if more < 2 {
                return err(SYNTAX);
            }
            username = Some(&args[j + 1]);
            password = Some(&args[j + 2]);
            j += 2;
        } else if eq_ic(a, "keys") {
            if !args[3].is_empty() {
                return err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                );
            }
            first_key = j + 1;
            num_keys = args.len() - j - 1;
            break;
        } else {
            return err(SYNTAX);
        }
        j += 1;
    }
    let timeout = int_arg(&args[5])?;
    let dbid = int_arg(&args[4])?;
    let timeout_ms = if timeout <= 0 { 1000 } else { timeout as u64 };
    // Bounded so that deadlines computed from it cannot overflow.
    let timeout = Duration::from_millis(timeout_ms.min(30 * 86_400_000));
    let m = MigrateArgs {
        host: &args[1],
        port: &args[2],
        keys: args.get(first_key..first_key + num_keys).unwrap_or(&[]),
        dbid,
        timeout,
        copy,
        replace,
        username,
        password,
        restore_cmd: if ctx.node.cluster.get().is_some() {
            b"RESTORE-ASKING"
        } else {
            b"RESTORE"
        },
    };
    let view = ctx.view()?;
    let reply = migrate_keys(view, &m)?;
    ctx.out.simple(reply);
    Ok(())
}

/// Sends the keys that exist to the target and, on success, deletes them
/// (unless COPY). Returns the status reply ("OK" or "NOKEY").
fn migrate_keys(view: &mut View, m: &MigrateArgs) -> Result<&'static str, CmdError> {
    // The keys found here and their payloads (made once: the shard locks
    // are held throughout, so the values cannot change).
    let mut found: Vec<(&Bytes, Vec<u8>)> = Vec::new();
    for k in m.keys {
        if let Some(v) = view.get(k) {
            found.push((k, dump_payload(v)));
        }
    }
    if found.is_empty() {
        return Ok("NOKEY");
    }
    let name = [m.host, b":", m.port].concat();
    let mut may_retry = true;
    loop {
        let mut cs = match blocking(|| checkout(&name, m.host, m.port, m.timeout)) {
            Ok(cs) => cs,
            Err(ConnectFail::Connecting) => {
                return Err(CmdError::new(
                    "IOERR error or timeout connecting to the client",
                ))
            }
            Err(ConnectFail::Refused) => {
                if may_retry {
                    may_retry = false;
                    continue;
                }
                return Err(io_error(true));
            }
        };
        let mut cmd = Vec::new();
        if let Some(pw) = m.password {
            array(&mut cmd, if m.username.is_some() { 3 } else { 2 });
            bulk(&mut cmd, b"AUTH");
            if let Some(u) = m.username {
                bulk(&mut cmd, u);
            }
            bulk(&mut cmd, pw);
        }
        let select = cs.last_dbid != m.dbid;
        if select {
            array(&mut cmd, 2);
            bulk(&mut cmd, b"SELECT");
            bulk(&mut cmd, itoa::Buffer::new().format(m.dbid).as_bytes());
        }
        let now = unix_ms();
        let mut sent: Vec<usize> = Vec::with_capacity(found.len());
        for (i, (k, payload)) in found.iter().enumerate() {
            let mut ttl = 0;
            if let Some(at) = view.expire_at(k) {
                ttl = at - now;
                if ttl < 0 {
                    continue;
                }
                ttl = ttl.max(1);
            }
            sent.push(i);
            array(&mut cmd, if m.replace { 5 } else { 4 });
            bulk(&mut cmd, m.restore_cmd);
            bulk(&mut cmd, k);
            bulk(&mut cmd, itoa::Buffer::new().format(ttl).as_bytes());
            bulk(&mut cmd, payload);
            if m.replace {
                bulk(&mut cmd, b"REPLACE");
            }
        }
        let io = blocking(|| exchange(&mut cs, &cmd, m.password.is_some(), select, sent.len()));
        let (auth, select_reply, lines, socket_error) = match io {
            Io::Early {
                write_error,
                timed_out,
            } => {
                // The connection is dropped (closed); retry once on a
                // fresh one unless it timed out.
                drop(cs);
                if !timed_out && may_retry {
                    may_retry = false;
                    continue;
                }
                return Err(io_error(write_error));
            }
            Io::Replies {
                auth,
                select,
                lines,
                socket_error,
            } => (auth, select, lines, socket_error),
        };
        let is_err = |l: &Option<Vec<u8>>| l.as_ref().is_some_and(|l| l.first() == Some(&b'-'));
        let (auth_bad, select_bad) = (is_err(&auth), is_err(&select_reply));
        let mut target_error: Option<CmdError> = None;
        let mut acked: Vec<usize> = Vec::new();
        for (j, line) in lines.iter().enumerate() {
            if auth_bad || select_bad || line.first() == Some(&b'-') {
                if target_error.is_none() {
                    cs.last_dbid = -1;
                    let e = match (&auth, &select_reply) {
                        (Some(a), _) if auth_bad => a,
                        (_, Some(s)) if select_bad => s,
                        _ => line,
                    };
                    let text = String::from_utf8_lossy(e.get(1..).unwrap_or_default())
                        .replace(['\r', '\n'], " ");
                    target_error = Some(CmdError(format!(
                        "ERR Target instance replied with error: {text}"
                    )));
                }
            } else if !m.copy {
                acked.push(sent[j]);
            }
        }
        if target_error.is_none() && socket_error == Some(false) && lines.is_empty() && may_retry {
            // Nothing was processed: retry once on a new connection.
            drop(cs);
            may_retry = false;
            continue;
        }
        if !acked.is_empty() {
            let mut del: Vec<&[u8]> = Vec::with_capacity(acked.len() + 1);
            del.push(b"DEL");
            for &i in &acked {
                let k = found[i].0;
                view.delete_lazy(k);
                del.push(k);
            }
            view.propagate(&del);
        }
        if socket_error.is_some() {
            drop(cs);
            return Err(target_error.unwrap_or_else(|| io_error(false)));
        }
        if let Some(e) = target_error {
            checkin(name, cs);
            return Err(e);
        }
        cs.last_dbid = m.dbid;
        checkin(name, cs);
        return Ok("OK");
    }
}
