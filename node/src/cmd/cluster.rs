//! CLUSTER subcommands, ASKING, READONLY and READWRITE.

use std::collections::HashMap;
use std::sync::Arc;

use super::{eq_ic, err, int_arg, reply_lines, Access, CmdError, CmdResult, Ctx, Entry};
use crate::cluster::machine::{Machine, Peer};
use crate::cluster::nodes_conf;
use crate::cluster::wire::{self, msgtype, nflag, SLOTS};
use crate::cluster::Cluster;
use crate::engine::key_slot;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("cluster", n(cluster));
    m.insert("asking", n(asking));
    m.insert("readonly", n(readonly));
    m.insert("readwrite", n(readwrite));
}

const DISABLED: &str = "ERR This instance has cluster support disabled";

fn enabled(ctx: &Ctx) -> Result<Arc<Cluster>, CmdError> {
    ctx.node
        .cluster
        .get()
        .cloned()
        .ok_or_else(|| CmdError::new(DISABLED))
}

fn asking(ctx: &mut Ctx) -> CmdResult {
    enabled(ctx)?;
    ctx.client.asking = true;
    ctx.out.ok();
    Ok(())
}

fn readonly(ctx: &mut Ctx) -> CmdResult {
    enabled(ctx)?;
    ctx.client.readonly = true;
    ctx.out.ok();
    Ok(())
}

fn readwrite(ctx: &mut Ctx) -> CmdResult {
    enabled(ctx)?;
    ctx.client.readonly = false;
    ctx.out.ok();
    Ok(())
}

/// redis's reply when a variadic subcommand gets a count it does not
/// accept: the subcommand is echoed as the client typed it.
fn arity_error(typed: &[u8]) -> CmdError {
    CmdError(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
        String::from_utf8_lossy(typed)
    ))
}

/// A slot argument of ADDSLOTS/DELSLOTS and friends.
fn slot_arg(b: &[u8]) -> Result<u16, CmdError> {
    match super::parse_i64(b) {
        Some(s) if (0..SLOTS as i64).contains(&s) => Ok(s as u16),
        _ => err("ERR Invalid or out of range slot"),
    }
}

