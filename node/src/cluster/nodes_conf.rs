//! The Redis 7.0 `nodes.conf` / `CLUSTER NODES` line format, atomic writing
//! of the file, and the lock that keeps two processes from sharing one file.
//!
//! This module only knows the text format; it holds no cluster logic (which
//! nodes to save, forcing a replica's configEpoch to 0 on load, turning
//! non-zero ping/pong times into "now" ... are the caller's business).
//!
//! Line format (see the shared spec, cluster-bus.md §7.1):
//!
//! ```text
//! <id> <ip>:<port>@<cport>[,<hostname>] <flags> <master|-> <ping_sent> <pong_recv> <config_epoch> <connected|disconnected> [slot|a-b ...] [[S->-ID] | [S-<-ID] ...]
//! ```
//!
//! and nodes.conf ends with `vars currentEpoch <n> lastVoteEpoch <n>`. We
//! add ` shard-id <40 chars>` to that line for our own shard id; redis 7.0
//! logs "Skipping unknown cluster config variable 'shard-id'" and goes on,
//! so the file stays loadable by redis 7.0.
//!
//! Parsing follows redis 7.0's `clusterLoadConfig`, except that everything
//! redis reads leniently (`atoi`) or panics on is a [`NodesConfError::Parse`]
//! here, naming the 1-based line number. Redis 7.2 files (address field
//! `ip:port@cport,hostname,key=value,...`) load too: the aux fields are
//! ignored.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Node flag bits: the bus's own values.
pub use super::wire::nflag as flag;

/// Number of hash slots.
const CLUSTER_SLOTS: u32 = 16384;
/// Length of a node id (and of a shard id).
const NAME_LEN: usize = 40;
/// Offset of the bus port from the client port when `@cport` is missing
/// (nodes.conf files written before redis 4.0).
const CLUSTER_PORT_INCR: u16 = 10000;

/// Flag words in the order redis prints them.
const FLAG_WORDS: [(u16, &str); 8] = [
    (flag::MYSELF, "myself"),
    (flag::MASTER, "master"),
    (flag::SLAVE, "slave"),
    (flag::PFAIL, "fail?"),
    (flag::FAIL, "fail"),
    (flag::HANDSHAKE, "handshake"),
    (flag::NOADDR, "noaddr"),
    (flag::NOFAILOVER, "nofailover"),
];

/// One node line (CLUSTER NODES / nodes.conf).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    /// Node id, 40 chars `[a-z0-9]`.
    pub name: String,
    /// IP address, written bare (also IPv6); "" when unknown (`:0@0`).
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    /// "" = none; rendered as a `,hostname` suffix only when non-empty.
    pub hostname: String,
    /// Node flag bits ([`flag`]).
    pub flags: u16,
    /// Master node id for replicas; None is rendered "-".
    pub master: Option<String>,
    /// ms unix time of the pending ping, 0 if none.
    pub ping_sent: u64,
    /// ms unix time of the last pong, 0 if never.
    pub pong_recv: u64,
    pub config_epoch: u64,
    /// Link state field: `connected` / `disconnected`.
    pub connected: bool,
    /// Inclusive slot ranges, ascending; a single slot is rendered "N", a
    /// range "A-B". Rendered and parsed in the order given.
    pub slots: Vec<(u16, u16)>,
    /// Slots migrating to a node, rendered "[S->-ID]". Redis fills these
    /// (and `importing`) only on the `myself` line.
    pub migrating: Vec<(u16, String)>,
    /// Slots importing from a node, rendered "[S-<-ID]".
    pub importing: Vec<(u16, String)>,
}

/// The contents of a nodes.conf file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodesConf {
    pub nodes: Vec<NodeLine>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// Our own shard id (CLUSTER MYSHARDID), kept as an extra var:
    /// "vars currentEpoch N lastVoteEpoch N shard-id <40 hex>" (redis 7.0
    /// skips unknown vars); None when absent.
    pub shard_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodesConfError {
    /// The text is not a valid nodes.conf; `line` is 1-based.
    #[error("nodes.conf line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("nodes.conf I/O error: {0}")]
    Io(#[from] io::Error),
    /// An I/O error on a named file.
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Another process (or another [`lock`] call in this one) holds the lock
    /// of this cluster config file. The path is the config file's.
    #[error(
        "cluster config file {} is already in use by another process (lock file {} is held)",
        .0.display(),
        lock_path(.0).display()
    )]
    Locked(PathBuf),
}

