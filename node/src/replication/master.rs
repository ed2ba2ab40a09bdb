//! The master's side of a replica connection: after SYNC or PSYNC the
//! client connection becomes a replication session.
//!
//! A partial resynchronization replays the backlog from the offset the
//! replica asks for. A full one takes a fork-less snapshot, attaching the
//! replica to the write stream at the snapshot's instant, and sends it as
//! RDB: disk-less with an EOF mark when the replica announced `capa eof`
//! (and repl-diskless-sync is on), else through a temporary file in `dir`
//! so that the length can be sent first. Writes made meanwhile wait in the
//! replica's feed, counted against client-output-buffer-limit: a replica
//! that falls too far behind is dropped, never the master's memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{frame, rstate, ReplicaInfo};
use crate::cmd::Client;
use crate::engine::Keyspace;
use crate::node::{unix_ms, Node};
use crate::stream::Feed;

/// What a replica asked for.
#[derive(Debug, Clone)]
pub struct PsyncRequest {
    /// The replication ID it knows, or "?".
    pub replid: String,
    /// The first byte it lacks, or -1.
    pub offset: i64,
    /// False for the old SYNC command (no +FULLRESYNC line).
    pub psync: bool,
}

/// Handshake facts a replica sent with REPLCONF before PSYNC.
#[derive(Debug, Clone, Default)]
pub struct ReplicaHello {
    pub listening_port: u16,
    pub ip: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
}

fn write_timeout(node: &Node) -> Duration {
    Duration::from_secs(node.config.read().repl_timeout.max(1) as u64)
}

async fn send(sock: &mut TcpStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    match tokio::time::timeout(limit, sock.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write to replica timed out",
        )),
    }
}

/// Serves a replica on `sock` until it disconnects or is dropped.
pub async fn serve(
    node: Arc<Node>,
    mut sock: TcpStream,
    client: &mut Client,
    req: PsyncRequest,
    inbuf: BytesMut,
) {
    let addr = client.addr.clone();
    let hello = client.repl_hello.clone().unwrap_or_default();
    let ip = hello
        .ip
        .clone()
        .unwrap_or_else(|| client.handle.addr.ip().to_string());
    let info = Arc::new(ReplicaInfo {
        client_id: client.handle.id,
        ip: ip.clone(),
        listening_port: hello.listening_port,
        state: rstate::WAIT_BGSAVE.into(),
        ack_offset: 0.into(),
        last_ack_ms: unix_ms().into(),
    });
    node.repl
        .replicas
        .lock()
        .insert(client.handle.id, info.clone());
    let who = format!("{ip}:{}", hello.listening_port);
    let res = session(&node, &mut sock, client, &req, &hello, &info, inbuf, &who).await;
    if let Err(e) = res {
        tracing::warn!("connection with replica {who} ({addr}) lost: {e}");
    } else {
        tracing::info!("connection with replica {who} closed");
    }
    node.repl.replicas.lock().remove(&client.handle.id);
    node.repl.acked.notify_waiters();
}

#[allow(clippy::too_many_arguments)]
async fn session(
    node: &Arc<Node>,
    sock: &mut TcpStream,
    client: &mut Client,
    req: &PsyncRequest,
    hello: &ReplicaHello,
    info: &Arc<ReplicaInfo>,
    inbuf: BytesMut,
    who: &str,
) -> std::io::Result<()> {
    let limit = write_timeout(node);
    if node.repl.is_replica() && !node.repl.link_up.load(Ordering::Relaxed) {
        send(
            sock,
            b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n",
            limit,
        )
        .await?;
        return Ok(());
    }
    let (feed, wait_first_ack) = match partial(node, req, hello, who) {
        Some((history, feed, line)) => {
            send(sock, line.as_bytes(), limit).await?;
            send(sock, &history, limit).await?;
            (feed, false)
        }
        None => full(node, sock, req, hello, info, who).await?,
    };
    if !wait_first_ack {
        info.state.store(rstate::ONLINE, Ordering::Relaxed);
    }
    stream_to(node, sock, client, info, feed, inbuf, who).await
}

