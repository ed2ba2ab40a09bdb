//! Server commands: INFO, CONFIG, COMMAND, TIME, LASTSAVE, SHUTDOWN, DEBUG,
//! SLOWLOG, MONITOR.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{
    eq_ic, err, int_arg, parse_i64, Access, CmdError, CmdResult, Ctx, Entry, Flow, SYNTAX,
};
use crate::node::{cflag, unix_ms, Node};
use crate::stats::Stats;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    let n = |run| Entry {
        run,
        access: Access::None,
    };
    m.insert("info", n(info));
    m.insert("config", n(config));
    m.insert("command", n(command));
    m.insert("time", n(time));
    m.insert("lastsave", n(lastsave));
    m.insert("shutdown", n(shutdown));
    m.insert(
        "debug",
        Entry {
            run: debug,
            access: Access::All,
        },
    );
    m.insert("slowlog", n(slowlog));
    m.insert("monitor", n(monitor));
}

/// The allocator's own figures, as redis reports them in INFO memory:
/// bytes allocated, bytes in active pages, bytes resident (including the
/// allocator's metadata), and the metadata alone.
#[derive(Default, Clone, Copy)]
pub struct AllocatorStats {
    pub allocated: usize,
    pub active: usize,
    pub resident: usize,
    pub metadata: usize,
}

pub fn allocator_stats() -> AllocatorStats {
    #[cfg(not(target_env = "msvc"))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_ok() {
            return AllocatorStats {
                allocated: stats::allocated::read().unwrap_or(0),
                active: stats::active::read().unwrap_or(0),
                resident: stats::resident::read().unwrap_or(0),
                metadata: stats::metadata::read().unwrap_or(0),
            };
        }
    }
    AllocatorStats::default()
}

/// Turns the allocator's background purging threads on or off
/// (`jemalloc-bg-thread`); a no-op when the setting is unchanged.
pub fn set_allocator_background_thread(on: bool) {
    #[cfg(not(target_env = "msvc"))]
    {
        use tikv_jemalloc_ctl::background_thread;
        if background_thread::read().is_ok_and(|cur| cur != on) {
            if let Err(e) = background_thread::write(on) {
                tracing::warn!("could not set jemalloc background threads to {on}: {e}");
            }
        }
    }
    #[cfg(target_env = "msvc")]
    let _ = on;
}

/// The allocator's statistics report (MEMORY MALLOC-STATS).
pub fn allocator_report() -> String {
    #[cfg(not(target_env = "msvc"))]
    {
        let mut out = Vec::new();
        let opts = tikv_jemalloc_ctl::stats_print::Options::default();
        if tikv_jemalloc_ctl::stats_print::stats_print(&mut out, opts).is_ok() {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    "Stats not supported for the current allocator".to_string()
}

/// Returns the allocator's dirty pages of every arena to the OS
/// (MEMORY PURGE).
pub fn allocator_purge() {
    #[cfg(not(target_env = "msvc"))]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": 4096 addresses all arenas.
        let name = b"arena.4096.purge\0";
        // SAFETY: `name` is a NUL-terminated static string; this mallctl
        // neither reads nor writes a value, so every value pointer is null
        // and the length zero, as jemalloc requires for it.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            tracing::warn!("allocator purge failed: error {rc}");
        }
    }
}

