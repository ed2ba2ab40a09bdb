//! Listening sockets, the per-connection loop and the server cron.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::blocking::{Blocked, Cancel, TimeoutReply};
use crate::cmd::{self, Client, Flow, ReplyMode};
use crate::node::{cflag, unix_ms, ClientHandle, Node, Push};
use crate::resp::{ParseLimits, ReplyWriter, RequestParser};

const READ_CHUNK: usize = 16 * 1024;

/// A `bind` entry: whether it is optional (leading '-') and its address
/// (`*` is every IPv4 address, `::*` every IPv6 one); None if invalid.
pub fn bind_entry(a: &str) -> (bool, Option<std::net::IpAddr>) {
    let (optional, a) = match a.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, a),
    };
    let ip = match a {
        "*" => "0.0.0.0",
        "::*" => "::",
        other => other,
    };
    (optional, ip.parse().ok())
}

/// Binds the configured addresses. A leading '-' marks an address whose
/// failure to bind is not fatal, like redis.
pub async fn bind(node: &Node) -> std::io::Result<Vec<TcpListener>> {
    let (addrs, port, backlog) = {
        let c = node.config.read();
        (
            c.bind.clone(),
            c.port,
            c.tcp_backlog.clamp(0, i64::from(i32::MAX)) as u32,
        )
    };
    let mut out = Vec::new();
    for a in &addrs {
        let (optional, a) = match a.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, a.as_str()),
        };
        let ip = match a {
            "*" => "0.0.0.0",
            "::*" => "::",
            other => other,
        };
        let sa: SocketAddr = match format!("{ip}:{port}")
            .parse()
            .or_else(|_| format!("[{ip}]:{port}").parse())
        {
            Ok(sa) => sa,
            Err(_) => {
                if optional {
                    continue;
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("invalid bind address '{a}'"),
                ));
            }
        };
        match listen(sa, backlog) {
            Ok(l) => out.push(l),
            Err(e) if optional => tracing::debug!("skipping optional bind {sa}: {e}"),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not bind {sa}: {e}"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address could be bound",
        ));
    }
    Ok(out)
}

fn listen(sa: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let domain = if sa.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if sa.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&sa.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(s.into())
}

/// Accepts connections until shutdown.
pub async fn accept_loop(node: Arc<Node>, listener: TcpListener) {
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = node.shutdown.notified() => return,
        };
        let node = node.clone();
        // IDs are given in accept order: a larger CLIENT ID means a later
        // connection, as redis guarantees.
        let id = node.next_client_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            connection(node, stream, addr, id).await;
        });
    }
}

fn is_loopback(a: &SocketAddr) -> bool {
    match a {
        SocketAddr::V4(v) => v.ip().is_loopback(),
        SocketAddr::V6(v) => {
            v.ip().is_loopback() || v.ip().to_ipv4_mapped().is_some_and(|i| i.is_loopback())
        }
    }
}

const PROTECTED_MSG: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

fn configure_socket(node: &Node, stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = node.config.read().tcp_keepalive.max(0) as u64;
    if keepalive > 0 {
        let sock = socket2::SockRef::from(stream);
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(keepalive))
            .with_interval(Duration::from_secs((keepalive / 3).max(1)));
        let _ = sock.set_tcp_keepalive(&ka);
    }
}

