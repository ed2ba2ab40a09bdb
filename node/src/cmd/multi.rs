//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{err, make_view, resolve, run_with_view, Access, CmdResult, Ctx, Entry, Flow};
use crate::cmdspec::flag;
use crate::node::{cflag, Node};
use crate::resp::ReplyWriter;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("multi", n(multi));
    m.insert("exec", n(exec));
    m.insert("discard", n(discard));
    m.insert(
        "watch",
        Entry {
            run: watch,
            access: Access::Keys,
        },
    );
    m.insert("unwatch", n(unwatch));
}

fn multi(ctx: &mut Ctx) -> CmdResult {
    if ctx.client.multi.is_some() {
        return err("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.handle.set_flag(cflag::MULTI, true);
    ctx.client.handle.multi_len.store(0, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// Leaves MULTI state without executing.
pub fn discard_state(_node: &Arc<Node>, client: &mut super::Client) {
    client.multi = None;
    client.multi_error = false;
    client.handle.set_flag(cflag::MULTI, false);
    client.handle.multi_len.store(-1, Ordering::Relaxed);
}

/// Drops every WATCH of the client.
pub fn unwatch_all(node: &Arc<Node>, client: &mut super::Client) {
    if client.watched.is_empty() {
        return;
    }
    let watched = std::mem::take(&mut client.watched);
    let guards = node.keyspace.lock_all();
    let mut view = make_view(node, client, guards);
    for (db, key, _, _) in &watched {
        view.unwatch(*db, key);
    }
}

fn discard(ctx: &mut Ctx) -> CmdResult {
    if ctx.client.multi.is_none() {
        return err("ERR DISCARD without MULTI");
    }
    discard_state(ctx.node, ctx.client);
    unwatch_all(ctx.node, ctx.client);
    ctx.out.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx) -> CmdResult {
    if ctx.client.multi.is_some() {
        return err("ERR WATCH inside MULTI is not allowed");
    }
    let args = ctx.args;
    let db = ctx.client.db;
    ctx.view()?;
    let Some(view) = ctx.view.as_mut() else {
        return Ok(());
    };
    for key in &args[1..] {
        if ctx
            .client
            .watched
            .iter()
            .any(|(d, k, _, _)| *d == db && k == key)
        {
            continue;
        }
        // Expire first so a key that is already gone does not fail EXEC.
        view.lookup_quiet(key);
        let (v, epoch) = view.watch_version(key, true);
        ctx.client.watched.push((db, key.clone(), v, epoch));
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx) -> CmdResult {
    // Inside EXEC every shard is already locked by the transaction's view:
    // locking them again would deadlock the node.
    if let Some(view) = ctx.view.as_mut() {
        for (db, key, _, _) in std::mem::take(&mut ctx.client.watched) {
            view.unwatch(db, &key);
        }
    } else {
        unwatch_all(ctx.node, ctx.client);
    }
    ctx.out.ok();
    Ok(())
}

fn exec(ctx: &mut Ctx) -> CmdResult {
    let Some(queue) = ctx.client.multi.take() else {
        return err("ERR EXEC without MULTI");
    };
    let node = ctx.node;
    let aborted = ctx.client.multi_error;
    if aborted {
        discard_state(node, ctx.client);
        unwatch_all(node, ctx.client);
        return err("EXECABORT Transaction discarded because of previous errors.");
    }
    // A transaction of CLUSTER commands is atomic with respect to the
    // cluster bus too (see `Cluster::gate`).
    let cluster = node.cluster.get().cloned().filter(|_| {
        queue.iter().any(|a| {
            a.first()
                .is_some_and(|n| n.eq_ignore_ascii_case(b"cluster"))
        })
    });
    let _gate = cluster.as_ref().map(|c| c.gate.write());
    // All shards stay locked for the whole transaction: it is atomic with
    // respect to every other client and enters the write stream as one
    // MULTI ... EXEC block.
    let guards = node.keyspace.lock_all();
    // The pause write barrier (see run_with_view): a transaction with
    // writes that reached its locks after a pause began waits and retries.
    if !ctx.client.is_master && node.pause_active.load(Ordering::Acquire) {
        const W: u64 = flag::WRITE | flag::MAY_REPLICATE;
        let writes = queue
            .iter()
            .any(|a| crate::cmdspec::lookup_args(a).is_some_and(|s| s.flags & W != 0));
        if let Some(until) = node.paused_for(true).filter(|_| writes) {
            drop(guards);
            ctx.client.multi = Some(queue);
            ctx.flow = super::Flow::WaitPause(until);
            return Ok(());
        }
    }
    discard_state(node, ctx.client);
    let mut view = make_view(node, ctx.client, guards);
    // A slot in migration (see `route`): judged over the whole queue now
    // that every shard is locked; a redirection discards the transaction.
    if let Some(os) = ctx.client.open_slot.take() {
        let cmds = queue
            .iter()
            .filter_map(|a| resolve(a).ok().map(|(_, spec)| (spec, &a[..])));
        if let Some(e) = os.verdict(&mut view, cmds) {
            drop(view);
            unwatch_all(node, ctx.client);
            return Err(super::CmdError(e));
        }
    }
    let mut changed = false;
    for (db, key, version, epoch) in &ctx.client.watched {
        view.db = *db;
        // A watched key that expired since WATCH counts as modified.
        let _ = view.lookup_quiet(key);
        let (v, e) = view.watch_version(key, false);
        if v != *version || e != *epoch {
            changed = true;
        }
    }
    view.db = ctx.client.db;
    if changed {
        drop(view);
        unwatch_all(node, ctx.client);
        ctx.out.null_array();
        return Ok(());
    }
    let wrote = queue
        .iter()
        .any(|args| resolve(args).is_ok_and(|(_, s)| s.flags & flag::WRITE != 0));
    if wrote {
        view.stream.append(view.db, &[b"MULTI"]);
    }
    ctx.out.array(queue.len());
    let proto = ctx.client.proto;
    let mut view = Some(view);
    ctx.client.in_exec = true;
    for args in &queue {
        let mut w = ReplyWriter::new(ctx.out.buf, proto);
        match resolve(args) {
            Ok((top, spec)) => {
                let entry = super::table().get(top.name).copied();
                match entry {
                    Some(entry) => {
                        if let Some(v) = view.as_mut() {
                            v.db = ctx.client.db;
                        }
                        let flow =
                            run_with_view(node, ctx.client, args, &mut w, spec, entry, &mut view);
                        if matches!(flow, Flow::Close) {
                            ctx.flow = Flow::Close;
                        }
                    }
                    None => w.error("ERR unknown command"),
                }
            }
            Err(e) => w.error(&e.0),
        }
    }
    ctx.client.in_exec = false;
    if let Some(v) = view.as_mut() {
        if wrote {
            v.stream.append(v.db, &[b"EXEC"]);
        }
    }
    drop(view);
    unwatch_all(node, ctx.client);
    Ok(())
}