/// Accepts a partial resynchronization when the replica's history is ours
/// and the backlog still holds what it lacks.
fn partial(
    node: &Node,
    req: &PsyncRequest,
    hello: &ReplicaHello,
    who: &str,
) -> Option<(Vec<u8>, Feed, String)> {
    if !req.psync || req.replid == "?" {
        return None;
    }
    let ids = node.repl.ids.lock();
    let known =
        req.replid == ids.replid || (req.replid == ids.replid2 && req.offset <= ids.second_offset);
    let refuse = |why: &str| {
        node.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
        tracing::info!("partial resynchronization not accepted for replica {who}: {why}");
        None
    };
    if !known {
        return refuse(&format!(
            "replication ID mismatch (replica asked for '{}', my IDs are '{}' and '{}')",
            req.replid, ids.replid, ids.replid2
        ));
    }
    if req.offset < 1 {
        return refuse("invalid offset");
    }
    let Some((history, feed)) = node.stream.attach_from(req.offset as u64) else {
        let b = node.stream.backlog_info();
        return refuse(&format!(
            "requested offset {} outside the backlog (first byte {}, {} bytes held, master offset {})",
            req.offset,
            b.first_byte_offset,
            b.histlen,
            node.stream.offset()
        ));
    };
    let line = if hello.capa_psync2 {
        format!("+CONTINUE {}\r\n", ids.replid)
    } else {
        "+CONTINUE\r\n".to_string()
    };
    node.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        "partial resynchronization request from {who} accepted: sending {} bytes of backlog starting from offset {}",
        history.len(),
        req.offset
    );
    Some((history, feed, line))
}

