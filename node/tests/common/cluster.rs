//! Multi-node harness for the cluster tests: starts `shardline-node` and/or
//! `redis-server` processes in cluster mode, each on its own loopback
//! address `127.0.<k>.<i>` (`k` unique per test, so tests running in
//! parallel never share an address), with its own directory that survives
//! restarts. Every process is killed when the [`Cluster`] is dropped, even
//! when the test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Conn, Reply, REDIS_SERVER};

/// redis-cli, used by the tests that drive the cluster like an operator.
pub const CLI: &str = "/usr/bin/redis-cli";

/// Panics with the README hint when a tool from the apt packages is missing.
pub fn need(tool: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} not found: run the test command from the README (./scripts/test.sh installs \
         redis-server, redis-tools and python3-redis first)"
    );
}

/// Which server a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Redis,
}

/// One server process of a test cluster.
pub struct Node {
    pub kind: Kind,
    pub ip: String,
    pub port: u16,
    /// Its `--dir` (nodes.conf lives there); kept across restarts.
    pub dir: PathBuf,
    /// Extra command-line arguments, used again on restart.
    pub extra: Vec<String>,
    /// Extra environment, used again on restart.
    pub env: Vec<(String, String)>,
    timeout_ms: u64,
    child: Option<Child>,
    stopped: bool,
}

impl Node {
    /// The cluster bus port (port + 10000 for both servers).
    pub fn cport(&self) -> u16 {
        self.port + 10000
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn bus_addr(&self) -> String {
        format!("{}:{}", self.ip, self.cport())
    }

    pub fn name(&self) -> String {
        format!("{:?}@{}", self.kind, self.addr())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A new raw connection (panics if the node does not accept it).
    pub fn conn(&self) -> Conn {
        Conn::try_connect_addr(&self.addr())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name()))
    }