async fn connection(node: Arc<Node>, mut stream: TcpStream, addr: SocketAddr, id: u64) {
    node.stats
        .total_connections_received
        .fetch_add(1, Ordering::Relaxed);
    let maxclients = node.hot.maxclients.load(Ordering::Relaxed);
    if node.connected_clients() >= maxclients {
        node.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let (protected, has_pass) = {
        let c = node.config.read();
        (c.protected_mode, !c.requirepass.is_empty())
    };
    if protected && !has_pass && !is_loopback(&addr) {
        let _ = stream.write_all(PROTECTED_MSG.as_bytes()).await;
        return;
    }
    configure_socket(&node, &stream);
    let laddr = stream.local_addr().unwrap_or(addr);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let fd = {
        use std::os::fd::AsRawFd;
        stream.as_raw_fd()
    };
    let handle = Arc::new(ClientHandle::new(id, addr, laddr, fd, 0, push_tx));
    node.clients.lock().insert(id, handle.clone());
    let needs_auth = node.hot.requirepass.read().is_some();
    let mut client = Client::new(handle.clone(), !needs_auth);
    let mut conn = Conn {
        node: node.clone(),
        parser: RequestParser::new(),
        inbuf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(READ_CHUNK),
        pending: None,
        replicate: None,
    };
    if let Err(e) = conn.run(&mut client, &mut stream, &mut push_rx).await {
        tracing::debug!(id, %addr, "connection closed: {e}");
    }
    if let Some(req) = conn.replicate.take() {
        let inbuf = std::mem::take(&mut conn.inbuf);
        crate::replication::master::serve(node.clone(), stream, &mut client, req, inbuf).await;
    }
    cleanup(&node, &mut client);
}

fn cleanup(node: &Arc<Node>, client: &mut Client) {
    let id = client.handle.id;
    cmd::pubsub::unsubscribe_all(node, client);
    cmd::multi::unwatch_all(node, client);
    if client.handle.has_flag(cflag::MONITOR) {
        node.monitors.fetch_sub(1, Ordering::Relaxed);
    }
    node.clients.lock().remove(&id);
    node.stats
        .total_commands_processed
        .fetch_add(std::mem::take(&mut client.pending_cmds), Ordering::Relaxed);
}

struct Conn {
    node: Arc<Node>,
    parser: RequestParser,
    inbuf: BytesMut,
    out: BytesMut,
    /// A request waiting for CLIENT PAUSE to end.
    pending: Option<Vec<Bytes>>,
    /// Set by SYNC/PSYNC: the connection becomes a replication session.
    replicate: Option<crate::replication::master::PsyncRequest>,
}

enum Step {
    Continue,
    Close,
    Wait(i64),
    Blocked(Blocked),
    Replicate,
    Shutdown(crate::config::ShutdownFlags),
    WaitReplicas {
        offset: u64,
        needed: usize,
        deadline: Option<std::time::Instant>,
    },
}

impl Conn {
    async fn run(
        &mut self,
        client: &mut Client,
        stream: &mut TcpStream,
        push_rx: &mut mpsc::UnboundedReceiver<Push>,
    ) -> std::io::Result<()> {
        let handle = client.handle.clone();
        let (mut rd, mut wr) = stream.split();
        loop {
            if handle.killed.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                _ = handle.kill.notified() => return Ok(()),
                r = rd.read_buf(&mut self.inbuf) => {
                    let n = r?;
                    if n == 0 {
                        return Ok(());
                    }
                    self.node.hot.busy_poll.poke();
                    self.node.stats.total_net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    handle.last_interaction_ms.store(unix_ms(), Ordering::Relaxed);
                    let mut step = self.process(client);
                    loop {
                        self.flush(&mut wr, client).await?;
                        match step {
                            Step::Continue => break,
                            Step::Close => return Ok(()),
                            Step::Wait(until) => {
                                self.wait_pause(until, &handle).await;
                                step = self.process(client);
                            }
                            Step::Blocked(b) => {
                                if !self.wait_blocked(b, client, &mut rd).await {
                                    return Ok(());
                                }
                                step = self.process(client);
                            }
                            Step::Replicate => return Ok(()),
                            Step::Shutdown(flags) => {
                                if let Err(e) = crate::shutdown::run(self.node.clone(), flags).await {
                                    ReplyWriter::new(&mut self.out, client.proto).error(&e);
                                    step = self.process(client);
                                } else {
                                    return Ok(());
                                }
                            }
                            Step::WaitReplicas { offset, needed, deadline } => {
                                if !self.wait_replicas(client, offset, needed, deadline).await {
                                    return Ok(());
                                }
                                step = self.process(client);
                            }
                        }
                    }
                }
                p = push_rx.recv() => {
                    let Some(p) = p else { return Ok(()) };
                    self.write_push(client, p);
                    while let Ok(p) = push_rx.try_recv() {
                        self.write_push(client, p);
                        if self.out.len() > 64 * 1024 {
                            break;
                        }
                    }
                    let n = self.out.len();
                    self.flush(&mut wr, client).await?;
                    let _ = handle.pending_push.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
                }
            }
        }
    }

    /// WAIT: replies with the number of replicas that acknowledged
    /// `offset`, once `needed` did or at the deadline. False when the
    /// client was killed meanwhile.
    async fn wait_replicas(
        &mut self,
        client: &mut Client,
        offset: u64,
        needed: usize,
        deadline: Option<std::time::Instant>,
    ) -> bool {
        let handle = client.handle.clone();
        let repl = &self.node.repl;
        loop {
            let notified = repl.acked.notified();
            let n = repl.acked_at_least(offset);
            let expired = deadline.is_some_and(|d| std::time::Instant::now() >= d);
            if n >= needed || expired {
                let mut w = ReplyWriter::new(&mut self.out, client.proto);
                w.int(n as i64);
                return true;
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = sleep => {}
                _ = handle.kill.notified() => return false,
            }
        }
    }

    async fn wait_pause(&mut self, until: i64, handle: &ClientHandle) {
        let now = unix_ms();
        if now >= until || handle.killed.load(Ordering::Acquire) {
            return;
        }
        let notified = self.node.unpaused.notified();
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis((until - now) as u64)) => {}
            _ = handle.kill.notified() => {}
        }
    }

    /// Waits for a blocked command's reply or timeout and writes it. Returns
    /// false if the client was killed meanwhile.
    async fn wait_blocked(
        &mut self,
        mut b: Blocked,
        client: &mut Client,
        rd: &mut tokio::net::tcp::ReadHalf<'_>,
    ) -> bool {
        let handle = client.handle.clone();
        handle.set_flag(cflag::BLOCKED, true);
        let deadline = b.deadline;
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        // In cluster mode a slot may move away (a migration, a failover)
        // while we wait: checked as often as redis's clientsCron would.
        let cluster = self.node.cluster.get().cloned();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut redirect: Option<String> = None;
        let mut alive = true;
        // Keep reading while blocked: pipelined requests are buffered for
        // later, and a closed connection gives up the wait at once (like
        // redis, which frees the client), so no element is served to a
        // client that is gone.
        let reply = loop {
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                r = &mut b.rx => break r.ok(),
                _ = &mut sleep => break None,
                _ = tick.tick(), if cluster.is_some() => {
                    redirect = cluster.as_ref().and_then(|c| blocked_redirect(c, &b.keys));
                    if redirect.is_some() {
                        break None;
                    }
                }
                _ = handle.kill.notified() => { alive = false; break None }
                r = rd.read_buf(&mut self.inbuf) => match r {
                    Ok(0) | Err(_) => { alive = false; break None }
                    Ok(n) => {
                        self.node.stats.total_net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        let limit = self.node.hot.query_buffer_limit.load(Ordering::Relaxed) as usize;
                        if self.inbuf.len() > limit {
                            tracing::warn!(addr = %client.addr, "closing blocked client that reached max query buffer length");
                            alive = false;
                            break None;
                        }
                    }
                },
            }
        };
        let reply = match reply {
            Some(r) => Some(r),
            None => self.cancel_blocked(&mut b).await,
        };
        handle.set_flag(cflag::BLOCKED, false);
        let mut w = ReplyWriter::new(&mut self.out, client.proto);
        match (reply, redirect) {
            (Some(r), _) => w.raw(&r),
            (None, Some(e)) => {
                self.node
                    .stats
                    .total_error_replies
                    .fetch_add(1, Ordering::Relaxed);
                w.error(&e)
            }
            (None, None) => match b.timeout_reply {
                TimeoutReply::NullArray => w.null_array(),
                TimeoutReply::NullBulk => w.null(),
            },
        }
        alive && !handle.killed.load(Ordering::Acquire)
    }

    /// Gives up a wait. If a serve won the race, returns its reply.
    async fn cancel_blocked(&mut self, b: &mut Blocked) -> Option<Bytes> {
        loop {
            match b.waiter.cancel() {
                Cancel::Cancelled => break,
                Cancel::AlreadyServed => return (&mut b.rx).await.ok(),
                Cancel::BeingServed => {
                    if let Ok(Ok(r)) =
                        tokio::time::timeout(Duration::from_millis(1), &mut b.rx).await
                    {
                        return Some(r);
                    }
                }
            }
        }
        // Drop the registration from the keys' queues.
        let mut ids: Vec<usize> = b
            .keys
            .iter()
            .map(|k| self.node.keyspace.shard_of_slot(crate::engine::key_slot(k)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let guards = self.node.keyspace.lock(&ids);
        let mut view = crate::engine::View::new(
            &self.node.keyspace,
            guards,
            b.waiter.db,
            unix_ms(),
            0,
            &self.node.stream,
            &self.node.stats,
            crate::engine::ExpirePolicy::Delete,
        );
        for k in &b.keys {
            view.remove_waiter(b.waiter.db, k, b.waiter.id);
        }
        None
    }

    /// Parses and executes every complete request in the input buffer.
    fn process(&mut self, client: &mut Client) -> Step {
        let limits = ParseLimits {
            max_bulk_len: self.node.hot.proto_max_bulk_len.load(Ordering::Relaxed),
        };
        // One clock read per command: each command starts when the one
        // before it in this batch ended.
        let mut clock = crate::clock::now();
        loop {
            let args = match self.pending.take() {
                Some(a) => a,
                None => match self.parser.parse(&mut self.inbuf, &limits) {
                    Ok(Some(a)) => a,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(addr = %client.addr, "protocol error: {e}");
                        let mut w = ReplyWriter::new(&mut self.out, client.proto);
                        w.error(&format!("ERR {e}"));
                        return Step::Close;
                    }
                },
            };
            let mark = self.out.len();
            let before = client.reply_mode;
            let (flow, ended) = cmd::dispatch_at(&self.node, client, &args, &mut self.out, clock);
            clock = ended;
            // CLIENT REPLY SKIP drops the reply of the command after it.
            match (before, client.reply_mode) {
                (ReplyMode::Skip, after) => {
                    self.out.truncate(mark);
                    if after == ReplyMode::Skip {
                        client.reply_mode = ReplyMode::On;
                    }
                }
                (_, ReplyMode::On) => {}
                (_, _) => self.out.truncate(mark),
            }
            match flow {
                Flow::Continue => {}
                Flow::Close => return Step::Close,
                Flow::WaitPause(until) => {
                    self.pending = Some(args);
                    return Step::Wait(until);
                }
                Flow::Blocked(b) => return Step::Blocked(b),
                Flow::Block(_) => {}
                Flow::Replicate(req) => {
                    self.replicate = Some(req);
                    return Step::Replicate;
                }
                Flow::Shutdown(flags) => return Step::Shutdown(flags),
                Flow::WaitReplicas {
                    offset,
                    needed,
                    deadline,
                } => {
                    return Step::WaitReplicas {
                        offset,
                        needed,
                        deadline,
                    }
                }
            }
            if client.close_after_reply {
                return Step::Close;
            }
        }
        let limit = self.node.hot.query_buffer_limit.load(Ordering::Relaxed) as usize;
        let qbuf = self.inbuf.len();
        client.handle.qbuf.store(qbuf, Ordering::Relaxed);
        if qbuf > limit {
            tracing::warn!(addr = %client.addr, qbuf, "closing client that reached max query buffer length");
            return Step::Close;
        }
        self.node
            .stats
            .total_commands_processed
            .fetch_add(std::mem::take(&mut client.pending_cmds), Ordering::Relaxed);
        Step::Continue
    }

    fn write_push(&mut self, client: &Client, p: Push) {
        let mut w = ReplyWriter::new(&mut self.out, client.proto);
        match p {
            Push::Message {
                kind,
                pattern,
                channel,
                payload,
            } => {
                w.push(if pattern.is_some() { 4 } else { 3 });
                w.bulk_str(kind);
                if let Some(p) = pattern {
                    w.bulk(&p);
                }
                w.bulk(&channel);
                w.bulk(&payload);
            }
            Push::Monitor(line) => {
                w.raw(b"+");
                w.raw(&line);
                w.raw(b"\r\n");
            }
        }
    }

    async fn flush(
        &mut self,
        wr: &mut tokio::net::tcp::WriteHalf<'_>,
        client: &Client,
    ) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let n = self.out.len();
        client.handle.obuf.store(n, Ordering::Relaxed);
        wr.write_all(&self.out).await?;
        self.node
            .stats
            .total_net_output_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        client.handle.obuf.store(0, Ordering::Relaxed);
        if self.out.capacity() > 1024 * 1024 {
            self.out = BytesMut::with_capacity(READ_CHUNK);
        } else {
            self.out.clear();
        }
        if self.inbuf.is_empty()
            && self.inbuf.capacity() > 1024 * 1024
            && !self.parser.in_progress()
        {
            self.inbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        Ok(())
    }
}