/// A full synchronization: snapshot, RDB transfer. Returns the feed that
/// starts at the snapshot's instant, and whether the replica must
/// acknowledge before the stream may follow (EOF-marked transfers, where
/// the replica cannot tell the end of the RDB otherwise).
async fn full(
    node: &Arc<Node>,
    sock: &mut TcpStream,
    req: &PsyncRequest,
    hello: &ReplicaHello,
    info: &Arc<ReplicaInfo>,
    who: &str,
) -> std::io::Result<(Feed, bool)> {
    let limit = write_timeout(node);
    node.repl.sync_full.fetch_add(1, Ordering::Relaxed);
    tracing::info!("replica {who} asks for synchronization; starting a full resynchronization");
    let mut attached: Option<(u64, Feed)> = None;
    let job = loop {
        // A replica applying its master's stream holds this lock while it
        // applies and passes on a command: the snapshot never starts
        // between the two.
        let apply = node.repl_apply.lock();
        let started = Keyspace::start_snapshot(
            node,
            |n: &Node| &n.keyspace,
            || {
                let (offset, feed) = node.stream.attach();
                attached = Some((offset, feed));
                let ids = node.repl.ids.lock();
                let c = node.config.read();
                vec![
                    ("redis-ver".into(), crate::REDIS_VERSION.as_bytes().to_vec()),
                    ("redis-bits".into(), b"64".to_vec()),
                    ("ctime".into(), (unix_ms() / 1000).to_string().into_bytes()),
                    ("used-mem".into(), b"0".to_vec()),
                    ("repl-stream-db".into(), b"0".to_vec()),
                    ("repl-id".into(), ids.replid.clone().into_bytes()),
                    ("repl-offset".into(), offset.to_string().into_bytes()),
                    ("aof-base".into(), b"0".to_vec()),
                    (
                        "shardline-databases".into(),
                        c.databases.to_string().into_bytes(),
                    ),
                ]
            },
        );
        drop(apply);
        match started {
            Ok(job) => break job,
            Err(_) => {
                // Another snapshot is running: keep the replica's
                // connection alive with newlines meanwhile, as redis does.
                send(sock, b"\n", limit).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let Some((offset, feed)) = attached else {
        job.cancel();
        return Err(std::io::Error::other("snapshot started without a feed"));
    };
    let replid = node.repl.ids.lock().replid.clone();
    if req.psync {
        send(
            sock,
            format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes(),
            limit,
        )
        .await?;
    }
    info.state.store(rstate::SEND_BULK, Ordering::Relaxed);
    let started = Instant::now();
    let diskless = node.config.read().repl_diskless_sync && hello.capa_eof;
    let res = if diskless {
        send_eof_marked(sock, &job, limit).await
    } else {
        send_via_file(node, sock, &job, limit).await
    };
    let stats = job.stats();
    node.repl
        .last_cow_size
        .store(stats.peak_queued as u64, Ordering::Relaxed);
    if let Err(e) = res {
        job.cancel();
        return Err(e);
    }
    tracing::info!(
        "synchronization with replica {who}: {} keys, {} bytes of RDB sent in {:.3}s ({}; peak snapshot buffer {} bytes, {} bytes serialized ahead of writes)",
        stats.keys,
        stats.bytes,
        started.elapsed().as_secs_f64(),
        if diskless { "disk-less" } else { "through disk" },
        stats.peak_queued,
        stats.early_bytes
    );
    Ok((feed, diskless))
}

async fn send_eof_marked(
    sock: &mut TcpStream,
    job: &crate::engine::snapshot::SnapshotJob,
    limit: Duration,
) -> std::io::Result<()> {
    let mark = super::new_replid();
    send(sock, format!("$EOF:{mark}\r\n").as_bytes(), limit).await?;
    while let Some(chunk) = job.next_chunk().await {
        send(sock, &chunk, limit).await?;
        // A fast replica never makes the socket wait: give the clients
        // sharing this worker thread their turn after every chunk.
        tokio::task::yield_now().await;
    }
    if job.is_cancelled() {
        return Err(std::io::Error::other("snapshot cancelled"));
    }
    send(sock, mark.as_bytes(), limit).await
}

async fn send_via_file(
    node: &Node,
    sock: &mut TcpStream,
    job: &crate::engine::snapshot::SnapshotJob,
    limit: Duration,
) -> std::io::Result<()> {
    static TEMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::path::PathBuf::from(node.config.read().dir.clone());
    let path = dir.join(format!(
        "temp-repl-{}-{}.rdb",
        std::process::id(),
        TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let res = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut len = 0u64;
        while let Some(chunk) = job.next_chunk().await {
            f.write_all(&chunk).await?;
            len += chunk.len() as u64;
        }
        if job.is_cancelled() {
            return Err(std::io::Error::other("snapshot cancelled"));
        }
        f.flush().await?;
        drop(f);
        send(sock, format!("${len}\r\n").as_bytes(), limit).await?;
        let mut f = tokio::fs::File::open(&path).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            send(sock, &buf[..n], limit).await?;
            tokio::task::yield_now().await;
        }
        Ok(())
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    res
}

/// Forwards the write stream to the replica and reads its REPLCONF ACKs.
async fn stream_to(
    node: &Arc<Node>,
    sock: &mut TcpStream,
    client: &mut Client,
    info: &Arc<ReplicaInfo>,
    mut feed: Feed,
    mut inbuf: BytesMut,
    who: &str,
) -> std::io::Result<()> {
    let handle = client.handle.clone();
    let (mut rd, mut wr) = sock.split();
    let mut online = info.state.load(Ordering::Relaxed) == rstate::ONLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut soft_since: Option<Instant> = None;
    let mut batch: Vec<u8> = Vec::new();
    let limit = write_timeout(node);
    loop {
        tokio::select! {
            biased;
            _ = handle.kill.notified() => return Ok(()),
            r = rd.read_buf(&mut inbuf) => {
                if r? == 0 {
                    return Ok(());
                }
                while let Some((_, args)) = frame::next_frame(&mut inbuf, 1 << 20)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                {
                    let is = |i: usize, s: &str| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()));
                    if is(0, "replconf") && is(1, "ack") {
                        let off = args.get(2).and_then(|a| std::str::from_utf8(a).ok()).and_then(|s| s.parse::<u64>().ok());
                        if let Some(off) = off {
                            info.ack_offset.fetch_max(off, Ordering::Relaxed);
                            info.last_ack_ms.store(unix_ms(), Ordering::Relaxed);
                            if !online {
                                online = true;
                                info.state.store(rstate::ONLINE, Ordering::Relaxed);
                                tracing::info!("synchronization with replica {who} succeeded");
                            }
                            node.repl.acked.notify_waiters();
                        }
                    }
                }
            }
            chunk = feed.rx.recv(), if online => {
                let Some(chunk) = chunk else {
                    if feed.overflowed() {
                        tracing::warn!("replica {who} dropped: its output buffer passed the client-output-buffer-limit hard limit");
                    }
                    return Ok(());
                };
                batch.clear();
                batch.extend_from_slice(&chunk);
                while batch.len() < 1024 * 1024 {
                    match feed.rx.try_recv() {
                        Ok(c) => batch.extend_from_slice(&c),
                        Err(_) => break,
                    }
                }
                // While the socket is full, keep watching the limits: the
                // feed may be cut meanwhile.
                let started = Instant::now();
                let write = wr.write_all(&batch);
                tokio::pin!(write);
                loop {
                    tokio::select! {
                        r = &mut write => { r?; break; }
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {
                            if feed.overflowed() {
                                tracing::warn!("replica {who} dropped: its output buffer passed the client-output-buffer-limit hard limit");
                                return Ok(());
                            }
                            if started.elapsed() > limit {
                                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write to replica timed out"));
                            }
                        }
                    }
                }
                feed.consumed(batch.len());
                tokio::task::yield_now().await;
                node.stats.total_net_output_bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let (soft, soft_secs, timeout) = {
                    let c = node.config.read();
                    let l = c.client_output_buffer_limit.replica;
                    (l.soft, l.soft_seconds, c.repl_timeout.max(1))
                };
                let queued = feed.queued() as u64;
                if soft > 0 && queued > soft {
                    let since = *soft_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(soft_secs) {
                        tracing::warn!("replica {who} dropped: {queued} bytes waiting, over the client-output-buffer-limit soft limit for {soft_secs}s");
                        return Ok(());
                    }
                } else {
                    soft_since = None;
                }
                let last = info.last_ack_ms.load(Ordering::Relaxed);
                if online && unix_ms() - last > timeout * 1000 {
                    tracing::warn!("disconnecting timed out replica {who}: no REPLCONF ACK for {timeout}s");
                    return Ok(());
                }
            }
        }
    }
}
