//! Graceful shutdown, as redis 7.0 does it, plus a handover of mastership.
//!
//! SHUTDOWN, SIGTERM and SIGINT all run [`run`]: a master with replicas
//! pauses writes (reads go on), asks its replicas for an acknowledgement
//! and waits, at most `shutdown-timeout` seconds, until all of them have
//! every write; then the process exits. `NOW` skips the wait, `ABORT` (from
//! another client) cancels it, and a second SIGINT exits at once.
//!
//! Shardline's `FAILOVER` flag (`SHUTDOWN FAILOVER`, `shutdown-on-sigterm
//! failover`) goes further in cluster mode: after the best replica has
//! caught up, the master asks it to take over with CLUSTER FAILOVER and
//! exits only once the replica owns the slots. Kubernetes sends SIGTERM
//! before it deletes a pod; with this a master pod hands over without
//! losing an acknowledged write and without waiting for the node timeout.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use crate::config::ShutdownFlags;
use crate::node::{unix_ms, Node, PausePurpose};

/// The error a SHUTDOWN caller gets when the shutdown fails or is aborted.
pub const FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";

/// The state of a shutdown in progress.
#[derive(Default)]
pub struct Control {
    /// A shutdown is running (its wait for replicas, its handover).
    in_progress: AtomicBool,
    /// When the wait for replicas ends (unix ms), 0 when none.
    deadline_ms: AtomicI64,
    /// SHUTDOWN ABORT was called.
    aborted: AtomicBool,
    abort: Notify,
    /// The outcome, for every caller waiting on the same shutdown.
    outcome: Mutex<Option<watch::Receiver<Option<bool>>>>,
}

impl Control {
    /// Milliseconds left in the wait for replicas (INFO
    /// `shutdown_in_milliseconds`), 0 when not waiting.
    pub fn remaining_ms(&self) -> i64 {
        let d = self.deadline_ms.load(Ordering::Relaxed);
        if d == 0 {
            0
        } else {
            (d - unix_ms()).max(0)
        }
    }

    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Acquire)
    }

    /// SHUTDOWN ABORT: false when no shutdown is in progress.
    pub fn abort(&self) -> bool {
        if !self.in_progress() {
            return false;
        }
        self.aborted.store(true, Ordering::Release);
        self.abort.notify_waiters();
        true
    }
}

/// Runs a shutdown with `flags`. Ok: the process is exiting (the caller
/// should close its connection). Err: the shutdown failed or was aborted;
/// the server goes on. A call while another shutdown is in progress waits
/// for that one's outcome.
pub async fn run(node: Arc<Node>, flags: ShutdownFlags) -> Result<(), String> {
    let ctl = &node.shutdown_ctl;
    let existing = ctl.outcome.lock().clone();
    if let (true, Some(mut rx)) = (ctl.in_progress(), existing) {
        loop {
            if let Some(ok) = *rx.borrow() {
                return if ok { Ok(()) } else { Err(FAILED.into()) };
            }
            if rx.changed().await.is_err() {
                return Err(FAILED.into());
            }
        }
    }
    let (tx, rx) = watch::channel(None);
    *ctl.outcome.lock() = Some(rx);
    ctl.in_progress.store(true, Ordering::Release);
    ctl.aborted.store(false, Ordering::Release);
    let res = sequence(&node, flags).await;
    ctl.deadline_ms.store(0, Ordering::Relaxed);
    match &res {
        Ok(()) => {
            tracing::warn!("Redis is now ready to exit, bye bye...");
            node.shutting_down.store(true, Ordering::Release);
            node.shutdown.notify_waiters();
            node.shutdown.notify_one();
        }
        Err(why) => {
            node.unpause(PausePurpose::Shutdown);
            ctl.in_progress.store(false, Ordering::Release);
            tracing::warn!("{why}");
        }
    }
    let _ = tx.send(Some(res.is_ok()));
    res.map_err(|_| FAILED.to_string())
}

