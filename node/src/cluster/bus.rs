//! The cluster bus I/O: listens on the bus port, opens outbound links,
//! frames and decodes messages, runs the 100 ms cron, and carries out what
//! the state machine asks for. All cluster decisions live in `machine`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::machine::{Action, LinkId, Machine, ReplTarget, Settings};
use super::nodes_conf::{self, ConfigLock};
use super::slotmap::{EndpointType, SlotMap};
use super::wire::{self, NodeName};
use crate::config::Config;
use crate::node::{unix_ms, Node};

/// The largest bus message we accept (a PUBLISH of a 512 MB payload fits).
const MAX_MESSAGE: usize = 600 << 20;

fn now_ms() -> u64 {
    unix_ms().max(0) as u64
}

/// A live link: its writer's queue and the task reading it. Either may be
/// registered first (the connect task races with the action executor).
#[derive(Default)]
struct LinkHandle {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    reader: Option<AbortHandle>,
}

/// Cluster mode of one node: the state machine, its published slot map,
/// the bus links and nodes.conf.
pub struct Cluster {
    machine: Mutex<Machine>,
    map: ArcSwap<SlotMap>,
    links: Mutex<HashMap<LinkId, LinkHandle>>,
    conf_path: PathBuf,
    _lock: ConfigLock,
    /// Outbound bus connections leave from our first bind address, as
    /// redis's do, so peers see the address we listen on.
    source_ip: Option<IpAddr>,
    endpoint: AtomicU8,
    /// cluster-allow-reads-when-down, cluster-allow-pubsubshard-when-down.
    reads_when_down: AtomicBool,
    pubsubshard_when_down: AtomicBool,
    node: OnceLock<Weak<Node>>,
    /// The bus port we listen on.
    pub bus_port: u16,
    /// The client port we listen on.
    port: u16,
    /// Wakes the cron when the machine wants time sooner than the next
    /// tick (see [`Machine::next_wakeup`]).
    wake: tokio::sync::Notify,
    /// A change that need not be fsynced (slot migration states) waits
    /// for the saver task, so that a pipeline of SETSLOTs costs one write
    /// of nodes.conf rather than one each.
    soft_save: AtomicBool,
    saver: tokio::sync::Notify,
    /// Held (write) by a transaction with CLUSTER commands, so that no bus
    /// message is applied in the middle of it: redis runs MULTI ... EXEC
    /// and its cluster bus on one thread, and `redis-cli --cluster fix`
    /// relies on DELSLOTS, ADDSLOTS and BUMPEPOCH in one EXEC taking
    /// effect together.
    pub gate: parking_lot::RwLock<()>,
}

/// The machine settings derived from the configuration.
pub fn settings_from(c: &Config, port: u16, bus_port: u16) -> Settings {
    let nz = |v: i64, d: u16| if v > 0 { v as u16 } else { d };
    Settings {
        node_timeout: c.cluster_node_timeout.max(1) as u64,
        port: nz(c.cluster_announce_port, port),
        cport: nz(c.cluster_announce_bus_port, bus_port),
        announce_ip: c.cluster_announce_ip.clone(),
        hostname: c.cluster_announce_hostname.clone(),
        require_full_coverage: c.cluster_require_full_coverage,
        allow_replica_migration: c.cluster_allow_replica_migration,
        replica_no_failover: c.cluster_replica_no_failover,
        replica_validity_factor: c.cluster_replica_validity_factor.max(0) as u64,
        repl_ping_period_ms: (c.repl_ping_replica_period.max(1) as u64).saturating_mul(1000),
        migration_barrier: c.cluster_migration_barrier.max(0) as usize,
    }
}

fn endpoint_type(c: &Config) -> EndpointType {
    match c.cluster_preferred_endpoint_type.as_str() {
        "hostname" => EndpointType::Hostname,
        "unknown-endpoint" => EndpointType::Unknown,
        _ => EndpointType::Ip,
    }
}

fn endpoint_code(e: EndpointType) -> u8 {
    match e {
        EndpointType::Ip => 0,
        EndpointType::Hostname => 1,
        EndpointType::Unknown => 2,
    }
}

fn endpoint_from(code: u8) -> EndpointType {
    match code {
        1 => EndpointType::Hostname,
        2 => EndpointType::Unknown,
        _ => EndpointType::Ip,
    }
}