    /// Runs one command on a fresh connection.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.conn().cmd(args)
    }

    /// Runs one command with a short timeout; errors instead of panicking
    /// (for polling, and for nodes that may be stopped).
    pub fn try_cmd(&self, args: &[&str], timeout: Duration) -> Result<Reply, String> {
        let mut c = Conn::try_connect_addr(&self.addr()).map_err(|e| e.to_string())?;
        c.set_timeout(timeout);
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        c.try_call(&a).map_err(|e| e.to_string())
    }

    /// CLUSTER NODES, raw text.
    pub fn nodes_text(&self) -> Result<String, String> {
        match self.try_cmd(&["CLUSTER", "NODES"], Duration::from_secs(2))? {
            r @ (Reply::Bulk(_) | Reply::Verbatim(..)) => Ok(r.text()),
            other => Err(format!("CLUSTER NODES replied {other:?}")),
        }
    }

    /// CLUSTER NODES, parsed.
    pub fn nodes(&self) -> Result<Vec<NodeLine>, String> {
        parse_nodes(&self.nodes_text()?)
    }

    /// The value of one CLUSTER INFO field.
    pub fn info_field(&self, field: &str) -> Result<String, String> {
        let r = self.try_cmd(&["CLUSTER", "INFO"], Duration::from_secs(2))?;
        super::info_field(&r, field).ok_or_else(|| format!("CLUSTER INFO lacks {field}: {r:?}"))
    }

    pub fn myid(&self) -> String {
        self.cmd(&["CLUSTER", "MYID"]).text()
    }

    /// Whether the process runs and is not SIGSTOPped.
    pub fn is_running_now(&self) -> bool {
        self.child.is_some() && !self.stopped
    }

    /// SIGSTOP: the process freezes (sockets stay open, nothing answers).
    pub fn sigstop(&mut self) {
        self.signal(libc::SIGSTOP);
        self.stopped = true;
    }

    /// SIGCONT after [`Node::sigstop`].
    pub fn sigcont(&mut self) {
        self.signal(libc::SIGCONT);
        self.stopped = false;
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("node is running") as libc::pid_t;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is
        // our own child, not yet reaped (we hold its `Child`).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// SIGKILL and reap (a crash: nothing is flushed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    /// Starts the process (again) with its dir, port and arguments, on
    /// its current `ip`, and waits until it answers PING.
    pub fn start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} already running", self.name());
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("log file: {e}"))?;
        let port = self.port.to_string();
        let timeout = self.timeout_ms.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            &self.ip,
            "--dir",
            &dir,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let bin = match self.kind {
            Kind::Ours => super::node_bin(),
            Kind::Redis => {
                need(REDIS_SERVER);
                // Without it redis dials from 127.0.0.1 and its peers learn
                // the wrong address for it.
                args.extend(["--bind-source-addr", &self.ip]);
                // 127.0.k.x peers are not "loopback" to redis's protected
                // mode (only 127.0.0.1 is): replicas would be refused.
                args.extend(["--protected-mode", "no"]);
                REDIS_SERVER.to_string()
            }
        };
        args.extend(self.extra.iter().map(String::as_str));
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("spawn {bin}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "{} exited at start ({st}): {}",
                    self.name(),
                    tail(&self.log_text(), 30)
                ));
            }
            if let Ok(r) = self.try_cmd(&["PING"], Duration::from_secs(2)) {
                if r == Reply::Status("PONG".into()) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "{} did not answer PING: {}",
                    self.name(),
                    tail(&self.log_text(), 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process and starts it again with the same dir, port and
    /// arguments on `ip`.
    pub fn restart_on(&mut self, ip: &str) {
        self.kill();
        self.ip = ip.to_string();
        if let Err(e) = self.start() {
            panic!("restart on {ip}: {e}");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether `ip:port` and `ip:port+10000` can both be bound right now.
fn ports_free(ip: &str, port: u16) -> bool {
    port <= 55535
        && TcpListener::bind((ip, port)).is_ok()
        && TcpListener::bind((ip, port + 10000)).is_ok()
}

/// A client port below 55535 whose bus port is free too, on `ip`.
pub fn free_port_on(ip: &str) -> u16 {
    for _ in 0..1000 {
        let Ok(l) = TcpListener::bind((ip, 0)) else {
            continue;
        };
        let port = l.local_addr().expect("local_addr").port();
        drop(l);
        // Ephemeral ports are often above 55535; fold them down.
        for p in [port, port.wrapping_sub(20000), port.wrapping_sub(30000)] {
            if (1024..=55535).contains(&p) && ports_free(ip, p) {
                return p;
            }
        }
    }
    panic!("no free port pair on {ip}");
}

/// A set of cluster-mode processes, killed on drop.
pub struct Cluster {
    /// Third octet of every address of this test.
    pub k: u8,
    pub timeout_ms: u64,
    pub nodes: Vec<Node>,
    root: tempfile::TempDir,
}

impl std::ops::Index<usize> for Cluster {
    type Output = Node;
    fn index(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

impl std::ops::IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
}

impl Cluster {
    /// An empty cluster whose nodes will live on 127.0.`k`.x and use
    /// `cluster-node-timeout` `timeout_ms`.
    pub fn new(k: u8, timeout_ms: u64) -> Cluster {
        Cluster {
            k,
            timeout_ms,
            nodes: Vec::new(),
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Starts one node per entry of `kinds` on 127.0.k.1, .2, ...
    pub fn start(k: u8, timeout_ms: u64, kinds: &[Kind]) -> Cluster {
        let mut c = Cluster::new(k, timeout_ms);
        for &kind in kinds {
            c.add(kind, &[], &[]);
        }
        c
    }

    /// A directory shared by the test (for hosts files and the like).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The address of host number `i` of this test.
    pub fn ip(&self, i: usize) -> String {
        format!("127.0.{}.{i}", self.k)
    }

    /// Starts a node on the next address (127.0.k.<len+1>).
    pub fn add(&mut self, kind: Kind, extra: &[&str], env: &[(&str, &str)]) -> usize {
        let ip = self.ip(self.nodes.len() + 1);
        self.add_at(kind, &ip, extra, env)
    }

    /// Starts a node on `ip` with a free port; returns its index.
    pub fn add_at(&mut self, kind: Kind, ip: &str, extra: &[&str], env: &[(&str, &str)]) -> usize {
        let idx = self.nodes.len();
        let dir = self.root.path().join(format!("node{idx}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut last = String::new();
        for _ in 0..5 {
            let mut n = Node {
                kind,
                ip: ip.to_string(),
                port: free_port_on(ip),
                dir: dir.clone(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                timeout_ms: self.timeout_ms,
                child: None,
                stopped: false,
            };
            match n.start() {
                Ok(()) => {
                    self.nodes.push(n);
                    return idx;
                }
                // Port taken in between, most likely: try another.
                Err(e) => last = e,
            }
        }
        panic!("could not start a {kind:?} node on {ip}: {last}");
    }

    /// Every node's CLUSTER NODES (and CLUSTER INFO state), for failure
    /// messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(s, "--- node {i}: {} pid {:?}", n.name(), n.pid());
            if n.stopped {
                let _ = writeln!(s, "(SIGSTOPped)");
                continue;
            }
            match n.nodes_text() {
                Ok(t) => s.push_str(&t),
                Err(e) => {
                    let _ = writeln!(s, "CLUSTER NODES failed: {e}");
                }
            }
            if let Ok(st) = n.info_field("cluster_state") {
                let _ = writeln!(s, "cluster_state:{st}");
            }
        }
        s
    }

    /// The last lines of every node's log, for failure messages.
    pub fn logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(s, "--- log of node {i}: {}", n.name());
            s.push_str(&tail(&n.log_text(), lines));
            s.push('\n');
        }
        s
    }

    /// Polls `check` every 50 ms until it returns Ok; panics after
    /// `within` with `what`, the last error, every node's CLUSTER NODES
    /// and the tail of their logs. Returns the time waited.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&Cluster) -> Result<(), String>,
    ) -> Duration {
        let start = Instant::now();
        let deadline = start + within;
        loop {
            let err = match check(self) {
                Ok(()) => return start.elapsed(),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "timed out after {within:?} waiting for {what}\nlast error: {err}\n\
                     CLUSTER NODES of every node:\n{}\n{}",
                    self.dump(),
                    self.logs(15)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Assigns the 16384 slots in equal contiguous ranges to `masters`
    /// (ADDSLOTSRANGE), in order.
    pub fn assign_slots(&self, masters: &[usize]) {
        for (i, &m) in masters.iter().enumerate() {
            let (a, b) = slot_share(i, masters.len());
            let r =
                self.nodes[m].cmd(&["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()]);
            assert_eq!(
                r,
                Reply::ok(),
                "ADDSLOTSRANGE {a} {b} on {}",
                self[m].name()
            );
        }
    }

    /// CLUSTER MEET from node `from` to node `to`.
    pub fn meet(&self, from: usize, to: usize) {
        let t = &self.nodes[to];
        let r = self.nodes[from].cmd(&["CLUSTER", "MEET", &t.ip, &t.port.to_string()]);
        assert_eq!(r, Reply::ok(), "MEET {} -> {}", self[from].name(), t.name());
    }

    /// Slots split evenly over every node, MEET from node 0 to the
    /// others, then waits until everyone agrees.
    pub fn form(&self) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.assign_slots(&all);
        for i in 1..self.nodes.len() {
            self.meet(0, i);
        }
        self.wait_converged(Duration::from_secs(30));
    }

    /// Waits until [`Cluster::converged`] holds for every running node.
    pub fn wait_converged(&self, within: Duration) -> Duration {
        let n = self.nodes.len();
        self.wait_for("the cluster to converge", within, |c| {
            c.converged(&(0..n).collect::<Vec<_>>()).map(|_| ())
        })
    }

    /// Ok when every node of `idx` lists exactly those nodes, none in
    /// handshake, pfail, fail or noaddr, every link connected, all agree
    /// on slots and configEpochs (the configEpochs distinct), and every
    /// node reports cluster_state:ok. Returns the agreed view.
    pub fn converged(&self, idx: &[usize]) -> Result<View, String> {
        let mut first: Option<(usize, View)> = None;
        for &i in idx {
            let n = &self.nodes[i];
            let lines = healthy_lines(n, idx.len())?;
            let me = lines
                .iter()
                .find(|l| l.has_flag("myself"))
                .ok_or_else(|| format!("{}: no myself line", n.name()))?;
            if me.ip != n.ip || me.port != n.port {
                return Err(format!("{} sees itself at {}:{}", n.name(), me.ip, me.port));
            }
            let view = View::of(&lines);
            let state = n.info_field("cluster_state")?;
            if state != "ok" {
                return Err(format!("{}: cluster_state:{state}", n.name()));
            }
            match &first {
                None => first = Some((i, view)),
                Some((j, v)) => {
                    if *v != view {
                        return Err(format!(
                            "{} and {} disagree:\n{v:?}\nvs\n{view:?}",
                            self.nodes[*j].name(),
                            n.name()
                        ));
                    }
                }
            }
        }
        let (_, view) = first.ok_or("no nodes")?;
        let epochs: BTreeSet<u64> = view.nodes.values().map(|e| e.epoch).collect();
        if epochs.len() != view.nodes.len() {
            return Err(format!("configEpochs not distinct yet: {view:?}"));
        }
        Ok(view)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if std::thread::panicking() && std::env::var_os("SHARDLINE_KEEP_TEST_DIRS").is_some() {
            let p = self.root.path().to_path_buf();
            eprintln!("keeping test directory {}", p.display());
            std::mem::forget(std::mem::replace(
                &mut self.root,
                tempfile::tempdir().expect("tempdir"),
            ));
        }
    }
}

/// Slots `[a, b]` of share `i` of `n` equal contiguous shares.
pub fn slot_share(i: usize, n: usize) -> (u16, u16) {
    let a = i * 16384 / n;
    let b = (i + 1) * 16384 / n - 1;
    (a as u16, b as u16)
}

/// One line of CLUSTER NODES (or of nodes.conf).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
    pub flags: Vec<String>,
    pub master: String,
    pub ping_sent: u64,
    pub pong_recv: u64,
    pub config_epoch: u64,
    pub link_state: String,
    /// Owned slot ranges, merged and sorted (importing/migrating entries
    /// `[...]` are not included).
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    pub fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|(a, b)| usize::from(*b) - usize::from(*a) + 1)
            .sum()
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

/// Merges slot ranges (sorted, adjacent ranges joined).
pub fn merge_ranges(mut v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    v.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 >= u32::from(a) => *hi = (*hi).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Parses one CLUSTER NODES line.
pub fn parse_node_line(line: &str) -> Result<NodeLine, String> {
    let f: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
    if f.len() < 8 {
        return Err(format!("short CLUSTER NODES line {line:?}"));
    }
    let bad = |what: &str| format!("bad {what} in CLUSTER NODES line {line:?}");
    // ip:port@cport[,hostname]
    let (addr, hostname) = match f[1].split_once(',') {
        Some((a, h)) => (a, h.to_string()),
        None => (f[1], String::new()),
    };
    let (ipport, cport) = addr.split_once('@').ok_or_else(|| bad("address"))?;
    let (ip, port) = ipport.rsplit_once(':').ok_or_else(|| bad("address"))?;
    let num = |s: &str, what: &str| s.parse::<u64>().map_err(|_| bad(what));
    let mut slots = Vec::new();
    for s in &f[8..] {
        if s.starts_with('[') {
            continue;
        }
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (*s, *s),
        };
        let a = a.parse::<u16>().map_err(|_| bad("slot"))?;
        let b = b.parse::<u16>().map_err(|_| bad("slot"))?;
        if a > b || b > 16383 {
            return Err(bad("slot range"));
        }
        slots.push((a, b));
    }
    Ok(NodeLine {
        id: f[0].to_string(),
        ip: ip.to_string(),
        port: port.parse().map_err(|_| bad("port"))?,
        cport: cport.parse().map_err(|_| bad("bus port"))?,
        hostname,
        flags: f[2].split(',').map(str::to_string).collect(),
        master: f[3].to_string(),
        ping_sent: num(f[4], "ping-sent")?,
        pong_recv: num(f[5], "pong-recv")?,
        config_epoch: num(f[6], "config-epoch")?,
        link_state: f[7].to_string(),
        slots: merge_ranges(slots),
    })
}

/// Parses CLUSTER NODES output.
pub fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_node_line)
        .collect()
}

/// What every node of a healthy cluster must agree on about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub addr: String,
    pub master: bool,
    pub epoch: u64,
    pub slots: Vec<(u16, u16)>,
}

/// One node's picture of the whole cluster, by node id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub nodes: BTreeMap<String, NodeView>,
}

impl View {
    pub fn of(lines: &[NodeLine]) -> View {
        View {
            nodes: lines
                .iter()
                .map(|l| {
                    (
                        l.id.clone(),
                        NodeView {
                            addr: format!("{}:{}@{}", l.ip, l.port, l.cport),
                            master: l.has_flag("master"),
                            epoch: l.config_epoch,
                            slots: l.slots.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The id of the node owning `slot`.
    pub fn owner(&self, slot: u16) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, v)| v.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|(id, _)| id.as_str())
    }
}

/// Runs redis-cli with `args`; returns (success, stdout + stderr).
pub fn redis_cli(args: &[&str]) -> (bool, String) {
    need(CLI);
    let out = Command::new(CLI)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

/// CRC16/XMODEM hash slot of `key` with hash tags, written here from the
/// cluster spec (not taken from the server) so the tests check the server.
pub fn key_slot(key: &[u8]) -> u16 {
    let mut k = key;
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                k = &key[open + 1..open + 1 + len];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in k {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc & 16383
}

/// The first key `prefix<n>` whose slot `pick` accepts.
pub fn key_where(prefix: &str, pick: impl Fn(u16) -> bool) -> String {
    (0..100_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| pick(key_slot(k.as_bytes())))
        .expect("some key hashes there")
}

/// CLUSTER NODES of `n`, when it lists `want` nodes and all are
/// [`healthy`].
pub fn healthy_lines(n: &Node, want: usize) -> Result<Vec<NodeLine>, String> {
    let lines = n.nodes().map_err(|e| format!("{}: {e}", n.name()))?;
    if lines.len() != want {
        return Err(format!(
            "{} lists {} nodes, want {want}",
            n.name(),
            lines.len()
        ));
    }
    healthy(&n.name(), &lines)?;
    Ok(lines)
}

/// Ok when no line of `lines` (CLUSTER NODES as `name` sees it) is in
/// handshake, pfail, fail or noaddr, and every link is connected.
pub fn healthy(name: &str, lines: &[NodeLine]) -> Result<(), String> {
    for l in lines {
        for bad in ["handshake", "fail?", "fail", "noaddr"] {
            if l.has_flag(bad) {
                return Err(format!("{name} sees {} as {bad}", l.id));
            }
        }
        if l.link_state != "connected" {
            return Err(format!("{name} sees {} {}", l.id, l.link_state));
        }
    }
    Ok(())
}

/// Ok with (master id -> its slots' owner line, replica id -> master id)
/// when every node of `idx` lists them all, connected and healthy, agrees
/// on who replicates whom, has `masters` masters and `replicas` replicas,
/// and reports cluster_state:ok.
pub fn replica_layout(
    c: &Cluster,
    idx: &[usize],
    masters: usize,
    replicas: usize,
) -> Result<BTreeMap<String, String>, String> {
    let mut first: Option<BTreeMap<String, String>> = None;
    for &i in idx {
        let n = &c[i];
        let lines: Vec<NodeLine> = n.nodes().map_err(|e| format!("{}: {e}", n.name()))?;
        if lines.len() != idx.len() {
            return Err(format!("{} lists {} nodes", n.name(), lines.len()));
        }
        healthy(&n.name(), &lines)?;
        let m = lines.iter().filter(|l| l.has_flag("master")).count();
        let pairs: BTreeMap<String, String> = lines
            .iter()
            .filter(|l| l.has_flag("slave"))
            .map(|l| (l.id.clone(), l.master.clone()))
            .collect();
        if m != masters || pairs.len() != replicas {
            return Err(format!(
                "{} sees {m} masters and {} replicas",
                n.name(),
                pairs.len()
            ));
        }
        for (r, master) in &pairs {
            let ok = lines
                .iter()
                .any(|l| &l.id == master && l.has_flag("master") && !l.slots.is_empty());
            if !ok {
                return Err(format!(
                    "{}: {r} replicates {master}, not a master with slots",
                    n.name()
                ));
            }
        }
        let state = n.info_field("cluster_state")?;
        if state != "ok" {
            return Err(format!("{}: cluster_state:{state}", n.name()));
        }
        match &first {
            None => first = Some(pairs),
            Some(p) if *p != pairs => {
                return Err(format!("{} disagrees: {pairs:?} vs {p:?}", n.name()))
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| "no nodes".to_string())
}

/// Index of the node with id `id`.
pub fn index_of(c: &Cluster, id: &str) -> usize {
    c.nodes
        .iter()
        .position(|n| n.myid() == id)
        .unwrap_or_else(|| panic!("no node with id {id}"))
}

/// Every node's role and owned slots, as all nodes of a cluster agree on
/// them (see [`agreed`]).
pub type Layout = BTreeMap<String, (bool, Vec<(u16, u16)>)>;

/// Ok with id -> (is a master, owned slots) when every node of `idx` lists
/// exactly those nodes, none in handshake/pfail/fail/noaddr, every link
/// connected, reports cluster_state:ok, and all agree on every node's role
/// and slots, the masters' slots covering the 16384 exactly once.
/// Unlike [`Cluster::converged`] it does not compare configEpochs (a
/// replica shows its master's), so it also holds with replicas.
pub fn agreed(c: &Cluster, idx: &[usize]) -> Result<Layout, String> {
    let mut first: Option<(usize, Layout)> = None;
    for &i in idx {
        let n = &c[i];
        let lines = healthy_lines(n, idx.len())?;
        let layout: Layout = lines
            .iter()
            .map(|l| (l.id.clone(), (l.has_flag("master"), l.slots.clone())))
            .collect();
        let state = n.info_field("cluster_state")?;
        if state != "ok" {
            return Err(format!("{}: cluster_state:{state}", n.name()));
        }
        match &first {
            None => first = Some((i, layout)),
            Some((j, l)) if *l != layout => {
                return Err(format!(
                    "{} and {} disagree:\n{l:?}\nvs\n{layout:?}",
                    c[*j].name(),
                    n.name()
                ))
            }
            Some(_) => {}
        }
    }
    let (_, layout) = first.ok_or("no nodes")?;
    let mut seen = vec![false; 16384];
    for (id, (_, slots)) in &layout {
        for &(a, b) in slots {
            for s in a..=b {
                if std::mem::replace(&mut seen[usize::from(s)], true) {
                    return Err(format!("slot {s} owned twice (again by {id})"));
                }
            }
        }
    }
    if let Some(s) = seen.iter().position(|x| !x) {
        return Err(format!("slot {s} has no owner"));
    }
    Ok(layout)
}

/// Every key of node `n` matching `pattern` (SCAN ... MATCH ... COUNT
/// 1000; the node's whole keyspace, whichever slots it owns).
pub fn scan_keys(n: &Node, pattern: &str) -> Vec<String> {
    let mut conn = n.conn();
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let r = conn.cmd(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
        let parts = r.array();
        assert_eq!(parts.len(), 2, "SCAN on {}: {r:?}", n.name());
        cursor = parts[0].text();
        keys.extend(parts[1].array().iter().map(Reply::text));
        if cursor == "0" {
            return keys;
        }
    }
}

/// `redis-cli --cluster check <seed>`: Ok with its output when it found
/// every slot covered and the nodes in agreement, and reported no
/// `[ERR]` and no `[WARNING]` (open slots, for one); Err with the output
/// otherwise.
pub fn cli_check(seed: &str) -> Result<String, String> {
    let (ok, out) = redis_cli(&["--cluster", "check", seed]);
    let clean = ok
        && out.contains("[OK] All 16384 slots covered.")
        && out.contains("[OK] All nodes agree about slots configuration.")
        && !out.contains("[ERR]")
        && !out.contains("[WARNING]");
    if clean {
        Ok(out)
    } else {
        Err(format!(
            "redis-cli --cluster check {seed} (exit ok: {ok}):\n{out}"
        ))
    }
}