async fn sequence(node: &Arc<Node>, flags: ShutdownFlags) -> Result<(), String> {
    if flags.save && !flags.force {
        // There is no RDB persistence in this build: refusing beats
        // exiting while claiming the dataset was saved.
        return Err("Error trying to save the DB: this build has no RDB persistence".into());
    }
    let timeout_s = node.config.read().shutdown_timeout.max(0);
    let has_replicas = !node.repl.is_replica() && !node.repl.replicas.lock().is_empty();
    if flags.now || timeout_s == 0 || !has_replicas {
        return Ok(());
    }
    let deadline = unix_ms() + timeout_s * 1000;
    node.shutdown_ctl
        .deadline_ms
        .store(deadline, Ordering::Relaxed);
    let ctl = &node.shutdown_ctl;
    let node2 = node.clone();
    // Pause writes and wait for those in flight (they hold shard locks).
    tokio::task::spawn_blocking(move || {
        node2.pause_writes_and_drain(PausePurpose::Shutdown, deadline);
    })
    .await
    .map_err(|e| format!("shutdown: pausing writes failed: {e}"))?;
    node.stream.append_nodb(&[b"REPLCONF", b"GETACK", b"*"]);
    let target = node.stream.offset();
    tracing::warn!("Waiting for replicas before shutting down.");
    let handover = flags.failover
        && node
            .cluster
            .get()
            .is_some_and(|c| c.with(|m| m.me().is_master() && m.me().numslots > 0));
    let work = async {
        if handover {
            hand_over(node, target, deadline).await;
        } else {
            wait_for_replicas(node, target, deadline).await;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = wait_abort(ctl) => return Err("Shutdown aborted by SHUTDOWN ABORT.".into()),
    }
    if ctl.aborted.load(Ordering::Acquire) {
        return Err("Shutdown aborted by SHUTDOWN ABORT.".into());
    }
    Ok(())
}

async fn wait_abort(ctl: &Control) {
    loop {
        let n = ctl.abort.notified();
        if ctl.aborted.load(Ordering::Acquire) {
            return;
        }
        n.await;
    }
}

/// Waits until every online replica acknowledged `target`, or `deadline`.
async fn wait_for_replicas(node: &Arc<Node>, target: u64, deadline: i64) {
    loop {
        let notified = node.repl.acked.notified();
        let (total, behind) = lagging(node, target);
        if behind.is_empty() {
            tracing::info!("{total} replica(s) in sync with offset {target}.");
            return;
        }
        let left = deadline - unix_ms();
        if left <= 0 {
            for (addr, off) in behind {
                tracing::warn!(
                    "Lagging replica {addr} reported offset {off} behind master ({target}), shutting down anyway."
                );
            }
            return;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(left.min(100) as u64)) => {}
        }
    }
}

/// Online replicas, and those that have not acknowledged `target` yet.
fn lagging(node: &Node, target: u64) -> (usize, Vec<(String, u64)>) {
    let reps = node.repl.replicas.lock();
    let online: Vec<_> = reps
        .values()
        .filter(|r| r.state.load(Ordering::Relaxed) == crate::replication::rstate::ONLINE)
        .collect();
    let behind = online
        .iter()
        .filter(|r| r.ack_offset.load(Ordering::Relaxed) < target)
        .map(|r| {
            (
                format!("{}:{}", r.ip, r.listening_port),
                r.ack_offset.load(Ordering::Relaxed),
            )
        })
        .collect();
    (online.len(), behind)
}

/// A cluster replica that may take over: its name, client address, and
/// the offset it acknowledged.
struct Candidate {
    name: String,
    ip: String,
    port: u16,
    acked: u64,
}

