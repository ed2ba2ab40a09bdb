//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET, CLIENT.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{
    eq_ic, err, int_arg, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, Flow, ReplyMode,
    SYNTAX,
};
use crate::node::{cflag, unix_ms, ClientHandle};
use crate::resp::Proto;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("ping", n(ping));
    m.insert("echo", n(echo));
    m.insert("quit", n(quit));
    m.insert("hello", n(hello));
    m.insert("auth", n(auth));
    m.insert("select", n(select));
    m.insert("reset", n(reset));
    m.insert("client", n(client));
}

fn ping(ctx: &mut Ctx) -> CmdResult {
    if ctx.args.len() > 2 {
        return err("ERR wrong number of arguments for 'ping' command");
    }
    if ctx.client.in_pubsub_context() {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(ctx.args.get(1).map_or(&b""[..], |a| &a[..]));
        return Ok(());
    }
    match ctx.args.get(1) {
        Some(m) => ctx.out.bulk(m),
        None => ctx.out.simple("PONG"),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx) -> CmdResult {
    ctx.out.bulk(&ctx.args[1]);
    Ok(())
}

fn quit(ctx: &mut Ctx) -> CmdResult {
    ctx.out.ok();
    ctx.flow = Flow::Close;
    Ok(())
}

fn check_password(ctx: &Ctx, user: Option<&[u8]>, pass: &[u8]) -> Result<(), CmdError> {
    let required = ctx.node.hot.requirepass.read().clone();
    if let Some(u) = user {
        if u != b"default" {
            return err("WRONGPASS invalid username-password pair or user is disabled.");
        }
    }
    match required {
        None if user.is_none() => err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        // Without requirepass the default user accepts any password.
        None => Ok(()),
        Some(p) if p[..] == *pass => Ok(()),
        Some(_) => err("WRONGPASS invalid username-password pair or user is disabled."),
    }
}

fn auth(ctx: &mut Ctx) -> CmdResult {
    let (user, pass) = match ctx.args.len() {
        2 => (None, &ctx.args[1]),
        3 => (Some(&ctx.args[1][..]), &ctx.args[2]),
        _ => return err(SYNTAX),
    };
    check_password(ctx, user, pass)?;
    ctx.client.authenticated = true;
    ctx.out.ok();
    Ok(())
}

fn hello(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let mut proto = ctx.client.proto;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        let ver = parse_i64(v).ok_or_else(|| {
            CmdError::new("ERR Protocol version is not an integer or out of range")
        })?;
        if !(2..=3).contains(&ver) {
            return err("NOPROTO unsupported protocol version");
        }
        proto = if ver == 3 { Proto::Resp3 } else { Proto::Resp2 };
        i = 2;
    }
    let mut setname = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq_ic(&args[i], "auth") && more >= 2 {
            check_password(ctx, Some(&args[i + 1]), &args[i + 2])?;
            ctx.client.authenticated = true;
            i += 3;
        } else if eq_ic(&args[i], "setname") && more >= 1 {
            validate_name(&args[i + 1])?;
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !ctx.client.authenticated {
        return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = setname {
        *ctx.client.handle.name.lock() = if n.is_empty() { None } else { Some(n) };
    }
    ctx.client.proto = proto;
    ctx.client
        .handle
        .resp
        .store(if proto == Proto::Resp3 { 3 } else { 2 }, Ordering::Relaxed);
    let mut w = crate::resp::ReplyWriter::new(ctx.out.buf, proto);
    let cluster = ctx.node.config.read().cluster_enabled;
    w.map(7);
    w.bulk_str("server");
    w.bulk_str("redis");
    w.bulk_str("version");
    w.bulk_str(crate::REDIS_VERSION);
    w.bulk_str("proto");
    w.int(if proto == Proto::Resp3 { 3 } else { 2 });
    w.bulk_str("id");
    w.int(ctx.client.handle.id as i64);
    w.bulk_str("mode");
    w.bulk_str(if cluster { "cluster" } else { "standalone" });
    w.bulk_str("role");
    w.bulk_str("master");
    w.bulk_str("modules");
    w.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx) -> CmdResult {
    let id = parse_i64(&ctx.args[1])
        .ok_or_else(|| CmdError::new("ERR value is not an integer or out of range"))?;
    if ctx.node.config.read().cluster_enabled && id != 0 {
        return err("ERR SELECT is not allowed in cluster mode");
    }
    if id < 0 || id >= ctx.node.keyspace.databases as i64 {
        return err("ERR DB index is out of range");
    }
    ctx.client.db = id as usize;
    ctx.client.handle.db.store(id as usize, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx) -> CmdResult {
    super::multi::discard_state(ctx.node, ctx.client);
    super::multi::unwatch_all(ctx.node, ctx.client);
    super::pubsub::unsubscribe_all(ctx.node, ctx.client);
    if ctx.client.handle.has_flag(cflag::MONITOR) {
        ctx.client.handle.set_flag(cflag::MONITOR, false);
        ctx.node.monitors.fetch_sub(1, Ordering::Relaxed);
    }
    ctx.client.db = 0;
    ctx.client.handle.db.store(0, Ordering::Relaxed);
    ctx.client.proto = Proto::Resp2;
    ctx.client.handle.resp.store(2, Ordering::Relaxed);
    ctx.client.reply_mode = ReplyMode::On;
    *ctx.client.handle.name.lock() = None;
    ctx.client.authenticated = ctx.node.hot.requirepass.read().is_none();
    let mut w = crate::resp::ReplyWriter::new(ctx.out.buf, Proto::Resp2);
    w.simple("RESET");
    Ok(())
}

fn validate_name(n: &[u8]) -> CmdResult {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok(())
}

/// The class CLIENT LIST/KILL TYPE filters by.
fn client_kind(c: &ClientHandle) -> &'static str {
    if c.has_flag(cflag::MASTER) {
        "master"
    } else if c.has_flag(cflag::REPLICA) {
        "replica"
    } else if c.has_flag(cflag::PUBSUB) {
        "pubsub"
    } else {
        "normal"
    }
}

fn kind_name(t: &[u8]) -> &'static str {
    match t {
        b"master" => "master",
        b"replica" | b"slave" => "replica",
        b"pubsub" => "pubsub",
        _ => "normal",
    }
}

/// One CLIENT LIST / CLIENT INFO line, with redis 7.0's fields.
pub fn client_line(c: &ClientHandle, now_ms: i64, current_cmd: Option<&str>) -> String {
    let flags = c.flags.load(Ordering::Relaxed);
    let mut f = String::new();
    if flags & cflag::PUBSUB != 0 {
        f.push('P');
    }
    if flags & cflag::MASTER != 0 {
        f.push('M');
    }
    if flags & cflag::REPLICA != 0 {
        f.push('S');
    }
    if flags & cflag::MULTI != 0 {
        f.push('x');
    }
    if flags & cflag::MONITOR != 0 {
        f.push('O');
    }
    if flags & cflag::BLOCKED != 0 {
        f.push('b');
    }
    if flags & cflag::NO_EVICT != 0 {
        f.push('e');
    }
    if f.is_empty() {
        f.push('N');
    }
    let name = c
        .name
        .lock()
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let age = c.created.elapsed().as_secs();
    let idle = ((now_ms - c.last_interaction_ms.load(Ordering::Relaxed)).max(0) / 1000) as u64;
    let cmd = current_cmd.unwrap_or_else(|| *c.last_cmd.lock());
    let qbuf = c.qbuf.load(Ordering::Relaxed);
    let obuf = c.obuf.load(Ordering::Relaxed);
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl={} oll=0 omem=0 tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        name,
        age,
        idle,
        f,
        c.db.load(Ordering::Relaxed),
        c.subs.load(Ordering::Relaxed),
        c.psubs.load(Ordering::Relaxed),
        c.ssubs.load(Ordering::Relaxed),
        c.multi_len.load(Ordering::Relaxed),
        qbuf,
        16384usize.saturating_sub(qbuf),
        0,
        16384,
        0,
        obuf,
        16384 + qbuf + obuf,
        cmd,
        c.resp.load(Ordering::Relaxed),
    )
}