impl Cluster {
    /// Loads (or creates) nodes.conf and locks it. `port` is the client
    /// port we listen on.
    pub fn open(c: &Config, port: u16) -> Result<Arc<Cluster>, String> {
        let bus_port = if c.cluster_port > 0 {
            c.cluster_port as u16
        } else {
            let p = u32::from(port) + 10000;
            if p > 65535 {
                return Err(format!(
                    "Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less, or set cluster-port (port {port})."
                ));
            }
            p as u16
        };
        let conf_path = PathBuf::from(&c.cluster_config_file);
        let lock = nodes_conf::lock(&conf_path).map_err(|e| {
            format!(
                "Sorry, the cluster configuration file {} is already used by a different Redis Cluster node. Please make sure that different nodes use different cluster configuration files. ({e})",
                conf_path.display()
            )
        })?;
        let settings = settings_from(c, port, bus_port);
        let now = now_ms();
        let seed = rand::random::<u64>();
        // A missing or empty file means a new node; anything unreadable or
        // corrupt stops start-up rather than replacing our identity.
        let loaded = nodes_conf::load(&conf_path).map_err(|e| {
            format!(
                "Unrecoverable error: corrupted cluster config file {}: {e}",
                conf_path.display()
            )
        })?;
        let mut machine = match loaded {
            None => {
                let m = Machine::new(settings, now, seed);
                tracing::info!(
                    "No cluster configuration found, I'm {}",
                    wire::name_str(&m.myself)
                );
                m
            }
            Some(conf) => {
                let m = Machine::from_conf(settings, &conf, now, seed).map_err(|e| {
                    format!(
                        "Unrecoverable error: corrupted cluster config file {}: {e}",
                        conf_path.display()
                    )
                })?;
                tracing::info!(
                    "Node configuration loaded, I'm {}",
                    wire::name_str(&m.myself)
                );
                m
            }
        };
        let source_ip = c
            .bind
            .iter()
            .filter_map(|a| crate::server::bind_entry(a).1)
            .find(|ip| !ip.is_unspecified());
        if let Some(ip) = source_ip {
            machine.set_my_ip(&ip.to_string());
        }
        machine.update_state(now);
        let map = SlotMap::build(&machine, endpoint_type(c));
        let cluster = Arc::new(Cluster {
            machine: Mutex::new(machine),
            map: ArcSwap::from_pointee(map),
            links: Mutex::new(HashMap::new()),
            conf_path,
            _lock: lock,
            source_ip,
            endpoint: AtomicU8::new(endpoint_code(endpoint_type(c))),
            reads_when_down: AtomicBool::new(c.cluster_allow_reads_when_down),
            pubsubshard_when_down: AtomicBool::new(c.cluster_allow_pubsubshard_when_down),
            node: OnceLock::new(),
            bus_port,
            port,
            wake: tokio::sync::Notify::new(),
            soft_save: AtomicBool::new(false),
            saver: tokio::sync::Notify::new(),
            gate: parking_lot::RwLock::new(()),
        });
        // Persist at once so a crash after start keeps our name.
        cluster.drive(|_, _| ());
        let m = cluster.machine.lock();
        cluster.save(&m, true);
        drop(m);
        Ok(cluster)
    }

    /// Starts the bus listener(s) and the cron.
    pub async fn start(self: &Arc<Self>, node: &Arc<Node>) -> Result<(), String> {
        let _ = self.node.set(Arc::downgrade(node));
        let binds: Vec<String> = node.config.read().bind.clone();
        let mut listeners = Vec::new();
        for b in &binds {
            let (optional, ip) = crate::server::bind_entry(b);
            let Some(ip) = ip else {
                if optional {
                    continue;
                }
                return Err(format!("invalid bind address '{b}'"));
            };
            let sa = SocketAddr::new(ip, self.bus_port);
            let bound = if ip.is_ipv6() {
                // Like the client listener: an IPv6 socket that does not
                // also claim the IPv4 addresses.
                tokio::net::TcpSocket::new_v6().and_then(|s| {
                    socket2::SockRef::from(&s).set_only_v6(true)?;
                    s.set_reuseaddr(true)?;
                    s.bind(sa)?;
                    s.listen(511)
                })
            } else {
                tokio::net::TcpSocket::new_v4().and_then(|s| {
                    s.set_reuseaddr(true)?;
                    s.bind(sa)?;
                    s.listen(511)
                })
            };
            match bound {
                Ok(l) => listeners.push(l),
                Err(e) if optional => tracing::debug!("skipping optional bus bind {sa}: {e}"),
                Err(e) => return Err(format!("could not bind the cluster bus on {sa}: {e}")),
            }
        }
        if listeners.is_empty() {
            return Err("could not bind the cluster bus on any address".to_string());
        }
        for l in listeners {
            tokio::spawn(self.clone().accept_loop(l));
        }
        tokio::spawn(self.clone().cron());
        tokio::spawn(self.clone().saver());
        Ok(())
    }