/// Resident set size from /proc.
pub fn rss_bytes() -> usize {
    let page = 4096usize;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map_or(0, |p| p * page)
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage only writes into the zero-initialised struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF is valid and `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

fn human_bytes(n: usize) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n}B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Builds the INFO text for the requested sections (empty = default).
/// `sizes`: the keyspace sizes when the caller already holds the shard
/// locks (INFO inside EXEC), else they are read here.
pub fn info_text(node: &Node, sections: &[String], sizes: Option<Vec<(usize, usize)>>) -> String {
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want = |name: &str| all || default || sections.iter().any(|s| s == name);
    let mut out = String::new();
    let mut section = |title: &str, body: String| {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {title}\r\n{body}");
    };
    let cfg = node.config.read().clone();
    let uptime = node.start.elapsed().as_secs();
    if want("server") {
        let mut s = String::new();
        let _ = write!(
            s,
            "redis_version:{}\r\nshardline_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nshard_engines:{}\r\nworker_threads:{}\r\nshutdown_in_milliseconds:{}\r\n",
            crate::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            if cfg.cluster_enabled { "cluster" } else { "standalone" },
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            node.run_id,
            node.port.load(Ordering::Relaxed),
            unix_ms() * 1000,
            uptime,
            uptime / 86400,
            cfg.hz,
            cfg.hz,
            node.lru_clock(),
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            node.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            node.keyspace.nshards(),
            cfg.effective_worker_threads(),
            node.shutdown_ctl.remaining_ms(),
        );
        section("Server", s);
    }
    if want("clients") {
        let clients = node.clients.lock();
        let pubsub = clients
            .values()
            .filter(|c| c.has_flag(cflag::PUBSUB))
            .count();
        let blocked = clients
            .values()
            .filter(|c| c.has_flag(cflag::BLOCKED))
            .count();
        let max_in = clients
            .values()
            .map(|c| c.qbuf.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let max_out = clients
            .values()
            .map(|c| c.obuf.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let s = format!(
            "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:{}\r\nclient_recent_max_output_buffer:{}\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\npubsub_clients:{}\r\n",
            clients.len(),
            cfg.maxclients,
            max_in,
            max_out,
            blocked,
            blocked,
            pubsub,
        );
        drop(clients);
        section("Clients", s);
    }
    if want("memory") {
        let a = allocator_stats();
        let used = a.allocated;
        let rss = rss_bytes();
        let div = |x: usize, y: usize| if y > 0 { x as f64 / y as f64 } else { 0.0 };
        let ratio = div(rss, used);
        let s = format!(
            "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{used}\r\nused_memory_peak_human:{}\r\nallocator_allocated:{used}\r\nallocator_active:{}\r\nallocator_resident:{}\r\nallocator_metadata:{}\r\nallocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_fragmentation_ratio:{ratio:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_allocator:jemalloc\r\nlazyfree_pending_objects:0\r\n",
            human_bytes(used),
            human_bytes(rss),
            human_bytes(used),
            a.active,
            a.resident,
            a.metadata,
            div(a.active, used),
            a.active as i64 - used as i64,
            div(a.resident, a.active),
            a.resident as i64 - a.active as i64,
            cfg.maxmemory,
            human_bytes(cfg.maxmemory as usize),
            cfg.maxmemory_policy.as_str(),
            rss as i64 - used as i64,
        );
        section("Memory", s);
    }
    if want("persistence") {
        let s = format!(
            "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:-1\r\nrdb_current_bgsave_time_sec:-1\r\nrdb_last_cow_size:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\naof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:ok\r\n",
            node.dirty.load(Ordering::Relaxed),
            node.lastsave.load(Ordering::Relaxed),
            node.repl.last_cow_size.load(Ordering::Relaxed),
            i32::from(cfg.appendonly),
        );
        section("Persistence", s);
    }
    if want("stats") {
        let st = &node.stats;
        let g = Stats::get;
        let s = format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_error_replies:{}\r\nexpire_cycle_cpu_milliseconds:{}\r\nbusy_poll_armed:{}\r\nbusy_poll_episodes:{}\r\nbusy_poll_crowded:{}\r\n",
            g(&st.total_connections_received),
            g(&st.total_commands_processed),
            st.ops_sampler.lock().rate(),
            g(&st.total_net_input_bytes),
            g(&st.total_net_output_bytes),
            g(&st.rejected_connections),
            node.repl.sync_full.load(std::sync::atomic::Ordering::Relaxed),
            node.repl.sync_partial_ok.load(std::sync::atomic::Ordering::Relaxed),
            node.repl.sync_partial_err.load(std::sync::atomic::Ordering::Relaxed),
            g(&st.expired_keys),
            g(&st.evicted_keys),
            g(&st.keyspace_hits),
            g(&st.keyspace_misses),
            node.pubsub.channels(crate::pubsub::Kind::Channel, None).len(),
            node.pubsub.numpat(),
            g(&st.total_error_replies),
            g(&st.expire_cycle_cpu_micros) / 1000,
            i32::from(node.hot.busy_poll.armed()),
            node.hot.busy_poll.episodes(),
            node.hot.busy_poll.crowded(),
        );
        section("Stats", s);
    }
    if want("replication") {
        section("Replication", crate::replication::info(node));
    }
    if want("cpu") {
        let (sys, user) = cpu_times();
        let s = format!(
            "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
        );
        section("CPU", s);
    }
    if want("modules") && !default {
        section("Modules", String::new());
    }
    if want("cluster") {
        section("Cluster", {
            let mut s = format!("cluster_enabled:{}\r\n", i32::from(cfg.cluster_enabled));
            if let Some(c) = node.cluster.get() {
                s.push_str(&c.with(crate::cluster::machine::Machine::failover_info));
            }
            s
        });
    }
    if want("keyspace") {
        let mut s = String::new();
        for (i, (keys, expires)) in sizes
            .clone()
            .unwrap_or_else(|| node.keyspace.db_sizes())
            .into_iter()
            .enumerate()
        {
            if keys > 0 {
                let _ = write!(s, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
            }
        }
        section("Keyspace", s);
    }
    out
}

fn info(ctx: &mut Ctx) -> CmdResult {
    let sections: Vec<String> = ctx.args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    // Inside EXEC the view holds every shard lock already.
    let sizes = ctx.view.as_ref().map(|v| v.db_sizes());
    let text = info_text(ctx.node, &sections, sizes);
    ctx.out.verbatim(&text);
    Ok(())
}

fn config(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    let args = ctx.args;
    match &sub[..] {
        b"get" => {
            let cfg = ctx.node.config.read();
            let mut seen = std::collections::BTreeMap::new();
            for p in &args[2..] {
                for (k, v) in cfg.get(p) {
                    seen.entry(k).or_insert(v);
                }
            }
            drop(cfg);
            ctx.out.map(seen.len());
            for (k, v) in seen {
                ctx.out.bulk_str(&k);
                ctx.out.bulk_str(&v);
            }
        }
        b"set" => {
            if args.len() < 4 || args.len() % 2 != 0 {
                return err("ERR wrong number of arguments for 'config|set' command");
            }
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = args[2..]
                .chunks(2)
                .map(|p| (p[0].to_vec(), p[1].to_vec()))
                .collect();
            let mut cfg = ctx.node.config.write();
            cfg.set(&pairs).map_err(CmdError)?;
            ctx.node.hot.load(&cfg);
            let cfg = parking_lot::RwLockWriteGuard::downgrade(cfg);
            if let Some(c) = ctx.node.cluster.get() {
                c.reconfigure(&cfg);
            }
            drop(cfg);
            ctx.out.ok();
        }
        b"resetstat" => {
            ctx.node.stats.reset();
            ctx.node.slowlog.lock().clear();
            ctx.out.ok();
        }
        b"rewrite" => {
            let Some(path) = ctx.node.config_path.clone() else {
                return err("ERR The server is running without a config file");
            };
            let res = ctx.node.config.read().rewrite(&path);
            match res {
                Ok(()) => ctx.out.ok(),
                Err(e) => {
                    tracing::warn!("CONFIG REWRITE failed: {e}");
                    return Err(CmdError(format!("ERR Rewriting config file: {e}")));
                }
            }
        }
        b"help" => {
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
                "HELP",
                "    Prints this help.",
            ];
            super::reply_lines(&mut ctx.out, &lines);
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

fn command(ctx: &mut Ctx) -> CmdResult {
    crate::cmdspec::reply_command(&mut ctx.out, ctx.args).map_err(CmdError)
}

fn time(ctx: &mut Ctx) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(i64::from(now.subsec_micros()));
    Ok(())
}

fn lastsave(ctx: &mut Ctx) -> CmdResult {
    ctx.out.int(ctx.node.lastsave.load(Ordering::Relaxed));
    Ok(())
}

fn shutdown(ctx: &mut Ctx) -> CmdResult {
    let mut flags = crate::config::ShutdownFlags::default();
    let mut abort = false;
    for a in &ctx.args[1..] {
        if eq_ic(a, "abort") {
            abort = true;
        } else if eq_ic(a, "nosave") {
            flags.nosave = true;
        } else if eq_ic(a, "save") {
            flags.save = true;
        } else if eq_ic(a, "now") {
            flags.now = true;
        } else if eq_ic(a, "force") {
            flags.force = true;
        } else if eq_ic(a, "failover") {
            // Shardline's extension: hand mastership over first.
            flags.failover = true;
        } else {
            return err(SYNTAX);
        }
    }
    if (flags.save && flags.nosave) || (abort && ctx.args.len() > 2) {
        return err(SYNTAX);
    }
    if abort {
        if !ctx.node.shutdown_ctl.abort() {
            return err("ERR No shutdown in progress.");
        }
        tracing::warn!("Shutdown abort requested by a client.");
        ctx.out.ok();
        return Ok(());
    }
    tracing::warn!("User requested shutdown...");
    ctx.flow = Flow::Shutdown(flags);
    Ok(())
}

fn debug(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    let args = ctx.args;
    match &sub[..] {
        b"sleep" => {
            let secs = args
                .get(2)
                .and_then(|a| crate::cmd::parse_f64(a))
                .ok_or_else(|| CmdError::new("ERR value is not a valid float"))?;
            // Holds every shard, so the whole keyspace stalls as in redis.
            let _view = ctx.view()?;
            std::thread::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
            ctx.out.ok();
        }
        b"set-active-expire" => {
            let on = args
                .get(2)
                .and_then(|a| parse_i64(a))
                .ok_or_else(|| CmdError::new(SYNTAX))?;
            ctx.node
                .hot
                .active_expire
                .store(on != 0, std::sync::atomic::Ordering::Relaxed);
            ctx.out.ok();
        }
        b"object" => {
            let key = args.get(2).ok_or_else(|| CmdError::new(SYNTAX))?.clone();
            let view = ctx.view()?;
            let Some(meta) = view.meta(&key) else {
                return err("ERR no such key");
            };
            let (enc, len) = match view.peek(&key) {
                Some(crate::engine::ValueRef::Str(s)) => {
                    (super::keys::string_encoding(s, meta.raw_encoding), s.len())
                }
                Some(crate::engine::ValueRef::Obj(o)) => (o.encoding(), o.len()),
                None => return err("ERR no such key"),
            };
            let line = format!(
                "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{len} lru:{} lru_seconds_idle:0",
                meta.lru
            );
            ctx.out.simple(&line);
        }
        b"digest-value" => {
            let view = ctx.view()?;
            let digests: Vec<String> = args[2..]
                .iter()
                .map(|k| {
                    let ttl = view.expire_at(k).is_some();
                    let d = view
                        .peek(k)
                        .map_or([0u8; 20], |v| crate::digest::value_digest(v, ttl));
                    crate::digest::hex(&d)
                })
                .collect();
            ctx.out.array(digests.len());
            for d in digests {
                ctx.out.simple(&d);
            }
        }
        b"help" => {
            ctx.out.array(4);
            ctx.out
                .simple("DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
            ctx.out.simple("SLEEP <seconds>");
            ctx.out.simple("OBJECT <key>");
            ctx.out.simple("DIGEST-VALUE <key> [<key> ...]");
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

fn slowlog(ctx: &mut Ctx) -> CmdResult {
    let sub = ctx.args[1].to_ascii_lowercase();
    let args = ctx.args;
    match &sub[..] {
        b"get" if args.len() <= 3 => {
            let count = match args.get(2) {
                Some(a) => {
                    let n = int_arg(a)?;
                    if n < -1 {
                        return err("ERR count should be greater than or equal to -1");
                    }
                    if n == -1 {
                        usize::MAX
                    } else {
                        n as usize
                    }
                }
                None => 10,
            };
            let entries: Vec<_> = ctx
                .node
                .slowlog
                .lock()
                .iter()
                .take(count)
                .cloned()
                .collect();
            ctx.out.array(entries.len());
            for e in entries {
                ctx.out.array(6);
                ctx.out.int(e.id as i64);
                ctx.out.int(e.time);
                ctx.out.int(e.micros as i64);
                ctx.out.array(e.args.len());
                for a in &e.args {
                    ctx.out.bulk(a);
                }
                ctx.out.bulk_str(&e.addr);
                ctx.out.bulk_str(&e.name);
            }
        }
        b"len" if args.len() == 2 => ctx.out.int(ctx.node.slowlog.lock().len() as i64),
        b"reset" if args.len() == 2 => {
            ctx.node.slowlog.lock().clear();
            ctx.out.ok();
        }
        b"help" => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Prints this help.",
            ];
            super::reply_lines(&mut ctx.out, &lines);
        }
        _ => {
            return Err(CmdError(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

fn monitor(ctx: &mut Ctx) -> CmdResult {
    if ctx.client.multi.is_some() {
        return err("ERR MONITOR not allowed in transactions");
    }
    if !ctx.client.handle.has_flag(cflag::MONITOR) {
        ctx.client.handle.set_flag(cflag::MONITOR, true);
        ctx.node.monitors.fetch_add(1, Ordering::Relaxed);
    }
    ctx.out.ok();
    Ok(())
}