/// Text of a possibly long or binary token for an error message.
fn show(s: &str) -> String {
    const MAX: usize = 60;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

/// Checks a node id (or shard id) like redis's `verifyClusterNodeId`:
/// exactly 40 chars, each `[a-z0-9]`.
pub fn valid_node_id(id: &str) -> bool {
    id.len() == NAME_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn check_id(id: &str, what: &str) -> Result<(), String> {
    if valid_node_id(id) {
        Ok(())
    } else {
        Err(format!(
            "bad {what} {}: must be {NAME_LEN} characters [a-z0-9]",
            show(id)
        ))
    }
}

/// Flag words in redis's order: myself, master, slave, fail?, fail,
/// handshake, noaddr, nofailover; "noflags" if none. MEET/MIGRATE_TO/unknown
/// bits are never printed.
pub fn flags_text(flags: u16) -> String {
    let mut s = String::new();
    for (bit, word) in FLAG_WORDS {
        if flags & bit != 0 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(word);
        }
    }
    if s.is_empty() {
        s.push_str("noflags");
    }
    s
}

/// Parses a comma-separated flag list as redis's loader does: words are
/// case-insensitive, "noflags" adds nothing. Redis panics on an unknown word
/// (including an empty one, as in "master,,slave" or "-"); we return an
/// error message instead.
pub fn parse_flags(s: &str) -> Result<u16, String> {
    let mut flags = 0u16;
    for word in s.split(',') {
        if word.eq_ignore_ascii_case("noflags") {
            continue;
        }
        match FLAG_WORDS
            .iter()
            .find(|(_, w)| word.eq_ignore_ascii_case(w))
        {
            Some((bit, _)) => flags |= bit,
            None => return Err(format!("unknown flag {} in {}", show(word), show(s))),
        }
    }
    Ok(flags)
}

fn push_num(s: &mut String, n: impl itoa::Integer) {
    s.push_str(itoa::Buffer::new().format(n));
}

/// Renders one line WITHOUT trailing newline, exactly like redis 7.0
/// CLUSTER NODES:
/// `<id> <ip>:<port>@<cport>[,<hostname>] <flags> <master|-> <ping_sent> <pong_recv> <config_epoch> <connected|disconnected> [slots...] [open slots]`.
///
/// Open slots are printed in slot order, like redis; when one slot is both
/// migrating and importing (redis would print only the migrating marker and
/// so lose the other on save) both are printed, migrating first.
pub fn render_line(n: &NodeLine) -> String {
    let mut s = String::with_capacity(
        150 + n.hostname.len() + 12 * n.slots.len() + 50 * (n.migrating.len() + n.importing.len()),
    );
    s.push_str(&n.name);
    s.push(' ');
    s.push_str(&n.ip);
    s.push(':');
    push_num(&mut s, n.port);
    s.push('@');
    push_num(&mut s, n.cport);
    if !n.hostname.is_empty() {
        s.push(',');
        s.push_str(&n.hostname);
    }
    s.push(' ');
    s.push_str(&flags_text(n.flags));
    s.push(' ');
    s.push_str(n.master.as_deref().unwrap_or("-"));
    s.push(' ');
    push_num(&mut s, n.ping_sent);
    s.push(' ');
    push_num(&mut s, n.pong_recv);
    s.push(' ');
    push_num(&mut s, n.config_epoch);
    s.push_str(if n.connected {
        " connected"
    } else {
        " disconnected"
    });
    for &(start, end) in &n.slots {
        s.push(' ');
        push_num(&mut s, start);
        if start != end {
            s.push('-');
            push_num(&mut s, end);
        }
    }
    // (slot, importing?, id): the sort is stable and puts migrating first.
    let mut open: Vec<(u16, bool, &str)> = n
        .migrating
        .iter()
        .map(|(slot, id)| (*slot, false, id.as_str()))
        .chain(
            n.importing
                .iter()
                .map(|(slot, id)| (*slot, true, id.as_str())),
        )
        .collect();
    open.sort_by_key(|&(slot, importing, _)| (slot, importing));
    for (slot, importing, id) in open {
        s.push_str(" [");
        push_num(&mut s, slot);
        s.push_str(if importing { "-<-" } else { "->-" });
        s.push_str(id);
        s.push(']');
    }
    s
}

/// Full nodes.conf text: every line + "\n", then
/// "vars currentEpoch N lastVoteEpoch N[ shard-id X]\n".
///
/// Every node in `conf` is written; redis leaves HANDSHAKE nodes out of
/// nodes.conf, and so should the caller.
pub fn render(conf: &NodesConf) -> String {
    let mut s = String::with_capacity(200 * (conf.nodes.len() + 1));
    for n in &conf.nodes {
        s.push_str(&render_line(n));
        s.push('\n');
    }
    s.push_str("vars currentEpoch ");
    push_num(&mut s, conf.current_epoch);
    s.push_str(" lastVoteEpoch ");
    push_num(&mut s, conf.last_vote_epoch);
    if let Some(id) = &conf.shard_id {
        s.push_str(" shard-id ");
        s.push_str(id);
    }
    s.push('\n');
    s
}

/// Strict decimal: ASCII digits only (no sign, no spaces), within range.
fn parse_dec<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} {}: not a decimal number", show(s)));
    }
    s.parse()
        .map_err(|_| format!("bad {what} {}: out of range", show(s)))
}

fn parse_slot(s: &str) -> Result<u16, String> {
    let slot: u32 = parse_dec(s, "slot")?;
    if slot >= CLUSTER_SLOTS {
        return Err(format!("bad slot {slot}: must be below {CLUSTER_SLOTS}"));
    }
    // In range: slot < 16384.
    Ok(slot as u16)
}

/// Address field: `ip:port[@cport][,hostname[,key=value...]]`.
fn parse_addr(field: &str, n: &mut NodeLine) -> Result<(), String> {
    let mut parts = field.split(',');
    let addr = parts.next().unwrap_or_default();
    if let Some(host) = parts.next() {
        // Redis 7.2 writes `,hostname` (possibly empty) then `,key=value`
        // aux fields; a hostname never contains '='.
        if !host.contains('=') {
            n.hostname = host.to_string();
        }
    }
    for aux in parts {
        if !aux.contains('=') {
            return Err(format!(
                "bad address {}: unexpected part {} after the hostname",
                show(field),
                show(aux)
            ));
        }
    }
    let (hostport, cport) = match addr.split_once('@') {
        Some((hp, cp)) => (hp, Some(cp)),
        None => (addr, None),
    };
    let Some((ip, port)) = hostport.rsplit_once(':') else {
        return Err(format!("bad address {}: no ':port'", show(field)));
    };
    n.ip = ip.to_string();
    n.port = parse_dec(port, "port")?;
    n.cport = match cport {
        Some(cp) => parse_dec(cp, "cluster bus port")?,
        None => n.port.checked_add(CLUSTER_PORT_INCR).ok_or_else(|| {
            format!(
                "bad address {}: no '@cport' and port + {CLUSTER_PORT_INCR} is too large",
                show(field)
            )
        })?,
    };
    Ok(())
}