    /// (cluster-allow-reads-when-down, cluster-allow-pubsubshard-when-down)
    pub fn when_down(&self) -> (bool, bool) {
        (
            self.reads_when_down.load(Ordering::Relaxed),
            self.pubsubshard_when_down.load(Ordering::Relaxed),
        )
    }

    /// How clients are told where slots live.
    pub fn endpoint(&self) -> EndpointType {
        endpoint_from(self.endpoint.load(Ordering::Relaxed))
    }

    /// The slot map the data path routes with.
    pub fn map(&self) -> arc_swap::Guard<Arc<SlotMap>> {
        self.map.load()
    }

    /// Runs `f` on the machine with the current time, then persists,
    /// republishes the slot map and carries out the queued actions.
    pub fn drive<R>(self: &Arc<Self>, f: impl FnOnce(&mut Machine, u64) -> R) -> R {
        // What replication knows, read before the machine lock: our offset
        // (every header carries it; a manual failover compares it) and the
        // master link (the election's data age).
        let repl = self.node().map(|n| {
            let link = n.repl.master.lock().as_ref().map(|l| {
                (
                    l.state == crate::replication::LinkState::Connected,
                    l.last_io_ms.max(0) as u64,
                    l.down_since_ms.max(0) as u64,
                )
            });
            (n.stream.offset(), link)
        });
        let now = now_ms();
        let (r, actions, target) = {
            let mut m = self.machine.lock();
            if let Some((offset, link)) = repl {
                m.set_repl_offset(offset);
                if let Some((up, last_io, down_since)) = link {
                    m.set_repl_link(up, last_io, down_since);
                }
            }
            let r = f(&mut m, now);
            if m.next_wakeup(now).is_some() {
                self.wake.notify_one();
            }
            let target = m.repl_target();
            let out = m.take_output();
            if out.map_changed {
                let e = endpoint_from(self.endpoint.load(Ordering::Relaxed));
                self.map.store(Arc::new(SlotMap::build(&m, e)));
            }
            // Lifting a manual failover's pause needs no durable state:
            // with the new slot map published, the waiting writes get
            // -MOVED now rather than after nodes.conf is fsynced.
            if out.actions.contains(&Action::Unpause) {
                if let Some(n) = self.node() {
                    n.unpause(crate::node::PausePurpose::Failover);
                }
            }
            if out.durable {
                self.soft_save.store(false, Ordering::Relaxed);
                self.save(&m, true);
            } else if out.save {
                self.soft_save.store(true, Ordering::Release);
                self.saver.notify_one();
            }
            (r, out.actions, target)
        };
        // Replication follows the new role before the messages announcing
        // it leave: a replica that won an election serves as a master by
        // the time its peers hear of it.
        self.follow(target);
        self.execute(actions);
        r
    }

    /// Points replication at the master the machine says we replicate
    /// (CLUSTER REPLICATE, a restart as a replica, our master's new
    /// address, following the new owner of our master's slots), or stops
    /// it when we became a master.
    fn follow(&self, target: ReplTarget) {
        let want = match target {
            ReplTarget::Master => None,
            ReplTarget::Unknown => return,
            ReplTarget::Addr(ip, port) => Some((ip, port)),
        };
        let Some(node) = self.node() else {
            return;
        };
        // set_master changes nothing when replication already follows
        // `want`: the replication state is the only record of it.
        let log = match &want {
            Some((ip, port)) => format!("cluster: replicating the master at {ip}:{port}"),
            None => "cluster: no longer a replica".to_string(),
        };
        if crate::replication::set_master(&node, want) {
            tracing::info!("{log}");
        }
    }

    /// Reads the machine without changing it.
    pub fn with<R>(&self, f: impl FnOnce(&Machine) -> R) -> R {
        f(&self.machine.lock())
    }

    /// Re-reads the settings after CONFIG SET.
    pub fn reconfigure(self: &Arc<Self>, c: &Config) {
        self.endpoint
            .store(endpoint_code(endpoint_type(c)), Ordering::Relaxed);
        self.reads_when_down
            .store(c.cluster_allow_reads_when_down, Ordering::Relaxed);
        self.pubsubshard_when_down
            .store(c.cluster_allow_pubsubshard_when_down, Ordering::Relaxed);
        let s = settings_from(c, self.port, self.bus_port);
        // refresh_myself marks the map changed: drive republishes it with
        // the endpoint type stored above.
        self.drive(|m, now| {
            m.settings = s;
            m.refresh_myself();
            m.update_state(now);
        });
    }

