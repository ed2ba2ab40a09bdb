//! The replica's side: the link to our master.
//!
//! The link task connects, performs redis's handshake (PING, AUTH,
//! REPLCONF listening-port / ip-address / capa eof psync2) and asks for
//! PSYNC with the history it has. A full synchronization is loaded on a
//! blocking thread into a dataset built beside the live one, which keeps
//! serving reads, and swapped in at once when complete; a corrupt or
//! truncated transfer is abandoned, logged, and retried, the old dataset
//! untouched. Then the stream is applied command by command through the
//! normal dispatcher, as the master client, and passed on byte for byte
//! to our own replicas. The link reconnects with backoff after any loss.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::{frame, LinkState};
use crate::cmd::Client;
use crate::node::{cflag, unix_ms, ClientHandle, Node};
use crate::rdb;

/// Stops a link task.
pub struct LinkCtl {
    stopped: AtomicBool,
    notify: Notify,
}

impl LinkCtl {
    pub fn new() -> Arc<Self> {
        Arc::new(LinkCtl {
            stopped: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

type Res<T> = Result<T, String>;

fn set_state(node: &Node, ctl: &Arc<LinkCtl>, f: impl FnOnce(&mut super::MasterLink)) {
    if let Some(m) = node.repl.master.lock().as_mut() {
        if Arc::ptr_eq(&m.ctl, ctl) {
            f(m);
        }
    }
}

/// Runs the link until REPLICAOF changes the master.
pub async fn run(node: Arc<Node>, ctl: Arc<LinkCtl>, host: String, port: u16) {
    let mut backoff = Duration::from_millis(100);
    // The master client's database survives reconnections: a partial
    // resynchronization continues the stream where it stopped.
    let mut db = 0usize;
    while !ctl.is_stopped() {
        set_state(&node, &ctl, |m| m.state = LinkState::Connecting);
        let res = attempt(&node, &ctl, &host, port, &mut db, &mut backoff).await;
        node.repl.link_up.store(false, Ordering::Relaxed);
        set_state(&node, &ctl, |m| {
            if m.state == LinkState::Connected {
                m.down_since_ms = unix_ms();
            }
            m.state = LinkState::Connect;
        });
        if ctl.is_stopped() {
            break;
        }
        if let Err(e) = res {
            tracing::warn!(
                "replication link with MASTER {host}:{port}: {e}; retrying in {} ms",
                backoff.as_millis()
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctl.notify.notified() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    timeout: Duration,
}

impl Conn {
    async fn send(&mut self, args: &[&[u8]]) -> Res<()> {
        let mut b = BytesMut::new();
        crate::stream::encode(&mut b, args);
        match tokio::time::timeout(self.timeout, self.sock.write_all(&b)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write error: {e}")),
            Err(_) => Err("timeout writing to master".into()),
        }
    }

    async fn fill(&mut self) -> Res<usize> {
        match tokio::time::timeout(self.timeout, self.sock.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) => Err("connection closed by master".into()),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(format!("read error: {e}")),
            Err(_) => Err("timeout reading from master".into()),
        }
    }

    /// One reply line, skipping the bare newlines a master sends as
    /// keepalives while it prepares a transfer.
    async fn line(&mut self) -> Res<String> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf.split_to(p + 1);
                let s = String::from_utf8_lossy(&l[..p]);
                return Ok(s.trim_end_matches('\r').to_string());
            }
            if self.buf.len() > 64 * 1024 {
                return Err("reply line too long".into());
            }
            self.fill().await?;
        }
    }

    async fn command(&mut self, args: &[&[u8]]) -> Res<String> {
        self.send(args).await?;
        self.line().await
    }
}

/// Connects to the master from our first specific `bind` address (as the
/// cluster bus does), so the master sees the address we serve on: in a
/// cluster it matches us with the replica it knows from the bus.
async fn connect_from_bind(
    node: &crate::node::Node,
    host: &str,
    port: u16,
) -> std::io::Result<TcpStream> {
    let source = node
        .config
        .read()
        .bind
        .iter()
        .filter_map(|a| crate::server::bind_entry(a).1)
        .find(|ip| !ip.is_unspecified());
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve {host}")))?;
    if let Some(src) = source.filter(|s| s.is_ipv4() == target.is_ipv4()) {
        let sock = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if sock.bind(std::net::SocketAddr::new(src, 0)).is_ok() {
            return sock.connect(target).await;
        }
    }
    TcpStream::connect(target).await
}

async fn attempt(
    node: &Arc<Node>,
    ctl: &Arc<LinkCtl>,
    host: &str,
    port: u16,
    db: &mut usize,
    backoff: &mut Duration,
) -> Res<()> {
    let timeout = Duration::from_secs(node.config.read().repl_timeout.max(1) as u64);
    let sock = tokio::select! {
        r = tokio::time::timeout(timeout, connect_from_bind(node, host, port)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("error connecting: {e}")),
            Err(_) => return Err("timeout connecting".into()),
        },
        _ = ctl.notify.notified() => return Ok(()),
    };
    let _ = sock.set_nodelay(true);
    tracing::info!("MASTER <-> REPLICA sync started with {host}:{port}");
    set_state(node, ctl, |m| m.state = LinkState::Handshake);
    let mut c = Conn {
        sock,
        buf: BytesMut::with_capacity(64 * 1024),
        timeout,
    };
    handshake(node, &mut c).await?;
    let (my_replid, my_offset) = {
        let ids = node.repl.ids.lock();
        (ids.replid.clone(), node.stream.offset())
    };
    let from = (my_offset + 1).to_string();
    let reply = c
        .command(&[b"PSYNC", my_replid.as_bytes(), from.as_bytes()])
        .await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let (Some(id), Some(off)) = (it.next(), it.next().and_then(|o| o.parse::<u64>().ok()))
        else {
            return Err(format!("bad +FULLRESYNC reply '{reply}'"));
        };
        tracing::info!("full resync from master: {id}:{off}");
        let id = id.to_string();
        full_sync(node, ctl, &mut c, &id, off).await?;
        *db = 0;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        let mut ids = node.repl.ids.lock();
        if !new_id.is_empty() && new_id != ids.replid {
            ids.replid2 = std::mem::replace(&mut ids.replid, new_id.to_string());
            ids.second_offset = my_offset as i64 + 1;
            tracing::info!(
                "master replication ID changed to {new_id}; partial resynchronization accepted"
            );
        } else {
            tracing::info!("successful partial resynchronization with master");
        }
        // Our own replicas follow the new history from our backlog.
        node.stream.cut_feeds();
    } else {
        return Err(format!("unexpected reply to PSYNC: '{reply}'"));
    }
    *backoff = Duration::from_millis(100);
    set_state(node, ctl, |m| {
        m.state = LinkState::Connected;
        m.last_io_ms = unix_ms();
    });
    node.repl.link_up.store(true, Ordering::Relaxed);
    apply_stream(node, ctl, c, db, host, port).await
}

async fn handshake(node: &Arc<Node>, c: &mut Conn) -> Res<()> {
    let reply = c.command(&[b"PING"]).await?;
    // A master requiring a password answers NOAUTH: AUTH comes next.
    if reply.starts_with('-') && !reply.starts_with("-NOAUTH") && !reply.starts_with("-NOPERM") {
        return Err(format!("error reply to PING from master: '{reply}'"));
    }
    let (auth, user, announce_ip, port) = {
        let cfg = node.config.read();
        (
            cfg.masterauth.clone(),
            cfg.masteruser.clone(),
            cfg.replica_announce_ip.clone(),
            node.port.load(Ordering::Relaxed),
        )
    };
    if !auth.is_empty() {
        let reply = if user.is_empty() {
            c.command(&[b"AUTH", auth.as_bytes()]).await?
        } else {
            c.command(&[b"AUTH", user.as_bytes(), auth.as_bytes()])
                .await?
        };
        if reply.starts_with('-') {
            return Err(format!("unable to AUTH to MASTER: '{reply}'"));
        }
    }
    let p = port.to_string();
    let reply = c
        .command(&[b"REPLCONF", b"listening-port", p.as_bytes()])
        .await?;
    if reply.starts_with('-') {
        tracing::info!("master does not understand REPLCONF listening-port: {reply}");
    }
    if !announce_ip.is_empty() {
        let reply = c
            .command(&[b"REPLCONF", b"ip-address", announce_ip.as_bytes()])
            .await?;
        if reply.starts_with('-') {
            tracing::info!("master does not understand REPLCONF ip-address: {reply}");
        }
    }
    let reply = c
        .command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    if reply.starts_with('-') {
        tracing::info!("master does not understand REPLCONF capa: {reply}");
    }
    Ok(())
}

/// Reads the transfer's chunks on the loading thread.
struct ChanReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// The bulk transfer's framing.
enum Transfer {
    /// `$EOF:<mark>`: the RDB then the 40-byte mark.
    Mark(Vec<u8>),
    /// `$<len>`: exactly that many bytes.
    Len(u64),
}

async fn full_sync(
    node: &Arc<Node>,
    ctl: &Arc<LinkCtl>,
    c: &mut Conn,
    replid: &str,
    offset: u64,
) -> Res<()> {
    set_state(node, ctl, |m| {
        m.state = LinkState::Sync;
        m.sync_read = 0;
        m.sync_total = -1;
    });
    let header = c.line().await?;
    let transfer = if let Some(mark) = header.strip_prefix("$EOF:") {
        if mark.len() != 40 {
            return Err(format!("bad EOF mark in '{header}'"));
        }
        Transfer::Mark(mark.as_bytes().to_vec())
    } else if let Some(len) = header.strip_prefix('$').and_then(|l| l.parse::<u64>().ok()) {
        set_state(node, ctl, |m| m.sync_total = len as i64);
        Transfer::Len(len)
    } else if header.starts_with('-') {
        return Err(format!("master aborted the synchronization: '{header}'"));
    } else {
        return Err(format!("bad bulk header from master: '{header}'"));
    };
    tracing::info!(
        "MASTER <-> REPLICA sync: receiving {} from master",
        match &transfer {
            Transfer::Mark(_) => "streamed RDB".to_string(),
            Transfer::Len(n) => format!("{n} bytes of RDB"),
        }
    );
    let started = std::time::Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let limits = node.hot.limits();
    let clock = node.lru_clock();
    let mut loader = node.keyspace.loader();
    let mark = match &transfer {
        Transfer::Mark(m) => Some(m.clone()),
        Transfer::Len(_) => None,
    };
    let loading = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::with_capacity(
            256 * 1024,
            ChanReader {
                rx,
                cur: Bytes::new(),
            },
        );
        let mut functions_warned = false;
        let res = rdb::load(&mut reader, &limits, &mut |item| {
            match item {
                rdb::Item::Entry {
                    db,
                    key,
                    value,
                    expire_ms,
                    ..
                } => loader
                    .add(db, &key, value, expire_ms, clock)
                    .map_err(rdb::RdbError::Sink)?,
                rdb::Item::Function(_) if !functions_warned => {
                    tracing::warn!("the master's RDB holds function libraries; functions are not supported and were skipped");
                    functions_warned = true;
                }
                _ => {}
            }
            Ok(())
        });
        let res = res.map_err(|e| e.to_string()).and_then(|_| {
            if let Some(mark) = mark {
                let mut got = [0u8; 40];
                reader
                    .read_exact(&mut got)
                    .map_err(|e| format!("reading the EOF mark: {e}"))?;
                if got[..] != mark[..] {
                    return Err("the RDB is not followed by the EOF mark".to_string());
                }
            }
            Ok(())
        });
        // Whatever the loader read beyond the RDB belongs to the stream.
        let mut rest = reader.buffer().to_vec();
        let inner = reader.into_inner();
        rest.extend_from_slice(&inner.cur);
        (res, loader, rest)
    });
    tokio::pin!(loading);
    // Feed the loader: bytes already read, then the socket.
    let mut remaining: Option<u64> = match transfer {
        Transfer::Len(n) => Some(n),
        Transfer::Mark(_) => None,
    };
    let mut forwarded = 0u64;
    let mut first = std::mem::take(&mut c.buf);
    let mut tx = Some(tx);
    let outcome = loop {
        if !first.is_empty() {
            let take = match remaining {
                Some(r) => (r.min(first.len() as u64)) as usize,
                None => first.len(),
            };
            let chunk = first.split_to(take).freeze();
            // Beyond a length-prefixed transfer: the stream's first bytes.
            if !first.is_empty() {
                c.buf = first.split();
            }
            if !chunk.is_empty() {
                forwarded += chunk.len() as u64;
                if let Some(r) = remaining.as_mut() {
                    *r -= chunk.len() as u64;
                }
                if let Some(t) = tx.as_ref() {
                    if t.send(chunk).await.is_err() {
                        tx = None;
                    }
                }
                set_state(node, ctl, |m| {
                    m.sync_read = forwarded;
                    m.last_io_ms = unix_ms();
                });
            }
        }
        if remaining == Some(0) {
            tx = None;
        }
        if first.capacity() < 64 * 1024 {
            first.reserve(256 * 1024);
        }
        tokio::select! {
            done = &mut loading => break done,
            r = c.sock.read_buf(&mut first), if tx.is_some() => match r {
                Ok(0) | Err(_) => {
                    tx = None;
                }
                Ok(_) => {}
            },
            _ = ctl.notify.notified() => {
                drop(tx.take());
                let _ = (&mut loading).await;
                return Err("replication stopped during synchronization".into());
            }
        }
    };
    let (res, loader, rest) = outcome.map_err(|e| format!("loading thread failed: {e}"))?;
    if let Err(e) = res {
        return Err(format!(
            "failed to load the RDB from master ({forwarded} bytes received): {e}; keeping the previous dataset"
        ));
    }
    if ctl.is_stopped() {
        return Err("replication stopped during synchronization".into());
    }
    let keys = loader.keys();
    // Bytes the loader did not consume come before what is still buffered.
    let mut buf = BytesMut::from(&rest[..]);
    buf.extend_from_slice(&c.buf);
    c.buf = buf;
    // The swap and the new history must be atomic with respect to any
    // snapshot our own replicas could start.
    {
        let _apply = node.repl_apply.lock();
        node.keyspace.swap_in(loader);
        node.stream.reset(offset);
        let mut ids = node.repl.ids.lock();
        ids.replid = replid.to_string();
        ids.replid2 = "0".repeat(40);
        ids.second_offset = -1;
    }
    tracing::info!(
        "MASTER <-> REPLICA sync: loaded {keys} keys ({forwarded} bytes) in {:.3}s; finished with success",
        started.elapsed().as_secs_f64()
    );
    // Acknowledge at once: the master starts streaming on this ACK.
    let off = offset.to_string();
    c.send(&[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
    Ok(())
}

fn master_handle(node: &Node, c: &Conn) -> Arc<ClientHandle> {
    let addr = c
        .sock
        .peer_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    let laddr = c.sock.local_addr().unwrap_or(addr);
    let fd = {
        use std::os::fd::AsRawFd;
        c.sock.as_raw_fd()
    };
    let (push, _rx) = tokio::sync::mpsc::unbounded_channel();
    let id = node.next_client_id.fetch_add(1, Ordering::Relaxed);
    Arc::new(ClientHandle::new(id, addr, laddr, fd, cflag::MASTER, push))
}

/// Applies the master's stream until the link breaks.
async fn apply_stream(
    node: &Arc<Node>,
    ctl: &Arc<LinkCtl>,
    mut c: Conn,
    db: &mut usize,
    host: &str,
    port: u16,
) -> Res<()> {
    let handle = master_handle(node, &c);
    node.clients.lock().insert(handle.id, handle.clone());
    let mut client = Client::new(handle.clone(), true);
    client.is_master = true;
    client.db = *db;
    let res = apply_loop(node, ctl, &mut c, &mut client, host, port).await;
    *db = client.db;
    node.clients.lock().remove(&handle.id);
    crate::cmd::multi::discard_state(node, &mut client);
    res
}

async fn apply_loop(
    node: &Arc<Node>,
    ctl: &Arc<LinkCtl>,
    c: &mut Conn,
    client: &mut Client,
    host: &str,
    port: u16,
) -> Res<()> {
    let handle = client.handle.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut out = BytesMut::new();
    let mut last_io = std::time::Instant::now();
    let mut warned = 0u32;
    loop {
        // Apply every complete command already buffered, in segments
        // that end at a REPLCONF GETACK (answered once the commands before
        // it are applied). Each segment is applied under the apply lock and
        // passed on to our own stream in one piece.
        let max_bulk = node.hot.proto_max_bulk_len.load(Ordering::Relaxed);
        let mut total = 0;
        while total < 4 * 1024 * 1024 {
            match frame::frame_len(&c.buf[total..], max_bulk)
                .map_err(|e| format!("bad replication stream from master: {e}"))?
            {
                Some(n) => total += n,
                None => break,
            }
        }
        let region = c.buf.split_to(total).freeze();
        let mut pos = 0;
        while pos < region.len() {
            let start = pos;
            let mut getack = false;
            let mut failed: Option<(Bytes, String)> = None;
            {
                let _apply = node.repl_apply.lock();
                let mut batch = ShardBatches::new(node.keyspace.nshards());
                while pos < region.len() {
                    let Ok(Some(n)) = frame::frame_len(&region[pos..], max_bulk) else {
                        pos = region.len();
                        break;
                    };
                    let raw = region.slice(pos..pos + n);
                    pos += n;
                    let args = frame::split(&raw);
                    if args.len() >= 2
                        && args[0].eq_ignore_ascii_case(b"replconf")
                        && args[1].eq_ignore_ascii_case(b"getack")
                    {
                        getack = true;
                        break;
                    }
                    if args.is_empty() {
                        continue;
                    }
                    // Commands on one shard's keys commute with those on
                    // other shards: they are grouped by shard and applied
                    // in parallel. Anything else (several shards, no keys,
                    // SELECT, a transaction) waits for the groups and runs
                    // alone, in stream order.
                    if client.multi.is_none() {
                        if let Some(shard) = crate::cmd::single_shard(node, &args) {
                            batch.push(shard, client.db, args);
                            continue;
                        }
                    }
                    batch.run(node, client, &mut failed);
                    out.clear();
                    let _ = crate::cmd::dispatch(node, client, &args, &mut out);
                    note_failure(&mut failed, &args, &out);
                }
                batch.run(node, client, &mut failed);
                node.stream.append_raw(region.slice(start..pos));
            }
            node.stats
                .total_commands_processed
                .fetch_add(std::mem::take(&mut client.pending_cmds), Ordering::Relaxed);
            if let Some((cmd, e)) = failed {
                if warned < 10 {
                    warned += 1;
                    tracing::warn!(
                        "command from master failed: {} -> {e}",
                        String::from_utf8_lossy(&cmd)
                    );
                }
            }
            if getack {
                let off = node.stream.offset().to_string();
                c.send(&[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
            }
        }
        handle
            .last_interaction_ms
            .store(unix_ms(), Ordering::Relaxed);
        // Read in large pieces: a BytesMut without spare room would hand
        // the socket 64 bytes at a time.
        if c.buf.capacity() - c.buf.len() < 64 * 1024 {
            c.buf.reserve(256 * 1024);
        }
        tokio::select! {
            biased;
            _ = ctl.notify.notified() => return Ok(()),
            _ = handle.kill.notified() => return Err(format!("connection with master {host}:{port} killed")),
            r = c.sock.read_buf(&mut c.buf) => match r {
                Ok(0) => return Err("connection closed by master".into()),
                Ok(n) => {
                    last_io = std::time::Instant::now();
                    node.stats.total_net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    set_state(node, ctl, |m| m.last_io_ms = unix_ms());
                }
                Err(e) => return Err(format!("read error: {e}")),
            },
            _ = tick.tick() => {
                if last_io.elapsed() > c.timeout {
                    return Err(format!("MASTER timeout: no data nor PING received for {}s", c.timeout.as_secs()));
                }
                let off = node.stream.offset().to_string();
                c.send(&[b"REPLCONF", b"ACK", off.as_bytes()]).await?;
            }
        }
    }
}

fn note_failure(failed: &mut Option<(Bytes, String)>, args: &[Bytes], out: &[u8]) {
    if out.first() == Some(&b'-') && failed.is_none() {
        let e = String::from_utf8_lossy(&out[..out.len().min(200)]);
        *failed = Some((args[0].clone(), e.trim_end().to_string()));
    }
}

/// Commands from the master grouped by the shard of their keys, each with
/// the database it runs in.
struct ShardBatches {
    groups: Vec<Vec<(usize, Vec<Bytes>)>>,
    pending: usize,
}

/// Below this many commands a batch is applied on the link's own thread:
/// starting threads would cost more than it saves.
const PARALLEL_FROM: usize = 64;

impl ShardBatches {
    fn new(nshards: usize) -> Self {
        ShardBatches {
            groups: (0..nshards).map(|_| Vec::new()).collect(),
            pending: 0,
        }
    }

    fn push(&mut self, shard: usize, db: usize, args: Vec<Bytes>) {
        if let Some(g) = self.groups.get_mut(shard) {
            g.push((db, args));
            self.pending += 1;
        }
    }

    /// Applies every group, in parallel when worth it, and empties them.
    fn run(&mut self, node: &Arc<Node>, client: &mut Client, failed: &mut Option<(Bytes, String)>) {
        if self.pending == 0 {
            return;
        }
        let busy = self.groups.iter().filter(|g| !g.is_empty()).count();
        let saved_db = client.db;
        if busy == 1 || self.pending < PARALLEL_FROM {
            let mut out = BytesMut::new();
            for g in &mut self.groups {
                for (db, args) in g.drain(..) {
                    client.db = db;
                    out.clear();
                    let _ = crate::cmd::dispatch(node, client, &args, &mut out);
                    note_failure(failed, &args, &out);
                }
            }
        } else {
            let handle = client.handle.clone();
            let results: Vec<Option<(Bytes, String)>> = std::thread::scope(|s| {
                let workers: Vec<_> = self
                    .groups
                    .iter_mut()
                    .filter(|g| !g.is_empty())
                    .map(|g| {
                        let handle = handle.clone();
                        s.spawn(move || {
                            let mut c = Client::new(handle, true);
                            c.is_master = true;
                            let mut out = BytesMut::new();
                            let mut failed = None;
                            for (db, args) in g.drain(..) {
                                c.db = db;
                                out.clear();
                                let _ = crate::cmd::dispatch(node, &mut c, &args, &mut out);
                                note_failure(&mut failed, &args, &out);
                            }
                            node.stats
                                .total_commands_processed
                                .fetch_add(std::mem::take(&mut c.pending_cmds), Ordering::Relaxed);
                            failed
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join().unwrap_or_else(|_| {
                            Some((Bytes::from_static(b"?"), "apply thread panicked".into()))
                        })
                    })
                    .collect()
            });
            for r in results.into_iter().flatten() {
                if failed.is_none() {
                    *failed = Some(r);
                }
            }
        }
        client.db = saved_db;
        self.pending = 0;
    }
}
