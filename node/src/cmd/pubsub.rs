//! Pub/Sub commands.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::{err, Access, Client, CmdError, CmdResult, Ctx, Entry};
use crate::node::{cflag, Node};
use crate::pubsub::Kind;
use crate::resp::ReplyWriter;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("subscribe", n(subscribe));
    m.insert("unsubscribe", n(unsubscribe));
    m.insert("psubscribe", n(psubscribe));
    m.insert("punsubscribe", n(punsubscribe));
    m.insert("ssubscribe", n(ssubscribe));
    m.insert("sunsubscribe", n(sunsubscribe));
    m.insert("publish", n(publish));
    m.insert("spublish", n(spublish));
    m.insert("pubsub", n(pubsub));
}

fn set_of(client: &mut Client, kind: Kind) -> &mut hashbrown::HashSet<Bytes> {
    match kind {
        Kind::Channel => &mut client.subs,
        Kind::Pattern => &mut client.psubs,
        Kind::Shard => &mut client.ssubs,
    }
}

fn sync_counts(client: &Client) {
    let h = &client.handle;
    h.subs.store(client.subs.len(), Ordering::Relaxed);
    h.psubs.store(client.psubs.len(), Ordering::Relaxed);
    h.ssubs.store(client.ssubs.len(), Ordering::Relaxed);
    h.set_flag(cflag::PUBSUB, client.sub_count() > 0);
}

/// The subscription count a confirmation reports: shard subscriptions are
/// counted separately from channel and pattern ones, as in redis 7.
fn count_for(client: &Client, kind: Kind) -> i64 {
    match kind {
        Kind::Shard => client.ssubs.len() as i64,
        _ => (client.subs.len() + client.psubs.len()) as i64,
    }
}

fn confirm(w: &mut ReplyWriter, what: &str, name: Option<&[u8]>, count: i64) {
    w.push(3);
    w.bulk_str(what);
    match name {
        Some(n) => w.bulk(n),
        None => w.null(),
    }
    w.int(count);
}

fn sub_generic(ctx: &mut Ctx, kind: Kind, what: &str) -> CmdResult {
    let args = ctx.args;
    for ch in &args[1..] {
        if ctx.node.pubsub.subscribe(kind, ch, &ctx.client.handle) {
            set_of(ctx.client, kind).insert(ch.clone());
        }
        let count = count_for(ctx.client, kind);
        confirm(&mut ctx.out, what, Some(ch), count);
    }
    sync_counts(ctx.client);
    Ok(())
}

fn unsub_generic(ctx: &mut Ctx, kind: Kind, what: &str) -> CmdResult {
    let names: Vec<Bytes> = if ctx.args.len() > 1 {
        ctx.args[1..].to_vec()
    } else {
        set_of(ctx.client, kind).iter().cloned().collect()
    };
    if names.is_empty() {
        let count = count_for(ctx.client, kind);
        confirm(&mut ctx.out, what, None, count);
    }
    for ch in names {
        ctx.node.pubsub.unsubscribe(kind, &ch, ctx.client.handle.id);
        set_of(ctx.client, kind).remove(&ch);
        let count = count_for(ctx.client, kind);
        confirm(&mut ctx.out, what, Some(&ch), count);
    }
    sync_counts(ctx.client);
    Ok(())
}

/// Drops every subscription of a client (disconnect, RESET).
pub fn unsubscribe_all(node: &Arc<Node>, client: &mut Client) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        let names: Vec<Bytes> = set_of(client, kind).drain().collect();
        for ch in names {
            node.pubsub.unsubscribe(kind, &ch, client.handle.id);
        }
    }
    sync_counts(client);
}

fn subscribe(ctx: &mut Ctx) -> CmdResult {
    sub_generic(ctx, Kind::Channel, "subscribe")
}
fn psubscribe(ctx: &mut Ctx) -> CmdResult {
    sub_generic(ctx, Kind::Pattern, "psubscribe")
}
fn ssubscribe(ctx: &mut Ctx) -> CmdResult {
    if ctx.args.len() > 2 {
        let slot = crate::engine::key_slot(&ctx.args[1]);
        if ctx.args[2..]
            .iter()
            .any(|c| crate::engine::key_slot(c) != slot)
        {
            return err("CROSSSLOT Keys in request don't hash to the same slot");
        }
    }
    sub_generic(ctx, Kind::Shard, "ssubscribe")
}
fn unsubscribe(ctx: &mut Ctx) -> CmdResult {
    unsub_generic(ctx, Kind::Channel, "unsubscribe")
}
fn punsubscribe(ctx: &mut Ctx) -> CmdResult {
    unsub_generic(ctx, Kind::Pattern, "punsubscribe")
}
fn sunsubscribe(ctx: &mut Ctx) -> CmdResult {
    unsub_generic(ctx, Kind::Shard, "sunsubscribe")
}

fn publish(ctx: &mut Ctx) -> CmdResult {
    let n = ctx.node.pubsub.publish(&ctx.args[1], &ctx.args[2]);
    match ctx.node.cluster.get() {
        Some(c) => c.publish(&ctx.args[1], &ctx.args[2], false),
        // Standalone, messages reach subscribers on replicas through the
        // replication stream, as in redis.
        None => ctx
            .node
            .effects_stream()
            .append_nodb(&[b"PUBLISH", &ctx.args[1], &ctx.args[2]]),
    }
    ctx.node
        .stats
        .pubsub_messages
        .fetch_add(1, Ordering::Relaxed);
    ctx.out.int(n as i64);
    Ok(())
}

fn spublish(ctx: &mut Ctx) -> CmdResult {
    let n = ctx.node.pubsub.spublish(&ctx.args[1], &ctx.args[2]);
    match ctx.node.cluster.get() {
        Some(c) => c.publish(&ctx.args[1], &ctx.args[2], true),
        None => ctx
            .node
            .effects_stream()
            .append_nodb(&[b"SPUBLISH", &ctx.args[1], &ctx.args[2]]),
    }
    ctx.out.int(n as i64);
    Ok(())
}

fn pubsub(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    let args = ctx.args;
    let ps = &ctx.node.pubsub;
    match &sub[..] {
        b"channels" | b"shardchannels" if args.len() <= 3 => {
            let kind = if sub == b"channels" {
                Kind::Channel
            } else {
                Kind::Shard
            };
            let list = ps.channels(kind, args.get(2).map(|b| &b[..]));
            ctx.out.array(list.len());
            for c in list {
                ctx.out.bulk(&c);
            }
        }
        b"numsub" | b"shardnumsub" => {
            let kind = if sub == b"numsub" {
                Kind::Channel
            } else {
                Kind::Shard
            };
            ctx.out.map(args.len() - 2);
            for c in &args[2..] {
                ctx.out.bulk(c);
                ctx.out.int(ps.numsub(kind, c) as i64);
            }
        }
        b"numpat" if args.len() == 2 => ctx.out.int(ps.numpat() as i64),
        b"help" => {
            let lines = [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Prints this help.",
            ];
            super::reply_lines(&mut ctx.out, &lines);
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}