/// One slot field: `N`, `A-B`, `[S->-ID]` or `[S-<-ID]`.
fn parse_slot_field(tok: &str, n: &mut NodeLine) -> Result<(), String> {
    if let Some(inner) = tok.strip_prefix('[') {
        let bad = || format!("bad open slot {}: expected [S->-ID] or [S-<-ID]", show(tok));
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        let (slot, importing, id) = if let Some((slot, id)) = inner.split_once("->-") {
            (slot, false, id)
        } else if let Some((slot, id)) = inner.split_once("-<-") {
            (slot, true, id)
        } else {
            return Err(bad());
        };
        let slot = parse_slot(slot)?;
        check_id(id, "node id in open slot")?;
        let list = if importing {
            &mut n.importing
        } else {
            &mut n.migrating
        };
        list.push((slot, id.to_string()));
    } else if let Some((start, end)) = tok.split_once('-') {
        let start = parse_slot(start)?;
        let end = parse_slot(end)?;
        if start > end {
            return Err(format!("bad slot range {}: start above end", show(tok)));
        }
        n.slots.push((start, end));
    } else {
        let slot = parse_slot(tok)?;
        n.slots.push((slot, slot));
    }
    Ok(())
}

/// Parses one node line (no `vars` line), as written by [`render_line`] or
/// by redis 7.0/7.2. The error is a message without the line number.
///
/// Field 8 (link state) is ignored by redis on load; here `connected` is
/// true only for the word "connected", any other word gives false.
pub fn parse_line(line: &str) -> Result<NodeLine, String> {
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    let [name, addr, flags, master, ping, pong, epoch, link, slots @ ..] = f.as_slice() else {
        return Err(format!(
            "a node line needs at least 8 fields, found {}",
            f.len()
        ));
    };
    check_id(name, "node id")?;
    let mut n = NodeLine {
        name: name.to_string(),
        ip: String::new(),
        port: 0,
        cport: 0,
        hostname: String::new(),
        flags: 0,
        master: None,
        ping_sent: 0,
        pong_recv: 0,
        config_epoch: 0,
        connected: *link == "connected",
        slots: Vec::new(),
        migrating: Vec::new(),
        importing: Vec::new(),
    };
    parse_addr(addr, &mut n)?;
    n.flags = parse_flags(flags)?;
    if *master != "-" {
        check_id(master, "master node id")?;
        n.master = Some(master.to_string());
    }
    n.ping_sent = parse_dec(ping, "ping_sent")?;
    n.pong_recv = parse_dec(pong, "pong_recv")?;
    n.config_epoch = parse_dec(epoch, "config epoch")?;
    for tok in slots {
        parse_slot_field(tok, &mut n)?;
    }
    Ok(n)
}

/// The `vars` line: `vars key value [key value ...]`; keys are
/// case-insensitive and unknown ones are skipped, as in redis.
fn parse_vars(f: &[&str], conf: &mut NodesConf) -> Result<(), String> {
    let pairs = f.get(1..).unwrap_or_default();
    if pairs.len() % 2 != 0 {
        return Err(format!(
            "the vars line needs key/value pairs, found {} words after 'vars'",
            pairs.len()
        ));
    }
    for kv in pairs.chunks_exact(2) {
        let (key, value) = (kv[0], kv[1]);
        if key.eq_ignore_ascii_case("currentEpoch") {
            conf.current_epoch = parse_dec(value, "currentEpoch")?;
        } else if key.eq_ignore_ascii_case("lastVoteEpoch") {
            conf.last_vote_epoch = parse_dec(value, "lastVoteEpoch")?;
        } else if key.eq_ignore_ascii_case("shard-id") {
            check_id(value, "shard-id")?;
            conf.shard_id = Some(value.to_string());
        }
    }
    Ok(())
}

/// Parses nodes.conf text (redis 7.0 rules: blank lines skipped; a `vars`
/// line with key/value pairs, unknown vars skipped; node lines as in
/// [`parse_line`]). On top of redis's own checks, more than one `myself`
/// node and a node id listed twice are errors (redis asserts on the first
/// and silently merges the second). Errors name the 1-based line number and
/// what is wrong; never panics.
///
/// An empty text gives an empty [`NodesConf`]; whether the result is usable
/// (it has a `myself` node, ...) is the caller's call.
pub fn parse(text: &str) -> Result<NodesConf, NodesConfError> {
    let mut conf = NodesConf::default();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut myself_line: Option<usize> = None;
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let perr = |msg: String| NodesConfError::Parse { line: lineno, msg };
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(first) = f.first() else {
            continue;
        };
        if first.eq_ignore_ascii_case("vars") {
            parse_vars(&f, &mut conf).map_err(perr)?;
            continue;
        }
        let n = parse_line(line).map_err(perr)?;
        if let Some(prev) = seen.insert(*first, lineno) {
            return Err(perr(format!(
                "node id {first} is already listed on line {prev}"
            )));
        }
        if n.flags & flag::MYSELF != 0 {
            if let Some(prev) = myself_line {
                return Err(perr(format!(
                    "a second 'myself' node (the first is on line {prev})"
                )));
            }
            myself_line = Some(lineno);
        }
        conf.nodes.push(n);
    }
    Ok(conf)
}