    /// Writes nodes.conf after changes that need no fsync, coalescing
    /// those that arrive while it writes.
    async fn saver(self: Arc<Self>) {
        loop {
            self.saver.notified().await;
            if self.soft_save.swap(false, Ordering::Acquire) {
                let m = self.machine.lock();
                self.save(&m, false);
            }
        }
    }

    /// Writes nodes.conf (CLUSTER SAVECONFIG and every change that matters).
    pub fn save(&self, m: &Machine, durable: bool) -> bool {
        let text = nodes_conf::render(&m.to_conf());
        match nodes_conf::write_atomic(&self.conf_path, &text, durable) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    "could not save the cluster configuration {}: {e}",
                    self.conf_path.display()
                );
                false
            }
        }
    }

    /// CLUSTER SAVECONFIG.
    pub fn save_now(&self) -> bool {
        let m = self.machine.lock();
        self.save(&m, true)
    }

    fn node(&self) -> Option<Arc<Node>> {
        self.node.get().and_then(Weak::upgrade)
    }

    fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { link, bytes } => {
                    if let Some(tx) = self.links.lock().get(&link).and_then(|h| h.tx.as_ref()) {
                        let _ = tx.send(bytes);
                    }
                }
                Action::Close { link } => {
                    if let Some(h) = self.links.lock().remove(&link) {
                        if let Some(r) = h.reader {
                            r.abort();
                        }
                    }
                }
                Action::Connect { link, ip, cport } => {
                    let task = tokio::spawn(self.clone().connect(link, ip, cport));
                    self.links.lock().entry(link).or_default().reader = Some(task.abort_handle());
                }
                Action::Resolve { node, hostname } => {
                    tokio::spawn(self.clone().resolve(node, hostname));
                }
                Action::Deliver {
                    shard,
                    channel,
                    message,
                } => {
                    if let Some(n) = self.node() {
                        if shard {
                            n.pubsub.spublish(&channel, &message);
                        } else {
                            n.pubsub.publish(&channel, &message);
                        }
                    }
                }
                Action::DropSlotKeys(slots) => {
                    if let Some(n) = self.node() {
                        drop_slot_keys(&n, &slots);
                    }
                }
                Action::PauseWrites { until } => {
                    if let Some(n) = self.node() {
                        let me = self.clone();
                        // Draining waits for the shard locks: not on the
                        // bus task, and never under the machine lock.
                        tokio::task::spawn_blocking(move || {
                            let offset = n.pause_writes_and_drain(
                                crate::node::PausePurpose::Failover,
                                until as i64,
                            );
                            tracing::debug!("manual failover: writes drained at offset {offset}");
                            me.drive(|m, now| m.mf_drained(now));
                        });
                    }
                }
                Action::Unpause => {
                    if let Some(n) = self.node() {
                        n.unpause(crate::node::PausePurpose::Failover);
                        tracing::info!("manual failover over: writes resume");
                    }
                }
            }
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("cluster bus accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let id = self.machine.lock().new_link_id();
            let reader = self.attach(id, stream);
            let me = self.clone();
            let task = tokio::spawn(async move {
                me.drive(|m, now| m.accept(id, &peer.ip().to_string(), &local, now));
                me.read_loop(id, reader).await;
            });
            match self.links.lock().get_mut(&id) {
                Some(h) => h.reader = Some(task.abort_handle()),
                None => task.abort(),
            }
        }
    }

    /// Registers a connected socket: spawns its writer and returns the
    /// read half.
    fn attach(self: &Arc<Self>, id: LinkId, stream: TcpStream) -> tokio::net::tcp::OwnedReadHalf {
        let (r, mut w) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        self.links.lock().entry(id).or_default().tx = Some(tx);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if w.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        });
        r
    }

    async fn connect(self: Arc<Self>, id: LinkId, ip: String, cport: u16) {
        let timeout = self.with(|m| m.settings.node_timeout).max(1000);
        let res = tokio::time::timeout(Duration::from_millis(timeout), self.dial(&ip, cport)).await;
        let stream = match res {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!("cluster bus connect to {ip}:{cport} failed: {e}");
                self.drive(|m, now| m.link_down(id, now));
                return;
            }
            Err(_) => {
                tracing::debug!("cluster bus connect to {ip}:{cport} timed out");
                self.drive(|m, now| m.link_down(id, now));
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let reader = self.attach(id, stream);
        if !self.drive(|m, now| m.link_up(id, now)) {
            // The machine dropped this link while we were connecting.
            self.links.lock().remove(&id);
            return;
        }
        self.read_loop(id, reader).await;
    }

    async fn dial(&self, ip: &str, cport: u16) -> std::io::Result<TcpStream> {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad address {ip}")))?;
        let sa = SocketAddr::new(addr, cport);
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(src) = self.source_ip.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
            sock.bind(SocketAddr::new(src, 0))?;
        }
        sock.connect(sa).await
    }

    async fn read_loop(self: &Arc<Self>, id: LinkId, mut r: tokio::net::tcp::OwnedReadHalf) {
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            // Frame: 8-byte prefix, then the whole message.
            let need = if buf.len() < 8 {
                None
            } else {
                match wire::frame_len(&buf[..8]) {
                    Ok(n) if n <= MAX_MESSAGE => Some(n),
                    Ok(n) => {
                        tracing::warn!("cluster bus: message of {n} bytes refused, link closed");
                        break self.drive(|m, _| m.bad_packet(id));
                    }
                    Err(e) => {
                        tracing::warn!("cluster bus: {e}, link closed");
                        break self.drive(|m, _| m.bad_packet(id));
                    }
                }
            };
            if let Some(n) = need {
                if buf.len() >= n {
                    let frame = buf.split_to(n);
                    match wire::decode(&frame) {
                        Ok(msg) => {
                            let _gate = self.gate.read();
                            self.drive(|m, now| m.receive(id, msg, now));
                            if !self.links.lock().contains_key(&id) {
                                return;
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("cluster bus: invalid message: {e}, link closed");
                            break self.drive(|m, _| m.bad_packet(id));
                        }
                    }
                }
                // Grow with what arrives: a peer's length claim alone must
                // not make us reserve memory.
                buf.reserve((n - buf.len()).min(64 << 10));
            }
            match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    self.links.lock().remove(&id);
                    break self.drive(|m, now| m.link_down(id, now));
                }
                Ok(_) => {}
            }
        }
    }

    async fn resolve(self: Arc<Self>, node: NodeName, hostname: String) {
        let ips = resolve_host(&hostname).await;
        if ips.is_empty() {
            tracing::debug!("could not resolve {hostname}");
            return;
        }
        self.drive(|m, _| m.resolved(&node, &ips));
    }

    /// The 100 ms cron, plus wake-ups in between when the machine asks
    /// for them (an election's start, a manual failover's offset check):
    /// failover reacts to its deadlines, not to the next tick.
    async fn cron(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = self.with(|m| m.next_wakeup(now_ms()));
            let sleep = match wake {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).min(100)),
                None => Duration::from_secs(3600),
            };
            let ticked = tokio::select! {
                _ = tick.tick() => Some(true),
                _ = tokio::time::sleep(sleep) => Some(false),
                // The machine's deadlines changed: compute the sleep again.
                _ = self.wake.notified() => None,
            };
            let Some(ticked) = ticked else { continue };
            if self
                .node()
                .is_none_or(|n| n.shutting_down.load(Ordering::Acquire))
            {
                return;
            }
            if ticked {
                self.drive(|m, now| m.tick(now));
            } else {
                self.drive(|m, now| m.poll_failover(now));
            }
        }
    }

    /// PUBLISH / SPUBLISH executed here: tell the other nodes.
    pub fn publish(self: &Arc<Self>, channel: &Bytes, message: &Bytes, shard: bool) {
        self.drive(|m, _| m.publish(channel.clone(), message.clone(), shard));
    }
}