/// Periodic work: active expiry, idle client timeouts, ops/sec sampling.
pub async fn cron(node: Arc<Node>) {
    use rand::Rng;
    let mut rng = rand::rngs::StdRng::from_entropy();
    use rand::SeedableRng;
    let mut last_second = 0i64;
    let mut pressure = crate::busy_poll::PressureGate::default();
    let cron_start = std::time::Instant::now();
    loop {
        let hz = node.hot.hz.load(Ordering::Relaxed).max(1);
        let period = Duration::from_millis(1000 / u64::from(hz));
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = node.shutdown.notified() => return,
        }
        crate::busy_poll::cron_tick(&node.hot.busy_poll, &mut pressure, cron_start);
        let now = unix_ms();
        if now / 1000 != last_second {
            last_second = now / 1000;
            crate::replication::cron(&node, last_second as u64);
        }
        {
            let count = node.stats.total_commands_processed.load(Ordering::Relaxed);
            node.stats.ops_sampler.lock().sample(now, count);
        }
        // Active expiry: up to 25% of a tick per shard, shard by shard, so
        // the data path of other shards is never blocked by it.
        let effort = node.config.read().active_expire_effort.clamp(1, 10) as u64;
        let budget = period.mul_f64(0.25 * (1.0 + (effort as f64 - 1.0) / 9.0))
            / node.keyspace.nshards() as u32;
        let started = std::time::Instant::now();
        // Only masters expire keys actively; a replica waits for its
        // master's DEL.
        let expiring = !node.repl.is_replica()
            && !node.writes_paused()
            && node.hot.active_expire.load(Ordering::Relaxed);
        for id in 0..node.keyspace.nshards() {
            if !expiring {
                break;
            }
            let guards = node.keyspace.lock(&[id]);
            let mut view = crate::engine::View::new(
                &node.keyspace,
                guards,
                0,
                now,
                node.lru_clock(),
                &node.stream,
                &node.stats,
                crate::engine::ExpirePolicy::Delete,
            );
            let mut rnd = |n: usize| rng.gen_range(0..n.max(1));
            view.active_expire(budget, &mut rnd);
        }
        node.stats
            .expire_cycle_cpu_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        // Idle timeout.
        let timeout = node.hot.timeout_secs.load(Ordering::Relaxed);
        if timeout > 0 {
            let limit = now - (timeout as i64) * 1000;
            for c in node.clients.lock().values() {
                let exempt = c.has_flag(cflag::PUBSUB)
                    || c.has_flag(cflag::BLOCKED)
                    || c.has_flag(cflag::MONITOR)
                    || c.has_flag(cflag::MASTER)
                    || c.has_flag(cflag::REPLICA);
                if !exempt && c.last_interaction_ms.load(Ordering::Relaxed) < limit {
                    tracing::debug!(id = c.id, "closing idle client");
                    c.kill();
                }
            }
        }
    }
}

/// The error that ends a blocked command's wait because its keys' slot is
/// no longer served here, as redis's clusterRedirectBlockedClientIfNeeded:
/// the cluster went down, the slot lost its owner, or another master owns
/// it and we are not importing it.
fn blocked_redirect(c: &crate::cluster::Cluster, keys: &[Bytes]) -> Option<String> {
    use crate::cluster::slotmap::Route;
    let map = c.map();
    if !map.ok {
        return Some("CLUSTERDOWN The cluster is down".to_string());
    }
    let slot = crate::engine::key_slot(keys.first()?);
    if map.importing(slot) {
        return None;
    }
    match map.route(slot) {
        Route::Local => None,
        Route::Unbound => Some("CLUSTERDOWN Hash slot not served".to_string()),
        Route::Moved(ep) | Route::Master(ep) => Some(format!("MOVED {slot} {ep}")),
    }
}