/// Reads and parses the file at `path`. Like redis, a missing or
/// zero-length file means "no configuration yet" and gives `Ok(None)`.
pub fn load(path: &Path) -> Result<Option<NodesConf>, NodesConfError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NodesConfError::File {
                what: "cannot read",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let upto = bytes.get(..e.valid_up_to()).unwrap_or_default();
        NodesConfError::Parse {
            line: 1 + upto.iter().filter(|&&b| b == b'\n').count(),
            msg: "not valid UTF-8".to_string(),
        }
    })?;
    parse(text).map(Some)
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory holding `path` ("." for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes the file atomically: write "<path>.tmp-<pid>", fsync, rename over
/// <path>, fsync the directory. A crash leaves either the old or the new
/// file, never a mix (redis 7.0 rewrites the file in place, which can leave
/// a torn file). Without `durable` both fsyncs are skipped: a process
/// crash still leaves a whole file, a power loss may leave the old one.
///
/// Writers of one path must be serialized (one process, holding the
/// [`lock`], saving from one place): the temporary name only carries the
/// pid.
pub fn write_atomic(path: &Path, text: &str, durable: bool) -> Result<(), NodesConfError> {
    let tmp = with_suffix(path, &format!(".tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(NodesConfError::File {
            what: "cannot write",
            path: tmp,
            source,
        });
    }
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(NodesConfError::File {
            what: "cannot rename the new config over",
            path: path.to_path_buf(),
            source,
        });
    }
    if !durable {
        return Ok(());
    }
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| NodesConfError::File {
            what: "cannot fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// The lock file used by [`lock`] for the config file `path`:
/// "<path>.lock".
pub fn lock_path(path: &Path) -> PathBuf {
    with_suffix(path, ".lock")
}

/// An exclusive lock on a cluster config file, held until dropped (closing
/// the fd releases the flock).
#[derive(Debug)]
pub struct ConfigLock {
    /// Held only for its open file description, which carries the flock.
    _file: File,
    path: PathBuf,
}

impl ConfigLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes an exclusive, non-blocking flock(2) for the config file `path`, so
/// that two processes cannot share one nodes.conf (redis's
/// `clusterLockConfig`). Returns a guard that keeps the fd open;
/// `Err(Locked)` when another holder exists. flock locks belong to the open
/// file description, so a second `lock` call in the same process fails too.
///
/// Design: redis 7.0 flocks nodes.conf itself and keeps that fd open for
/// its whole life; that works only because 7.0 rewrites nodes.conf in place
/// (open without O_TRUNC, write, ftruncate), so the inode never changes. We
/// replace the file by rename ([`write_atomic`]), after which a lock on
/// nodes.conf would sit on the old, unlinked inode and a second process
/// could lock the new one. So we lock a separate sibling file,
/// "<path>.lock" ([`lock_path`]), created if missing and never replaced or
/// deleted: deleting it on drop would let a process that opened the old
/// inode and one that creates a new file both "hold" the lock. The
/// config file itself is not created here ([`write_atomic`] creates it);
/// creating the lock file does check early that the directory is writable.
pub fn lock(path: &Path) -> Result<ConfigLock, NodesConfError> {
    let lpath = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&lpath)
        .map_err(|source| NodesConfError::File {
            what: "cannot open lock file",
            path: lpath.clone(),
            source,
        })?;
    loop {
        // SAFETY: flock only takes an fd and an integer operation; the fd is
        // valid and open for this whole call because `file` owns it and is
        // alive here. No memory is passed, so no memory can be misused.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(ConfigLock {
                _file: file,
                path: lpath,
            });
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::WouldBlock => return Err(NodesConfError::Locked(path.to_path_buf())),
            io::ErrorKind::Interrupted => continue,
            _ => {
                return Err(NodesConfError::File {
                    what: "cannot flock",
                    path: lpath,
                    source: err,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID1: &str = "4af21a7aebe7946b50166968324a433a7ff23e06";
    const ID2: &str = "28a0e35fcab03b671d9700b473d06c21d7a61fd0";
    const ID3: &str = "968d04ca7485ef3271e50828697b783a12aca874";

    /// `redis-cli -p 7601 cluster nodes` of a real redis-server 7.0.15
    /// started with `--cluster-announce-hostname node-1.example`, with one
    /// slot migrating, one importing, and the 7602 master killed (fail?).
    const REAL_CLUSTER_NODES: &str = "\
28a0e35fcab03b671d9700b473d06c21d7a61fd0 127.0.0.1:7602@17602 master,fail? - 1795454199344 1795454198038 2 disconnected 6001-7000
968d04ca7485ef3271e50828697b783a12aca874 127.0.0.1:7603@17603 slave 4af21a7aebe7946b50166968324a433a7ff23e06 0 1795454242819 3 connected
4af21a7aebe7946b50166968324a433a7ff23e06 127.0.0.1:7601@17601,node-1.example myself,master - 0 1795454242000 3 connected 0-2 5 100 200-5000 [5000->-28a0e35fcab03b671d9700b473d06c21d7a61fd0] [6000-<-28a0e35fcab03b671d9700b473d06c21d7a61fd0]
";

    /// nodes.conf written by the same redis 7.0.15 node.
    const REAL_NODES_CONF: &str = "\
28a0e35fcab03b671d9700b473d06c21d7a61fd0 127.0.0.1:7602@17602 master - 0 1795454188957 2 connected 6001-7000
968d04ca7485ef3271e50828697b783a12aca874 127.0.0.1:7603@17603 slave 4af21a7aebe7946b50166968324a433a7ff23e06 0 1795454189967 3 connected
4af21a7aebe7946b50166968324a433a7ff23e06 127.0.0.1:7601@17601,node-1.example myself,master - 0 1795454189000 3 connected 0-2 5 100 200-5000 [5000->-28a0e35fcab03b671d9700b473d06c21d7a61fd0] [6000-<-28a0e35fcab03b671d9700b473d06c21d7a61fd0]
vars currentEpoch 3 lastVoteEpoch 0
";

    /// nodes.conf written by the replica (7603) of that cluster.
    const REAL_REPLICA_NODES_CONF: &str = "\
28a0e35fcab03b671d9700b473d06c21d7a61fd0 127.0.0.1:7602@17602 master - 0 1795454182000 2 connected 6000-7000
968d04ca7485ef3271e50828697b783a12aca874 127.0.0.1:7603@17603 myself,slave 4af21a7aebe7946b50166968324a433a7ff23e06 0 1795454180000 3 connected
4af21a7aebe7946b50166968324a433a7ff23e06 127.0.0.1:7601@17601,node-1.example master - 0 1795454182944 3 connected 0-2 5 100 200-5000
vars currentEpoch 3 lastVoteEpoch 0
";

    /// `cluster nodes` of a real redis 7.0.15 that loaded a nodes.conf with
    /// a `:0@0` noaddr node and our `shard-id` var (it logged "Skipping
    /// unknown cluster config variable 'shard-id'" and started).
    const REAL_NOADDR_LINE: &str = "28a0e35fcab03b671d9700b473d06c21d7a61fd0 :0@0 master,fail,noaddr,nofailover - 1795454247232 1795454247232 2 disconnected 20-30";

    /// A handshake node after `cluster meet 127.0.0.1 7699` (nothing
    /// listening), as shown by redis 7.0.15.
    const REAL_HANDSHAKE_LINE: &str =
        "240af40fdc2f8b987cb4a8ed9b68245a0d950559 127.0.0.1:7699@17699 handshake - 0 0 0 disconnected";

    fn node(name: &str, ip: &str, port: u16, flags: u16) -> NodeLine {
        NodeLine {
            name: name.to_string(),
            ip: ip.to_string(),
            port,
            cport: port + 10000,
            hostname: String::new(),
            flags,
            master: None,
            ping_sent: 0,
            pong_recv: 0,
            config_epoch: 0,
            connected: false,
            slots: vec![],
            migrating: vec![],
            importing: vec![],
        }
    }

    fn parse_err(text: &str) -> (usize, String) {
        match parse(text) {
            Err(NodesConfError::Parse { line, msg }) => (line, msg),
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn golden_master_with_slots_and_ranges() {
        let mut n = node(ID2, "127.0.0.1", 7602, flag::MASTER | flag::PFAIL);
        n.ping_sent = 1795454199344;
        n.pong_recv = 1795454198038;
        n.config_epoch = 2;
        n.slots = vec![(6001, 7000)];
        assert_eq!(render_line(&n), REAL_CLUSTER_NODES.lines().next().unwrap());
        n.slots = vec![(0, 2), (5, 5), (100, 100), (200, 5000), (16383, 16383)];
        n.flags = flag::MASTER;
        n.connected = true;
        assert_eq!(
            render_line(&n),
            format!("{ID2} 127.0.0.1:7602@17602 master - 1795454199344 1795454198038 2 connected 0-2 5 100 200-5000 16383")
        );
    }

    #[test]
    fn golden_replica() {
        let mut n = node(ID3, "127.0.0.1", 7603, flag::SLAVE);
        n.master = Some(ID1.to_string());
        n.pong_recv = 1795454242819;
        n.config_epoch = 3;
        n.connected = true;
        assert_eq!(render_line(&n), REAL_CLUSTER_NODES.lines().nth(1).unwrap());
        n.flags |= flag::MYSELF;
        n.pong_recv = 1795454180000;
        assert_eq!(
            render_line(&n),
            REAL_REPLICA_NODES_CONF.lines().nth(1).unwrap()
        );
    }

    #[test]
    fn golden_myself_with_hostname_and_open_slots() {
        let mut n = node(ID1, "127.0.0.1", 7601, flag::MYSELF | flag::MASTER);
        n.hostname = "node-1.example".to_string();
        n.pong_recv = 1795454242000;
        n.config_epoch = 3;
        n.connected = true;
        n.slots = vec![(0, 2), (5, 5), (100, 100), (200, 5000)];
        // Given out of order across the two lists: printed in slot order.
        n.importing = vec![(6000, ID2.to_string())];
        n.migrating = vec![(5000, ID2.to_string())];
        assert_eq!(render_line(&n), REAL_CLUSTER_NODES.lines().nth(2).unwrap());
        n.migrating.push((7000, ID3.to_string()));
        n.importing.push((7000, ID2.to_string()));
        assert!(render_line(&n).ends_with(&format!(
            " [5000->-{ID2}] [6000-<-{ID2}] [7000->-{ID3}] [7000-<-{ID2}]"
        )));
    }

    #[test]
    fn golden_handshake_noaddr_noflags_ipv6() {
        let n = node(
            "240af40fdc2f8b987cb4a8ed9b68245a0d950559",
            "127.0.0.1",
            7699,
            flag::HANDSHAKE,
        );
        assert_eq!(render_line(&n), REAL_HANDSHAKE_LINE);

        let mut n = node(
            ID2,
            "",
            0,
            flag::MASTER | flag::FAIL | flag::NOADDR | flag::NOFAILOVER,
        );
        n.cport = 0;
        n.ping_sent = 1795454247232;
        n.pong_recv = 1795454247232;
        n.config_epoch = 2;
        n.slots = vec![(20, 30)];
        assert_eq!(render_line(&n), REAL_NOADDR_LINE);

        let mut n = node(ID3, "::1", 7000, flag::MEET | flag::MIGRATE_TO);
        n.master = Some(ID1.to_string());
        assert_eq!(
            render_line(&n),
            format!("{ID3} ::1:7000@17000 noflags {ID1} 0 0 0 disconnected")
        );
        let back = parse_line(&render_line(&n)).unwrap();
        assert_eq!(back.ip, "::1");
        assert_eq!(back.port, 7000);
        assert_eq!(back.flags, 0);
    }

    #[test]
    fn real_cluster_nodes_parse_then_render_is_identical() {
        for line in REAL_CLUSTER_NODES
            .lines()
            .chain([REAL_NOADDR_LINE, REAL_HANDSHAKE_LINE])
        {
            let n = parse_line(line).unwrap();
            assert_eq!(render_line(&n), line);
        }
        let me = parse_line(REAL_CLUSTER_NODES.lines().nth(2).unwrap()).unwrap();
        assert_eq!(me.hostname, "node-1.example");
        assert_eq!(me.ip, "127.0.0.1");
        assert_eq!((me.port, me.cport), (7601, 17601));
        assert_eq!(me.flags, flag::MYSELF | flag::MASTER);
        assert_eq!(me.slots, vec![(0, 2), (5, 5), (100, 100), (200, 5000)]);
        assert_eq!(me.migrating, vec![(5000, ID2.to_string())]);
        assert_eq!(me.importing, vec![(6000, ID2.to_string())]);
        let noaddr = parse_line(REAL_NOADDR_LINE).unwrap();
        assert_eq!((noaddr.ip.as_str(), noaddr.port, noaddr.cport), ("", 0, 0));
    }

    #[test]
    fn real_nodes_conf_round_trips() {
        for text in [REAL_NODES_CONF, REAL_REPLICA_NODES_CONF] {
            let conf = parse(text).unwrap();
            assert_eq!(conf.nodes.len(), 3);
            assert_eq!(conf.current_epoch, 3);
            assert_eq!(conf.last_vote_epoch, 0);
            assert_eq!(conf.shard_id, None);
            assert_eq!(render(&conf), text);
        }
        let conf = parse(REAL_REPLICA_NODES_CONF).unwrap();
        let me = &conf.nodes[1];
        assert_eq!(me.flags, flag::MYSELF | flag::SLAVE);
        assert_eq!(me.master.as_deref(), Some(ID1));
    }

    #[test]
    fn shard_id_var_round_trips() {
        let mut conf = parse(REAL_NODES_CONF).unwrap();
        conf.shard_id = Some("0123456789abcdef0123456789abcdef01234567".to_string());
        conf.current_epoch = 17;
        conf.last_vote_epoch = 9;
        let text = render(&conf);
        assert!(text.ends_with(
            "\nvars currentEpoch 17 lastVoteEpoch 9 shard-id 0123456789abcdef0123456789abcdef01234567\n"
        ));
        assert_eq!(parse(&text).unwrap(), conf);
    }

    #[test]
    fn flags_text_order_and_hidden_bits() {
        assert_eq!(flags_text(0), "noflags");
        assert_eq!(
            flags_text(0xffff),
            "myself,master,slave,fail?,fail,handshake,noaddr,nofailover"
        );
        assert_eq!(
            flags_text(flag::MEET | flag::MIGRATE_TO | 0x8000),
            "noflags"
        );
        assert_eq!(
            flags_text(flag::NOFAILOVER | flag::SLAVE | flag::MYSELF),
            "myself,slave,nofailover"
        );
        assert_eq!(flags_text(flag::FAIL | flag::PFAIL), "fail?,fail");
    }

    #[test]
    fn parse_flags_cases() {
        assert_eq!(parse_flags("noflags"), Ok(0));
        assert_eq!(
            parse_flags("myself,master"),
            Ok(flag::MYSELF | flag::MASTER)
        );
        assert_eq!(
            parse_flags("MASTER,Fail?,noflags,fail"),
            Ok(flag::MASTER | flag::PFAIL | flag::FAIL)
        );
        assert_eq!(
            parse_flags("myself,master,slave,fail?,fail,handshake,noaddr,nofailover"),
            Ok(0x27f)
        );
        for bad in [
            "",
            "-",
            "master,",
            "master,,slave",
            "meet",
            "migrate_to",
            "fail!",
            "master slave",
        ] {
            let e = parse_flags(bad).unwrap_err();
            assert!(e.contains("unknown flag"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn address_variants() {
        // Pre-4.0 line without @cport: cport = port + 10000.
        let n = parse_line(&format!("{ID1} 10.0.0.1:7000 master - 0 0 1 connected")).unwrap();
        assert_eq!((n.port, n.cport), (7000, 17000));
        assert_eq!(
            render_line(&n),
            format!("{ID1} 10.0.0.1:7000@17000 master - 0 0 1 connected")
        );
        let e = parse_line(&format!("{ID1} 10.0.0.1:60000 master - 0 0 1 connected")).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        // IPv6: the port is after the last ':'.
        let n = parse_line(&format!(
            "{ID1} 2001:db8::7:6379@16379 master - 0 0 1 connected"
        ))
        .unwrap();
        assert_eq!(
            (n.ip.as_str(), n.port, n.cport),
            ("2001:db8::7", 6379, 16379)
        );
        // Redis 7.2 nodes.conf: hostname (maybe empty) then aux fields.
        let n = parse_line(&format!(
            "{ID1} 127.0.0.1:30001@40001,,tls-port=0,shard-id={ID2} myself,master - 0 0 1 connected 0-5460"
        ))
        .unwrap();
        assert_eq!(
            (n.ip.as_str(), n.port, n.cport, n.hostname.as_str()),
            ("127.0.0.1", 30001, 40001, "")
        );
        let n = parse_line(&format!(
            "{ID1} 127.0.0.1:30001@40001,host-a,tls-port=0,nodename=x,shard-id={ID2} master - 0 0 1 connected"
        ))
        .unwrap();
        assert_eq!(n.hostname, "host-a");
        let e = parse_line(&format!(
            "{ID1} 127.0.0.1:30001@40001,host-a,junk master - 0 0 1 connected"
        ))
        .unwrap_err();
        assert!(e.contains("junk"), "{e}");
    }

    #[test]
    fn loader_leniencies() {
        // Blank and whitespace-only lines, CRLF, tabs, extra spaces, unknown
        // and case-insensitive vars, vars line anywhere, no vars line.
        let text = format!(
            "\n  \r\n{ID1}\t127.0.0.1:7000@17000  myself,master - 0 0 1 whatever 0-100\r\nVARS currentepoch 5 somethingNew x LASTVOTEEPOCH 4\n\n{ID2} 127.0.0.1:7001@17001 slave {ID1} 0 0 1 connected\n"
        );
        let conf = parse(&text).unwrap();
        assert_eq!(conf.nodes.len(), 2);
        assert_eq!((conf.current_epoch, conf.last_vote_epoch), (5, 4));
        assert!(!conf.nodes[0].connected);
        assert!(conf.nodes[1].connected);
        assert_eq!(conf.nodes[0].slots, vec![(0, 100)]);
        assert_eq!(parse("").unwrap(), NodesConf::default());
        assert_eq!(parse("vars").unwrap(), NodesConf::default());
    }

    #[test]
    fn parse_errors_name_the_line() {
        let good = format!("{ID1} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100\n");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1"),
                "at least 8 fields",
            ),
            (
                format!(
                    "{} 127.0.0.1:7001@17001 master - 0 0 1 connected",
                    &ID2[1..]
                ),
                "bad node id",
            ),
            (
                format!(
                    "{} 127.0.0.1:7001@17001 master - 0 0 1 connected",
                    ID2.to_uppercase()
                ),
                "bad node id",
            ),
            (
                format!("{ID2} 127.0.0.1:70001@17001 master - 0 0 1 connected"),
                "bad port",
            ),
            (
                format!("{ID2} 127.0.0.1:-1@17001 master - 0 0 1 connected"),
                "bad port",
            ),
            (
                format!("{ID2} 127.0.0.1:@17001 master - 0 0 1 connected"),
                "bad port",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@x master - 0 0 1 connected"),
                "bad cluster bus port",
            ),
            (
                format!("{ID2} 127.0.0.1 master - 0 0 1 connected"),
                "no ':port'",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected 16384"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected 5-16384"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected 10-5"),
                "bad slot range",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected 1-2-3"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected -5"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected x"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected [5->-{ID1}"),
                "bad open slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected [5-x-{ID1}]"),
                "bad open slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected [16384-<-{ID1}]"),
                "bad slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 1 connected [5-<-abc]"),
                "bad node id in open slot",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master,bogus - 0 0 1 connected"),
                "unknown flag",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 slave abc 0 0 1 connected"),
                "bad master node id",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - x 0 1 connected"),
                "bad ping_sent",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 -1 1 connected"),
                "bad pong_recv",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 master - 0 0 18446744073709551616 connected"),
                "bad config epoch",
            ),
            ("vars currentEpoch".to_string(), "key/value pairs"),
            (
                "vars currentEpoch 1 lastVoteEpoch".to_string(),
                "key/value pairs",
            ),
            (
                "vars currentEpoch x lastVoteEpoch 0".to_string(),
                "bad currentEpoch",
            ),
            (
                "vars currentEpoch 1 lastVoteEpoch +1".to_string(),
                "bad lastVoteEpoch",
            ),
            ("vars shard-id 1234".to_string(), "bad shard-id"),
            (
                format!("{ID1} 127.0.0.1:7001@17001 master - 0 0 1 connected"),
                "already listed on line 1",
            ),
            (
                format!("{ID2} 127.0.0.1:7001@17001 myself,slave {ID1} 0 0 1 connected"),
                "second 'myself'",
            ),
        ];
        for (bad, want) in cases {
            // The bad line is line 3: a good line and a blank line before it.
            let text = format!("{good}\n{bad}\nvars currentEpoch 1 lastVoteEpoch 0\n");
            let (line, msg) = parse_err(&text);
            assert_eq!(line, 3, "{bad}: {msg}");
            assert!(msg.contains(want), "{bad}: {msg:?} should contain {want:?}");
            let shown = parse(&text).unwrap_err().to_string();
            assert!(shown.starts_with("nodes.conf line 3: "), "{shown}");
        }
    }

    #[test]
    fn load_missing_empty_and_bad_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nodes.conf");
        assert!(load(&p).unwrap().is_none());
        fs::write(&p, "").unwrap();
        assert!(load(&p).unwrap().is_none());
        fs::write(&p, REAL_NODES_CONF).unwrap();
        assert_eq!(load(&p).unwrap().unwrap(), parse(REAL_NODES_CONF).unwrap());
        let mut bytes = REAL_NODES_CONF.as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xfe\n");
        fs::write(&p, bytes).unwrap();
        match load(&p) {
            Err(NodesConfError::Parse { line: 5, msg }) => assert!(msg.contains("UTF-8")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn write_atomic_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nodes.conf");
        write_atomic(&p, REAL_NODES_CONF, true).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), REAL_NODES_CONF);
        // Overwrite with a shorter text: no leftover bytes, no temp file.
        write_atomic(&p, "vars currentEpoch 0 lastVoteEpoch 0\n", true).unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "vars currentEpoch 0 lastVoteEpoch 0\n"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["nodes.conf".to_string()]);
        // A missing directory is an error naming the temporary file.
        let e = write_atomic(&dir.path().join("nope/nodes.conf"), "x", true).unwrap_err();
        assert!(e.to_string().contains("nodes.conf.tmp-"), "{e}");
    }

    #[test]
    fn lock_is_exclusive_and_survives_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nodes.conf");
        let first = lock(&p).unwrap();
        assert_eq!(first.path(), dir.path().join("nodes.conf.lock"));
        assert!(!p.exists(), "lock() does not create the config file");
        match lock(&p) {
            Err(NodesConfError::Locked(path)) => assert_eq!(path, p),
            other => panic!("{other:?}"),
        }
        // Replacing nodes.conf by rename does not affect the lock.
        write_atomic(&p, REAL_NODES_CONF, true).unwrap();
        write_atomic(&p, REAL_REPLICA_NODES_CONF, true).unwrap();
        let e = lock(&p).unwrap_err();
        assert!(matches!(e, NodesConfError::Locked(_)));
        assert!(e.to_string().contains("nodes.conf.lock"), "{e}");
        drop(first);
        let again = lock(&p).unwrap();
        assert!(matches!(lock(&p), Err(NodesConfError::Locked(_))));
        drop(again);
        // A directory that does not exist: a clear I/O error, not Locked.
        let e = lock(&dir.path().join("nope/nodes.conf")).unwrap_err();
        assert!(matches!(e, NodesConfError::File { .. }), "{e:?}");
    }

    fn arb_id() -> impl Strategy<Value = String> {
        "[a-z0-9]{40}"
    }

    fn arb_open_slots() -> impl Strategy<Value = Vec<(u16, String)>> {
        prop::collection::vec((0u16..16384, arb_id()), 0..4).prop_map(|mut v| {
            v.sort_by_key(|(slot, _)| *slot);
            v
        })
    }

    prop_compose! {
        fn arb_node()(
            name in arb_id(),
            ip in prop_oneof!["", "[0-9]{1,3}(\\.[0-9]{1,3}){3}", "[0-9a-f:]{2,20}"],
            port in any::<u16>(),
            cport in any::<u16>(),
            hostname in prop_oneof!["", "[a-z0-9][a-z0-9.-]{0,20}"],
            flags in any::<u16>(),
            master in prop::option::of(arb_id()),
            ping_sent in any::<u64>(),
            pong_recv in any::<u64>(),
            config_epoch in any::<u64>(),
            connected in any::<bool>(),
            slots in prop::collection::vec((0u16..16384, 0u16..100), 0..6),
            migrating in arb_open_slots(),
            importing in arb_open_slots(),
        ) -> NodeLine {
            NodeLine {
                name, ip, port, cport, hostname,
                // Only printable bits survive a round trip.
                flags: flags & 0x27f,
                master, ping_sent, pong_recv, config_epoch, connected,
                slots: slots.into_iter().map(|(a, len)| (a, a.saturating_add(len).min(16383))).collect(),
                migrating, importing,
            }
        }
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(
            nodes in prop::collection::vec(arb_node(), 0..5),
            current_epoch in any::<u64>(),
            last_vote_epoch in any::<u64>(),
            shard_id in prop::option::of(arb_id()),
        ) {
            let mut nodes = nodes;
            // Unique ids, at most one myself (both checked by parse).
            let mut seen = std::collections::HashSet::new();
            nodes.retain(|n| seen.insert(n.name.clone()));
            let mut have_myself = false;
            for n in &mut nodes {
                if n.flags & flag::MYSELF != 0 {
                    if have_myself {
                        n.flags &= !flag::MYSELF;
                    }
                    have_myself = true;
                }
            }
            let conf = NodesConf { nodes, current_epoch, last_vote_epoch, shard_id };
            let text = render(&conf);
            let back = parse(&text).unwrap();
            prop_assert_eq!(&back, &conf);
            prop_assert_eq!(render(&back), text);
        }

        #[test]
        fn random_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
            let _ = parse_line(&text);
            let _ = parse_flags(&text);
        }

        #[test]
        fn token_soup_never_panics(
            lines in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        Just(ID1.to_string()),
                        Just("vars".to_string()),
                        Just("currentEpoch".to_string()),
                        Just("shard-id".to_string()),
                        Just("-".to_string()),
                        Just("master,myself".to_string()),
                        Just("é".to_string()),
                        "[0-9:@,.\\[\\]<>=a-z-]{0,12}",
                        "[0-9]{1,25}",
                    ],
                    0..14,
                ),
                0..5,
            )
        ) {
            let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
            let _ = parse(&text);
        }
    }
}