/// Resolves a hostname to IP addresses. `SHARDLINE_HOSTS_FILE` names an
/// extra hosts file ("ip name..." lines) consulted first: it lets tests
/// and air-gapped setups move names without touching /etc/hosts.
pub async fn resolve_host(hostname: &str) -> Vec<String> {
    if let Ok(path) = std::env::var("SHARDLINE_HOSTS_FILE") {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let found: Vec<String> = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or(""))
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    let ip = it.next()?;
                    it.any(|n| n.eq_ignore_ascii_case(hostname))
                        .then(|| ip.to_string())
                })
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
    }
    match tokio::net::lookup_host((hostname, 0)).await {
        Ok(addrs) => {
            let mut v: Vec<String> = Vec::new();
            for a in addrs {
                let s = a.ip().to_string();
                if !v.contains(&s) {
                    v.push(s);
                }
            }
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Deletes the keys of slots this node lost.
fn drop_slot_keys(node: &Arc<Node>, slots: &[u16]) {
    let mut ids: Vec<usize> = slots
        .iter()
        .map(|s| node.keyspace.shard_of_slot(*s as usize))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut view = crate::cmd::system_view(node, node.keyspace.lock(&ids), 0);
    for s in slots {
        view.flush_slot(*s as usize);
    }
}