fn slot_ranges(args: &[bytes::Bytes], sub: &str) -> Result<Vec<u16>, CmdError> {
    if args.len() % 2 == 1 || args.is_empty() {
        return Err(CmdError(format!(
            "ERR wrong number of arguments for 'cluster|{sub}' command"
        )));
    }
    let mut out = Vec::new();
    for pair in args.chunks(2) {
        let a = slot_arg(&pair[0])?;
        let b = slot_arg(&pair[1])?;
        if a > b {
            return err(&format!(
                "ERR start slot number {a} is greater than end slot number {b}"
            ));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

fn cluster(ctx: &mut Ctx) -> CmdResult {
    let sub = String::from_utf8_lossy(&ctx.args[1]).to_ascii_lowercase();
    if sub == "help" {
        reply_lines(&mut ctx.out, HELP);
        return Ok(());
    }
    if sub == "keyslot" {
        // Works even without cluster mode, as in redis.
        ctx.out.int(key_slot(&ctx.args[2]) as i64);
        return Ok(());
    }
    let c = enabled(ctx)?;
    let args = ctx.args;
    match sub.as_str() {
        "myid" => {
            let id = c.with(|m| wire::name_str(&m.myself).to_string());
            ctx.out.bulk_str(&id);
        }
        "myshardid" => {
            let id = c.with(|m| wire::name_str(&m.me().shard_id).to_string());
            ctx.out.bulk_str(&id);
        }
        "nodes" => {
            let text = c.with(nodes_text);
            ctx.out.verbatim(&text);
        }
        "info" => {
            let text = c.with(info_text);
            ctx.out.verbatim(&text);
        }
        "meet" => {
            if args.len() > 5 {
                return Err(arity_error(&args[1]));
            }
            let ip = String::from_utf8_lossy(&args[2]).into_owned();
            let port = match super::parse_i64(&args[3]) {
                Some(p) => p,
                None => {
                    return err(&format!(
                        "ERR Invalid TCP base port specified: {}",
                        String::from_utf8_lossy(&args[3])
                    ))
                }
            };
            let cport = match args.get(4) {
                Some(a) => match super::parse_i64(a) {
                    Some(p) => p,
                    None => {
                        return err(&format!(
                            "ERR Invalid TCP bus port specified: {}",
                            String::from_utf8_lossy(a)
                        ))
                    }
                },
                None => port + 10000,
            };
            let bad = || {
                CmdError(format!(
                    "ERR Invalid node address specified: {ip}:{}",
                    String::from_utf8_lossy(&args[3])
                ))
            };
            let (Ok(port), Ok(cport)) = (u16::try_from(port), u16::try_from(cport)) else {
                return Err(bad());
            };
            c.drive(|m, now| m.meet(&ip, port, cport, now))
                .map_err(|_| bad())?;
            ctx.out.ok();
        }
        "addslots" | "delslots" => {
            let slots = args[2..]
                .iter()
                .map(|a| slot_arg(a))
                .collect::<Result<Vec<u16>, CmdError>>()?;
            apply_slots(&c, &sub, &slots)?;
            ctx.out.ok();
        }
        "addslotsrange" | "delslotsrange" => {
            let slots = slot_ranges(&args[2..], &sub)?;
            let base = if sub == "addslotsrange" {
                "addslots"
            } else {
                "delslots"
            };
            apply_slots(&c, base, &slots)?;
            ctx.out.ok();
        }
        "flushslots" => {
            let node = ctx.node.clone();
            let keys = count_keys(&node, None);
            if keys != 0 {
                return err("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.");
            }
            c.drive(|m, now| m.flush_slots(now));
            ctx.out.ok();
        }
        "forget" => {
            c.drive(|m, now| m.forget(&args[2], now))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.ok();
        }
        "reset" => {
            if args.len() > 3 {
                return Err(arity_error(&args[1]));
            }
            let hard = match args.get(2) {
                None => false,
                Some(a) if eq_ic(a, "hard") => true,
                Some(a) if eq_ic(a, "soft") => false,
                Some(_) => return err(super::SYNTAX),
            };
            let is_master = c.with(|m| m.me().is_master());
            let node = ctx.node.clone();
            if is_master && count_keys(&node, None) != 0 {
                return err("ERR CLUSTER RESET can't be called with master nodes containing keys");
            }
            if !is_master {
                // A replica becomes an empty master, as redis's clusterReset.
                crate::replication::set_master(&node, None);
                let mut view = super::system_view(&node, node.keyspace.lock_all(), 0);
                view.flush(true, false);
            }
            c.drive(|m, now| m.reset(hard, now));
            ctx.out.ok();
        }
        "saveconfig" => {
            if !c.save_now() {
                return err("ERR error saving the cluster node config: see the log");
            }
            ctx.out.ok();
        }
        "bumpepoch" => {
            let (bumped, e) = c.drive(|m, _| m.bump_epoch());
            ctx.out
                .simple(&format!("{} {e}", if bumped { "BUMPED" } else { "STILL" }));
        }
        "set-config-epoch" => {
            let e = int_arg(&args[2])?;
            c.drive(|m, _| m.set_config_epoch(e))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.ok();
        }
        "count-failure-reports" => {
            let n = c
                .drive(|m, now| m.count_failure_reports(&args[2], now))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.int(n as i64);
        }
        "countkeysinslot" => {
            let s = int_arg(&args[2])?;
            if !(0..SLOTS as i64).contains(&s) {
                return err("ERR Invalid slot");
            }
            let node = ctx.node.clone();
            ctx.out.int(count_keys(&node, Some(s as usize)) as i64);
        }
        "getkeysinslot" => {
            let s = int_arg(&args[2])?;
            let max = int_arg(&args[3])?;
            if max < 0 || !(0..SLOTS as i64).contains(&s) {
                return err("ERR Invalid slot or number of keys");
            }
            let node = ctx.node.clone();
            let shard = node.keyspace.shard_of_slot(s as usize);
            let guards = node.keyspace.lock(&[shard]);
            let mut view = super::make_view(&node, ctx.client, guards);
            view.db = 0;
            let mut keys: Vec<bytes::Bytes> = Vec::new();
            view.for_each_key_in_slot(s as usize, |k| {
                if (keys.len() as i64) < max {
                    keys.push(bytes::Bytes::copy_from_slice(k));
                }
            });
            drop(view);
            ctx.out.array(keys.len());
            for k in keys {
                ctx.out.bulk(&k);
            }
        }
        "setslot" => {
            use crate::cluster::machine::SetSlot;
            // redis checks the role, then the slot, then the action.
            if c.with(|m| m.me().is_replica()) {
                return err("ERR Please use SETSLOT only with masters.");
            }
            let slot = slot_arg(&args[2])?;
            let rest: Vec<&[u8]> = args[3..].iter().map(|a| &a[..]).collect();
            let action = SetSlot::parse(&rest).map_err(|e| CmdError(e.0))?;
            let node = ctx.node.clone();
            let keys = count_keys(&node, Some(slot as usize));
            c.drive(|m, now| m.set_slot(slot, &action, keys, now))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.ok();
        }
        "slots" => {
            c.with(|m| write_slots(m, &mut ctx.out, c.endpoint()));
        }
        "shards" => {
            c.with(|m| write_shards(m, &mut ctx.out, c.endpoint()));
        }
        "links" => {
            c.with(|m| write_links(m, &mut ctx.out));
        }
        "replicate" => {
            let node = ctx.node.clone();
            let has_keys = count_keys(&node, None) != 0;
            c.drive(|m, now| m.replicate(&args[2], has_keys, now))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.ok();
        }
        "failover" => {
            use crate::cluster::machine::FailoverMode;
            if args.len() > 3 {
                return Err(arity_error(&args[1]));
            }
            let mode = match args.get(2) {
                None => FailoverMode::Default,
                Some(a) if eq_ic(a, "force") => FailoverMode::Force,
                Some(a) if eq_ic(a, "takeover") => FailoverMode::Takeover,
                Some(_) => return err(super::SYNTAX),
            };
            c.drive(|m, now| m.manual_failover(mode, now))
                .map_err(|e| CmdError(e.0))?;
            ctx.out.ok();
        }
        "replicas" | "slaves" => {
            let name = args[2].clone();
            let lines = c.with(|m| {
                let target =
                    crate::cluster::machine::parse_name_bytes(&name).and_then(|n| m.nodes.get(&n));
                match target {
                    None => Err(CmdError(format!(
                        "ERR Unknown node {}",
                        String::from_utf8_lossy(&name)
                    ))),
                    Some(t) if t.is_replica() => {
                        Err(CmdError::new("ERR The specified node is not a master"))
                    }
                    Some(t) => Ok(m
                        .nodes
                        .values()
                        .filter(|p| p.slaveof == Some(t.name) && p.is_replica())
                        .map(|p| nodes_conf::render_line(&m.node_line(p)) + "\n")
                        .collect::<Vec<String>>()),
                }
            })?;
            ctx.out.array(lines.len());
            for l in lines {
                ctx.out.bulk_str(&l);
            }
        }
        _ => {
            return err(&format!(
                "ERR Unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                String::from_utf8_lossy(&args[1])
            ))
        }
    }
    Ok(())
}

fn apply_slots(c: &Arc<Cluster>, sub: &str, slots: &[u16]) -> CmdResult {
    let r = if sub == "addslots" {
        c.drive(|m, now| m.add_slots(slots, now))
    } else {
        c.drive(|m, now| m.del_slots(slots, now))
    };
    r.map_err(|e| CmdError(e.0))
}

/// Keys in one slot of database 0, or in the whole database 0.
pub(super) fn count_keys(node: &Arc<crate::node::Node>, slot: Option<usize>) -> usize {
    match slot {
        Some(s) => {
            let shard = node.keyspace.shard_of_slot(s);
            let view = super::system_view(node, node.keyspace.lock(&[shard]), 0);
            view.keys_in_slot(s)
        }
        None => node
            .keyspace
            .db_sizes()
            .first()
            .map_or(0, |(keys, _)| *keys),
    }
}

/// CLUSTER NODES text.
pub fn nodes_text(m: &Machine) -> String {
    let mut s = String::new();
    // Myself first, then the others: the order is unspecified in redis.
    let mut peers: Vec<&Peer> = m.nodes.values().collect();
    peers.sort_by_key(|p| !p.has(nflag::MYSELF));
    for p in peers {
        s.push_str(&nodes_conf::render_line(&m.node_line(p)));
        s.push('\n');
    }
    s
}

/// CLUSTER INFO text.
pub fn info_text(m: &Machine) -> String {
    let (assigned, ok, pfail, fail) = m.slot_stats();
    let mut s = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\ncluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if m.state_ok { "ok" } else { "fail" },
        m.nodes.len(),
        m.size(),
        m.current_epoch,
        m.node_epoch(m.me()),
    );
    let mut total = 0;
    for (t, n) in m.stats_sent.iter().enumerate() {
        if *n > 0 {
            s.push_str(&format!(
                "cluster_stats_messages_{}_sent:{n}\r\n",
                msgtype::name(t as u16)
            ));
            total += n;
        }
    }
    s.push_str(&format!("cluster_stats_messages_sent:{total}\r\n"));
    let mut total = 0;
    for (t, n) in m.stats_received.iter().enumerate() {
        if *n > 0 {
            s.push_str(&format!(
                "cluster_stats_messages_{}_received:{n}\r\n",
                msgtype::name(t as u16)
            ));
            total += n;
        }
    }
    s.push_str(&format!("cluster_stats_messages_received:{total}\r\n"));
    s.push_str("total_cluster_links_buffer_limit_exceeded:0\r\n");
    s
}

use crate::cluster::slotmap::EndpointType;
use crate::resp::ReplyWriter;

fn endpoint_text(p: &Peer, e: EndpointType) -> Option<String> {
    match e {
        EndpointType::Ip => Some(p.ip.clone()),
        EndpointType::Hostname if p.hostname.is_empty() => Some("?".to_string()),
        EndpointType::Hostname => Some(p.hostname.clone()),
        EndpointType::Unknown => None,
    }
}

/// One node of a CLUSTER SLOTS entry: endpoint, port, id, metadata.
fn write_slot_node(out: &mut ReplyWriter, p: &Peer, e: EndpointType) {
    out.array(4);
    match endpoint_text(p, e) {
        Some(t) => out.bulk_str(&t),
        None => out.null(),
    }
    out.int(i64::from(p.port));
    out.bulk_str(wire::name_str(&p.name));
    let mut meta: Vec<(&str, &str)> = Vec::new();
    if e != EndpointType::Ip {
        meta.push(("ip", &p.ip));
    }
    if e != EndpointType::Hostname && !p.hostname.is_empty() {
        meta.push(("hostname", &p.hostname));
    }
    out.map(meta.len());
    for (k, v) in meta {
        out.bulk_str(k);
        out.bulk_str(v);
    }
}

fn write_slots(m: &Machine, out: &mut ReplyWriter, e: EndpointType) {
    // Runs of consecutive slots with the same owner.
    let mut runs: Vec<(u16, u16, [u8; 40])> = m
        .owned_slots()
        .flat_map(|(name, b)| b.ranges().into_iter().map(|(x, y)| (x, y, *name)))
        .collect();
    runs.sort_unstable_by_key(|r| r.0);
    out.array(runs.len());
    for (a, b, owner) in runs {
        let Some(master) = m.nodes.get(&owner) else {
            out.array(2);
            out.int(i64::from(a));
            out.int(i64::from(b));
            continue;
        };
        let replicas: Vec<&Peer> = m
            .nodes
            .values()
            .filter(|p| p.slaveof == Some(owner) && p.is_replica())
            .filter(|p| !p.has(nflag::FAIL) && p.repl_offset != 0)
            .collect();
        out.array(3 + replicas.len());
        out.int(i64::from(a));
        out.int(i64::from(b));
        write_slot_node(out, master, e);
        for r in replicas {
            write_slot_node(out, r, e);
        }
    }
}

fn write_shard_node(out: &mut ReplyWriter, p: &Peer, e: EndpointType) {
    let mut n = 7;
    if !p.hostname.is_empty() {
        n += 1;
    }
    out.map(n);
    out.bulk_str("id");
    out.bulk_str(wire::name_str(&p.name));
    out.bulk_str("port");
    out.int(i64::from(p.port));
    out.bulk_str("ip");
    out.bulk_str(&p.ip);
    out.bulk_str("endpoint");
    out.bulk_str(&endpoint_text(p, e).unwrap_or_default());
    if !p.hostname.is_empty() {
        out.bulk_str("hostname");
        out.bulk_str(&p.hostname);
    }
    out.bulk_str("role");
    out.bulk_str(if p.is_replica() { "replica" } else { "master" });
    out.bulk_str("replication-offset");
    out.int(p.repl_offset as i64);
    out.bulk_str("health");
    let health = if p.has(nflag::FAIL) {
        "fail"
    } else if p.is_replica() && p.repl_offset == 0 {
        "loading"
    } else {
        "online"
    };
    out.bulk_str(health);
}

fn write_shards(m: &Machine, out: &mut ReplyWriter, e: EndpointType) {
    let masters: Vec<&Peer> = m
        .nodes
        .values()
        .filter(|p| p.is_master() && !p.has(nflag::HANDSHAKE))
        .collect();
    out.array(masters.len());
    for master in masters {
        out.map(2);
        out.bulk_str("slots");
        let ranges = m.slot_ranges(&master.name);
        out.array(ranges.len() * 2);
        for (a, b) in ranges {
            out.int(i64::from(a));
            out.int(i64::from(b));
        }
        out.bulk_str("nodes");
        let replicas: Vec<&Peer> = m
            .nodes
            .values()
            .filter(|p| p.slaveof == Some(master.name) && p.is_replica())
            .collect();
        out.array(1 + replicas.len());
        write_shard_node(out, master, e);
        for r in replicas {
            write_shard_node(out, r, e);
        }
    }
}

fn write_links(m: &Machine, out: &mut ReplyWriter) {
    let links = m.link_infos();
    out.array(links.len());
    for l in links {
        out.map(6);
        out.bulk_str("direction");
        out.bulk_str(if l.outbound { "to" } else { "from" });
        out.bulk_str("node");
        out.bulk_str(wire::name_str(&l.node));
        out.bulk_str("create-time");
        out.int(l.ctime as i64);
        out.bulk_str("events");
        out.bulk_str(if l.outbound { "rw" } else { "r" });
        out.bulk_str("send-buffer-allocated");
        out.int(0);
        out.bulk_str("send-buffer-used");
        out.int(0);
    }
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];