fn candidates(node: &Node) -> Vec<Candidate> {
    use crate::cluster::wire::{self, nflag};
    let Some(c) = node.cluster.get() else {
        return Vec::new();
    };
    let peers: Vec<(String, String, u16)> = c.with(|m| {
        m.nodes
            .values()
            .filter(|p| p.is_replica() && p.slaveof == Some(m.myself))
            .filter(|p| !p.failing() && !p.has(nflag::NOFAILOVER))
            .map(|p| (wire::name_str(&p.name).to_string(), p.ip.clone(), p.port))
            .collect()
    });
    let reps = node.repl.replicas.lock();
    let mut out: Vec<Candidate> = peers
        .into_iter()
        .filter_map(|(name, ip, port)| {
            // The replication link of that node: same address and port, or
            // else the only link announcing that port (a replica behind
            // NAT or dialling from another address).
            let online: Vec<_> = reps
                .values()
                .filter(|r| r.state.load(Ordering::Relaxed) == crate::replication::rstate::ONLINE)
                .filter(|r| r.listening_port == port)
                .collect();
            let link = online
                .iter()
                .find(|r| r.ip == ip)
                .or_else(|| (online.len() == 1).then(|| &online[0]))?;
            Some(Candidate {
                name,
                ip,
                port,
                acked: link.ack_offset.load(Ordering::Relaxed),
            })
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.acked));
    out
}

/// The FAILOVER flag: waits for the best replica to catch up, asks it to
/// take over, and waits until it owns our slots. Any failure is logged and
/// the shutdown goes on (the cluster's automatic failover then applies).
async fn hand_over(node: &Arc<Node>, target: u64, deadline: i64) {
    let Some(cluster) = node.cluster.get().cloned() else {
        return;
    };
    // The best replica that acknowledged everything.
    let best = loop {
        let notified = node.repl.acked.notified();
        let all = candidates(node);
        if let Some(c) = all.into_iter().next() {
            if c.acked >= target {
                break c;
            }
        }
        let left = deadline - unix_ms();
        if left <= 0 {
            tracing::warn!(
                "Shutdown failover: no replica caught up with offset {target} in time; exiting without a handover."
            );
            return;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(left.min(100) as u64)) => {}
        }
    };
    tracing::warn!(
        "Shutdown failover: replica {} at {}:{} caught up at offset {target}; handing mastership over.",
        best.name,
        best.ip,
        best.port
    );
    let (user, pass) = {
        let c = node.config.read();
        (c.masteruser.clone(), c.masterauth.clone())
    };
    let left = Duration::from_millis((deadline - unix_ms()).max(0) as u64);
    let asked = tokio::time::timeout(left, async {
        match ask_failover(&best.ip, best.port, &user, &pass, false).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("Shutdown failover: CLUSTER FAILOVER refused ({e}); trying FORCE.");
                ask_failover(&best.ip, best.port, &user, &pass, true).await
            }
        }
    })
    .await;
    match asked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!("Shutdown failover: could not ask the replica to take over: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!("Shutdown failover: timed out asking the replica to take over.");
            return;
        }
    }
    loop {
        if cluster.with(|m| !(m.me().is_master() && m.me().numslots > 0)) {
            tracing::warn!(
                "Shutdown failover: replica {} is now master of our slots.",
                best.name
            );
            // Writes waiting on the pause now get MOVED to the new master
            // rather than a closed connection.
            node.unpause(PausePurpose::Shutdown);
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        if unix_ms() >= deadline {
            tracing::warn!(
                "Shutdown failover: the replica did not take over within shutdown-timeout; exiting anyway."
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends (AUTH and) CLUSTER FAILOVER [FORCE] to a replica's client port.
async fn ask_failover(
    ip: &str,
    port: u16,
    user: &str,
    pass: &str,
    force: bool,
) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
    if !pass.is_empty() {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if !user.is_empty() {
            args.push(user.as_bytes());
        }
        args.push(pass.as_bytes());
        call(&mut s, &args).await?;
    }
    let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"FAILOVER"];
    if force {
        args.push(b"FORCE");
    }
    call(&mut s, &args).await
}

/// One request with a status reply: Ok on `+...`, Err with the error text.
async fn call(s: &mut tokio::net::TcpStream, args: &[&[u8]]) -> Result<(), String> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req).await.map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() > 4096 {
            return Err("reply too long".into());
        }
        let n = s.read(&mut byte).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        line.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
    match text.strip_prefix('+') {
        Some(_) => Ok(()),
        None => Err(text.trim_start_matches('-').to_string()),
    }
}