fn help(ctx: &mut Ctx, lines: &[&str]) {
    super::reply_lines(&mut ctx.out, lines);
}

fn client(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    let args = ctx.args;
    let now = unix_ms();
    match &sub[..] {
        b"id" => ctx.out.int(ctx.client.handle.id as i64),
        b"setname" => {
            validate_name(&args[2])?;
            *ctx.client.handle.name.lock() = if args[2].is_empty() {
                None
            } else {
                Some(args[2].clone())
            };
            ctx.out.ok();
        }
        b"getname" => match ctx.client.handle.name.lock().clone() {
            Some(n) => ctx.out.bulk(&n),
            None => ctx.out.null(),
        },
        b"info" => {
            let line = client_line(&ctx.client.handle, now, Some("client|info")) + "\n";
            ctx.out.verbatim(&line);
        }
        b"list" => {
            let mut ids: Option<Vec<u64>> = None;
            let mut ty: Option<Vec<u8>> = None;
            let mut i = 2;
            while i < args.len() {
                if eq_ic(&args[i], "type") && i + 1 < args.len() {
                    let t = args[i + 1].to_ascii_lowercase();
                    if !matches!(
                        &t[..],
                        b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
                    ) {
                        return Err(CmdError(format!(
                            "ERR Unknown client type '{}'",
                            String::from_utf8_lossy(&args[i + 1])
                        )));
                    }
                    ty = Some(t);
                    i += 2;
                } else if eq_ic(&args[i], "id") && i + 1 < args.len() {
                    let mut v = Vec::new();
                    for a in &args[i + 1..] {
                        let id = parse_i64(a)
                            .filter(|&n| n > 0)
                            .ok_or_else(|| CmdError::new("ERR Invalid client ID"))?;
                        v.push(id as u64);
                    }
                    ids = Some(v);
                    i = args.len();
                } else {
                    return err(SYNTAX);
                }
            }
            let me = ctx.client.handle.id;
            let clients: Vec<_> = {
                let mut v: Vec<_> = ctx.node.clients.lock().values().cloned().collect();
                v.sort_by_key(|c| c.id);
                v
            };
            let mut s = String::new();
            for c in clients {
                if let Some(ids) = &ids {
                    if !ids.contains(&c.id) {
                        continue;
                    }
                }
                if let Some(t) = &ty {
                    let keep = client_kind(&c) == kind_name(t);
                    if !keep {
                        continue;
                    }
                }
                let cur = if c.id == me {
                    Some("client|list")
                } else {
                    None
                };
                s.push_str(&client_line(&c, now, cur));
                s.push('\n');
            }
            ctx.out.verbatim(&s);
        }
        b"kill" => client_kill(ctx)?,
        b"pause" => {
            let ms = parse_i64(&args[2])
                .filter(|&n| n >= 0)
                .ok_or_else(|| CmdError::new("ERR timeout is not an integer or out of range"))?;
            let all = match args.get(3) {
                None => true,
                Some(a) if eq_ic(a, "all") => true,
                Some(a) if eq_ic(a, "write") => false,
                Some(_) => return err(SYNTAX),
            };
            if args.len() > 4 {
                return err(SYNTAX);
            }
            let until = now.saturating_add(ms);
            ctx.node
                .pause_until(crate::node::PausePurpose::Client, until, all);
            ctx.out.ok();
        }
        b"unpause" => {
            ctx.node.unpause(crate::node::PausePurpose::Client);
            ctx.out.ok();
        }
        b"reply" => {
            let mode = &args[2];
            if eq_ic(mode, "on") {
                ctx.client.reply_mode = ReplyMode::On;
                ctx.out.ok();
            } else if eq_ic(mode, "off") {
                ctx.client.reply_mode = ReplyMode::Off;
            } else if eq_ic(mode, "skip") {
                ctx.client.reply_mode = ReplyMode::Skip;
            } else {
                return err(SYNTAX);
            }
        }
        b"no-evict" => {
            let on = if eq_ic(&args[2], "on") {
                true
            } else if eq_ic(&args[2], "off") {
                false
            } else {
                return err(SYNTAX);
            };
            ctx.client.handle.set_flag(cflag::NO_EVICT, on);
            ctx.out.ok();
        }
        b"help" => help(
            ctx,
            &[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are:",
                "    * ADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made from the specified address",
                "    * LADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made to specified local address",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Kill connections by type.",
                "    * USER <username>",
                "      Kill connections authenticated by <username>.",
                "    * SKIPME (YES|NO)",
                "      Skip killing current connection (default: yes).",
                "    * ID <client-id>",
                "      Kill connections by client id.",
                "    * MAXAGE <maxage>",
                "      Kill connections older than the specified age.",
                "LIST [options ...]",
                "    Return information about client connections. Options:",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Return clients of specified type.",
                "UNPAUSE",
                "    Stop the current client pause, resuming traffic.",
                "PAUSE <timeout> [WRITE|ALL]",
                "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "REPLY (ON|OFF|SKIP)",
                "    Control the replies sent to the current connection.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "NO-EVICT (ON|OFF)",
                "    Protect current client connection from eviction.",
                "HELP",
                "    Prints this help.",
            ],
        ),
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

fn client_kill(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let me = ctx.client.handle.id;
    let clients: Vec<_> = ctx.node.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let target = String::from_utf8_lossy(&args[2]).into_owned();
        let Some(c) = clients.iter().find(|c| c.addr.to_string() == target) else {
            return err("ERR No such client");
        };
        c.kill();
        if c.id == me {
            ctx.client.close_after_reply = true;
        }
        ctx.out.ok();
        return Ok(());
    }
    if args.len() % 2 != 0 {
        return err(SYNTAX);
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut ty: Option<Vec<u8>> = None;
    let mut user: Option<Bytes> = None;
    let mut skipme = true;
    let mut maxage: Option<u64> = None;
    for pair in args[2..].chunks(2) {
        let (k, v) = (&pair[0], &pair[1]);
        if eq_ic(k, "id") {
            id = Some(
                parse_i64(v)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| CmdError::new("ERR client-id should be greater than 0"))?
                    as u64,
            );
        } else if eq_ic(k, "addr") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(k, "laddr") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq_ic(k, "type") {
            let t = v.to_ascii_lowercase();
            if !matches!(
                &t[..],
                b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
            ) {
                return Err(CmdError(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(v)
                )));
            }
            ty = Some(t);
        } else if eq_ic(k, "user") {
            user = Some(v.clone());
        } else if eq_ic(k, "skipme") {
            skipme = if eq_ic(v, "yes") {
                true
            } else if eq_ic(v, "no") {
                false
            } else {
                return err(SYNTAX);
            };
        } else if eq_ic(k, "maxage") {
            maxage = Some(int_arg(v)?.max(0) as u64);
        } else {
            return err(SYNTAX);
        }
    }
    if let Some(u) = &user {
        if &u[..] != b"default" {
            return Err(CmdError(format!(
                "ERR No such user '{}'",
                String::from_utf8_lossy(u)
            )));
        }
    }
    let mut killed = 0;
    for c in clients {
        if id.is_some_and(|i| i != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr.to_string())
            || laddr.as_ref().is_some_and(|a| *a != c.laddr.to_string())
            || maxage.is_some_and(|m| c.created.elapsed().as_secs() < m)
        {
            continue;
        }
        if let Some(t) = &ty {
            let keep = client_kind(&c) == kind_name(t);
            if !keep {
                continue;
            }
        }
        if c.id == me {
            if skipme {
                continue;
            }
            ctx.client.close_after_reply = true;
        }
        c.kill();
        killed += 1;
    }
    ctx.out.int(killed);
    Ok(())
}
