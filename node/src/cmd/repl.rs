//! Replication commands: REPLICAOF/SLAVEOF, ROLE, REPLCONF, PSYNC, SYNC
//! and WAIT.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::{eq_ic, err, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, Flow, SYNTAX};
use crate::node::cflag;
use crate::replication::{self, master::PsyncRequest, LinkState};

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("replicaof", n(replicaof));
    m.insert("slaveof", n(replicaof));
    m.insert("role", n(role));
    m.insert("replconf", n(replconf));
    m.insert("psync", n(psync));
    m.insert("sync", n(sync));
    m.insert("wait", n(wait));
}

fn replicaof(ctx: &mut Ctx) -> CmdResult {
    if ctx.node.cluster.get().is_some() {
        return err("ERR REPLICAOF not allowed in cluster mode.");
    }
    let (host, port) = (&ctx.args[1], &ctx.args[2]);
    if eq_ic(host, "no") && eq_ic(port, "one") {
        if replication::set_master(ctx.node, None) {
            tracing::info!(
                "MASTER MODE enabled (user request from '{}')",
                ctx.client.addr
            );
        }
        ctx.out.ok();
        return Ok(());
    }
    if ctx.client.handle.has_flag(cflag::REPLICA) {
        return err("ERR Command is not valid when client is a replica.");
    }
    let port = parse_i64(port)
        .filter(|p| (0..=65535).contains(p))
        .ok_or_else(|| CmdError::new("ERR Invalid master port"))?;
    let host = String::from_utf8_lossy(host).into_owned();
    if replication::set_master(ctx.node, Some((host.clone(), port as u16))) {
        tracing::info!(
            "REPLICAOF {host}:{port} enabled (user request from '{}')",
            ctx.client.addr
        );
        ctx.out.ok();
    } else {
        ctx.out.simple("OK Already connected to specified master");
    }
    Ok(())
}

fn role(ctx: &mut Ctx) -> CmdResult {
    let node = ctx.node;
    let offset = node.stream.offset() as i64;
    let master = node
        .repl
        .master
        .lock()
        .as_ref()
        .map(|m| (m.host.clone(), m.port, m.state));
    match master {
        Some((host, port, state)) => {
            ctx.out.array(5);
            ctx.out.bulk_str("slave");
            ctx.out.bulk_str(&host);
            ctx.out.int(i64::from(port));
            ctx.out.bulk_str(state.role_name());
            ctx.out.int(if state == LinkState::Connected {
                offset
            } else {
                -1
            });
        }
        None => {
            let mut replicas: Vec<_> = node.repl.replicas.lock().values().cloned().collect();
            replicas.sort_by_key(|r| r.client_id);
            ctx.out.array(3);
            ctx.out.bulk_str("master");
            ctx.out.int(offset);
            ctx.out.array(replicas.len());
            for r in replicas {
                ctx.out.array(3);
                ctx.out.bulk_str(&r.ip);
                ctx.out.bulk_str(&r.listening_port.to_string());
                ctx.out
                    .bulk_str(&r.ack_offset.load(Ordering::Relaxed).to_string());
            }
        }
    }
    Ok(())
}

fn replconf(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    if args.len() % 2 == 0 {
        return err(SYNTAX);
    }
    let mut hello = ctx.client.repl_hello.clone().unwrap_or_default();
    for pair in args[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        if eq_ic(opt, "listening-port") {
            let p = parse_i64(val)
                .filter(|p| (0..=65535).contains(p))
                .ok_or_else(|| CmdError::new(super::NOT_INTEGER))?;
            hello.listening_port = p as u16;
        } else if eq_ic(opt, "ip-address") {
            let ip = String::from_utf8_lossy(val).into_owned();
            if ip.len() > 46 {
                return err("ERR REPLCONF ip-address provided by replica instance is too long");
            }
            hello.ip = Some(ip);
        } else if eq_ic(opt, "capa") {
            if eq_ic(val, "eof") {
                hello.capa_eof = true;
            } else if eq_ic(val, "psync2") {
                hello.capa_psync2 = true;
            }
        } else if eq_ic(opt, "ack") || eq_ic(opt, "getack") {
            // ACKs reach a replication session, GETACKs the master link;
            // on a normal connection they are ignored without a reply.
            return Ok(());
        } else if eq_ic(opt, "rdb-only") || eq_ic(opt, "rdb-filter-only") {
            // Accepted for redis-cli --rdb; the full stream still follows.
        } else {
            return Err(CmdError(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    ctx.client.repl_hello = Some(hello);
    ctx.out.ok();
    Ok(())
}

fn start_sync(ctx: &mut Ctx, req: PsyncRequest) -> CmdResult {
    if ctx.client.handle.has_flag(cflag::REPLICA) {
        return Ok(());
    }
    if ctx.client.multi.is_some() || ctx.client.in_exec {
        return err("ERR Command not allowed inside a transaction");
    }
    ctx.client.handle.set_flag(cflag::REPLICA, true);
    ctx.flow = Flow::Replicate(req);
    Ok(())
}

fn psync(ctx: &mut Ctx) -> CmdResult {
    let replid = String::from_utf8_lossy(&ctx.args[1]).into_owned();
    let offset = parse_i64(&ctx.args[2]).ok_or_else(|| CmdError::new(super::NOT_INTEGER))?;
    start_sync(
        ctx,
        PsyncRequest {
            replid,
            offset,
            psync: true,
        },
    )
}

fn sync(ctx: &mut Ctx) -> CmdResult {
    start_sync(
        ctx,
        PsyncRequest {
            replid: "?".into(),
            offset: -1,
            psync: false,
        },
    )
}

fn wait(ctx: &mut Ctx) -> CmdResult {
    if ctx.node.repl.is_replica() {
        return err("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let needed = parse_i64(&ctx.args[1]).ok_or_else(|| CmdError::new(super::NOT_INTEGER))?;
    let timeout = parse_i64(&ctx.args[2])
        .ok_or_else(|| CmdError::new("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return err("ERR timeout is negative");
    }
    let node = ctx.node;
    let offset = node.stream.offset();
    let acked = node.repl.acked_at_least(offset);
    if acked as i64 >= needed || ctx.client.in_exec || ctx.client.multi.is_some() {
        ctx.out.int(acked as i64);
        return Ok(());
    }
    // Ask the replicas for an acknowledgement now rather than at their
    // next periodic one.
    node.stream.append_nodb(&[b"REPLCONF", b"GETACK", b"*"]);
    let deadline = (timeout > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    ctx.flow = Flow::WaitReplicas {
        offset,
        needed: needed.max(0) as usize,
        deadline,
    };
    Ok(())
}
