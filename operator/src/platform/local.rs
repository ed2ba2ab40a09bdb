//! The local platform: members are processes on this machine, each in its
//! own directory under a root and listening on its own loopback address
//! (`127.0.0.1`, `127.0.0.2`, ...), all on the same port.
//!
//! A member directory `<root>/shard-<s>-<i>` holds:
//!
//! - `redis.conf`: written by the platform before every start; the member
//!   is started as `<binary> <dir>/redis.conf`, with `<dir>` as its working
//!   directory;
//! - `member.addr`: its `ip:port`, allocated once, at creation;
//! - `member.rev`: the revision (binary and config) it was last started with;
//! - `member.pid`: its process ID (written by the platform, and by the
//!   member itself through the `pidfile` directive);
//! - `member.log` (the member's `logfile`) and `console.log` (its standard
//!   output and error, where start-up errors go);
//! - its data: `nodes.conf`, the AOF directory, RDB files.
//!
//! Members run in their own process group, so a Ctrl-C on the operator's
//! terminal does not reach them; they outlive the operator unless it calls
//! [`LocalPlatform::stop_all`]. A new [`LocalPlatform`] over the same root
//! adopts the members still running.
//!
//! Both `shardline-node` and `redis-server` (7.0) run as members: the
//! config file only uses directives both accept.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, UNIX_EPOCH};

use sha1::{Digest, Sha1};
use tokio::process::{Child, Command};

use super::{Platform, PlatformError};
use crate::crd::RedisClusterSpec;
use crate::model::{MemberName, PlatformMember};

const CONFIG_FILE: &str = "redis.conf";
const ADDR_FILE: &str = "member.addr";
const REVISION_FILE: &str = "member.rev";
const PID_FILE: &str = "member.pid";
const LOG_FILE: &str = "member.log";
const CONSOLE_FILE: &str = "console.log";

/// How long a graceful stop (SIGTERM) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for a process to go after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a started member has to accept TCP connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
/// Lines of the member's logs quoted in a start error.
const LOG_TAIL_LINES: usize = 20;

/// Directives the platform writes itself; `spec.config` may not set them.
const RESERVED: &[&str] = &[
    "port",
    "bind",
    "dir",
    "logfile",
    "pidfile",
    "cluster-enabled",
    "cluster-config-file",
    "cluster-node-timeout",
    "cluster-port",
    "protected-mode",
    "requirepass",
    "masterauth",
    "daemonize",
    "include",
];

/// Where and how the local platform runs members.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Data directory: one subdirectory per member, named like the member.
    pub root: PathBuf,
    /// Every member listens on this port, on its own IP.
    pub port: u16,
    /// Members get `first_ip`, `first_ip + 1`, ... (lowest free first).
    pub first_ip: Ipv4Addr,
    /// The member binary when `spec.image` names no local program.
    pub node_binary: PathBuf,
    /// `requirepass` and `masterauth` of every member.
    pub password: Option<String>,
}

/// Members as local processes. See the [module documentation](self).
pub struct LocalPlatform {
    opts: LocalOptions,
    /// Members known to run: started by this platform or adopted.
    procs: HashMap<MemberName, Proc>,
}

/// A running member process.
struct Proc {
    pid: u32,
    /// `None` for a process adopted from an earlier operator: it is not our
    /// child, so it is watched through `/proc`.
    child: Option<Child>,
}

fn member_err(member: MemberName, message: impl Into<String>) -> PlatformError {
    PlatformError::Member {
        member,
        message: message.into(),
    }
}

impl LocalPlatform {
    /// A platform over `opts.root` (created if missing). Members still
    /// running there, from an earlier operator, are adopted.
    pub fn new(opts: LocalOptions) -> Result<LocalPlatform, PlatformError> {
        std::fs::create_dir_all(&opts.root)
            .map_err(|e| PlatformError::Other(format!("create {}: {e}", opts.root.display())))?;
        let root = opts
            .root
            .canonicalize()
            .map_err(|e| PlatformError::Other(format!("resolve {}: {e}", opts.root.display())))?;
        let mut platform = LocalPlatform {
            opts: LocalOptions { root, ..opts },
            procs: HashMap::new(),
        };
        for m in platform.member_names()? {
            if let Some(pid) = platform.running_pid(m) {
                tracing::info!(member = %m, pid, "adopted a running member");
            }
        }
        Ok(platform)
    }

    /// The directory of member `m`.
    pub fn member_dir(&self, m: MemberName) -> PathBuf {
        self.opts.root.join(m.to_string())
    }

    /// The log file of member `m` (its `logfile`).
    pub fn log_path(&self, m: MemberName) -> PathBuf {
        self.member_dir(m).join(LOG_FILE)
    }

    /// Stops every running member gracefully, all at once (SIGTERM, then
    /// SIGKILL for those still running after 15 s).
    pub async fn stop_all(&mut self) {
        match self.member_names() {
            Ok(names) => {
                for m in names {
                    let _ = self.running_pid(m);
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing members to stop"),
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (m, proc) in self.procs.drain() {
            let dir = self.opts.root.join(m.to_string());
            tasks.spawn(async move { (m, stop_process(proc, &dir).await) });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((m, Ok(()))) => tracing::info!(member = %m, "stopped"),
                Ok((m, Err(e))) => tracing::warn!(member = %m, error = %e, "stopping"),
                Err(e) => tracing::warn!(error = %e, "stop task failed"),
            }
        }
    }

    /// Names of the member directories under the root, sorted.
    fn member_names(&self) -> Result<Vec<MemberName>, PlatformError> {
        let mut names = BTreeSet::new();
        let entries = std::fs::read_dir(&self.opts.root)
            .map_err(|e| PlatformError::Other(format!("list {}: {e}", self.opts.root.display())))?;
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(m) = entry.file_name().to_str().and_then(MemberName::parse) {
                // Only the canonical spelling: `shard-01-0` is not a member.
                if entry.file_name().to_str() == Some(m.to_string().as_str()) {
                    names.insert(m);
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The PID of member `m` if it runs; reaps or forgets it otherwise,
    /// and adopts it from its pid file if it runs unknown to us.
    fn running_pid(&mut self, m: MemberName) -> Option<u32> {
        let dir = self.member_dir(m);
        if let Some(proc) = self.procs.get_mut(&m) {
            let alive = match proc.child.as_mut() {
                Some(child) => match child.try_wait() {
                    Ok(None) => true,
                    Ok(Some(status)) => {
                        tracing::warn!(member = %m, pid = proc.pid, %status, "member exited");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(member = %m, pid = proc.pid, error = %e, "checking member");
                        false
                    }
                },
                None => process_matches(proc.pid, &dir),
            };
            if alive {
                return Some(proc.pid);
            }
            self.procs.remove(&m);
            return None;
        }
        let pid = read_pid(&dir)?;
        if process_matches(pid, &dir) {
            self.procs.insert(m, Proc { pid, child: None });
            Some(pid)
        } else {
            None
        }
    }

    /// The member binary `spec` asks for, as an absolute path (symlinks
    /// kept: redis-server looks at the name it is run by).
    fn resolve_binary(&self, spec: &RedisClusterSpec) -> Result<PathBuf, PlatformError> {
        let image = spec.image.trim();
        if !image.is_empty() {
            let direct = Path::new(image);
            if is_executable(direct) {
                return Ok(std::path::absolute(direct)?);
            }
            if !image.contains('/') {
                if let Some(path) = std::env::var_os("PATH") {
                    for dir in std::env::split_paths(&path) {
                        let candidate = dir.join(image);
                        if is_executable(&candidate) {
                            return Ok(std::path::absolute(candidate)?);
                        }
                    }
                }
            }
        }
        let binary = &self.opts.node_binary;
        if !is_executable(binary) {
            return Err(PlatformError::Other(format!(
                "member binary {} is not an executable file (spec.image {:?} names no local program)",
                binary.display(),
                spec.image
            )));
        }
        Ok(std::path::absolute(binary)?)
    }

    /// The directives every member shares, as config file lines.
    fn shared_config(&self, spec: &RedisClusterSpec) -> Result<String, PlatformError> {
        let mut out = String::new();
        let mut line = |args: &[&str]| {
            let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
            out.push_str(&quoted.join(" "));
            out.push('\n');
        };
        line(&["cluster-enabled", "yes"]);
        line(&["cluster-config-file", "nodes.conf"]);
        line(&["cluster-node-timeout", &spec.node_timeout_ms.to_string()]);
        line(&["protected-mode", "no"]);
        line(&["appendonly", "yes"]);
        if let Some(password) = &self.opts.password {
            line(&["requirepass", password]);
            line(&["masterauth", password]);
        }
        for (directive, value) in &spec.config {
            let name = directive.to_ascii_lowercase();
            if RESERVED.contains(&name.as_str()) {
                return Err(PlatformError::Other(format!(
                    "config directive `{directive}` is set by the local platform and may not be overridden"
                )));
            }
            if directive.is_empty() || !directive.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(PlatformError::Other(format!(
                    "bad config directive name {directive:?}"
                )));
            }
            // A multi-argument value (`save 900 1 300 10`) as several
            // arguments: shardline-node refuses it as one quoted argument.
            // An empty value (`save ""`) as one empty argument.
            let mut args = vec![directive.as_str()];
            args.extend(value.split_ascii_whitespace());
            if args.len() == 1 {
                args.push("");
            }
            line(&args);
        }
        Ok(out)
    }

    /// The revision of what a member of `spec` should run: the binary (path,
    /// size, mtime) and the shared part of its config.
    fn revision(&self, spec: &RedisClusterSpec) -> Result<String, PlatformError> {
        let binary = self.resolve_binary(spec)?;
        let meta = std::fs::metadata(&binary)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut h = Sha1::new();
        h.update(binary.as_os_str().as_encoded_bytes());
        h.update(format!("\0{}\0{mtime}\0", meta.len()).as_bytes());
        h.update(self.shared_config(spec)?.as_bytes());
        let mut hex = String::with_capacity(40);
        for b in h.finalize() {
            let _ = write!(hex, "{b:02x}");
        }
        Ok(hex)
    }

    /// The address of member `m`, from its directory.
    fn read_addr(&self, m: MemberName) -> Option<SocketAddr> {
        let text = std::fs::read_to_string(self.member_dir(m).join(ADDR_FILE)).ok()?;
        text.trim().parse().ok()
    }

    /// The lowest free address, from `first_ip` upward.
    fn allocate_addr(&self, m: MemberName) -> Result<SocketAddr, PlatformError> {
        let used: BTreeSet<_> = self
            .member_names()?
            .into_iter()
            .filter(|&other| other != m)
            .filter_map(|other| self.read_addr(other))
            .map(|a| a.ip())
            .collect();
        let first = u32::from(self.opts.first_ip);
        (first..=u32::MAX)
            .map(|n| std::net::IpAddr::V4(Ipv4Addr::from(n)))
            .find(|ip| !used.contains(ip))
            .map(|ip| SocketAddr::new(ip, self.opts.port))
            .ok_or_else(|| member_err(m, "no free address left"))
    }

    /// Writes the config of `m` from `spec` and starts it; waits until it
    /// accepts connections.
    async fn spawn(&mut self, m: MemberName, spec: &RedisClusterSpec) -> Result<(), PlatformError> {
        let dir = self.member_dir(m);
        let addr = self.read_addr(m).ok_or_else(|| {
            member_err(
                m,
                format!("no address in {}", dir.join(ADDR_FILE).display()),
            )
        })?;
        let binary = self.resolve_binary(spec)?;
        let revision = self.revision(spec)?;
        let shared = self.shared_config(spec)?;

        let config_path = dir.join(CONFIG_FILE);
        let mut config =
            String::from("# Written by shardline-operator (local platform) before every start.\n");
        for (directive, value) in [
            ("port", addr.port().to_string()),
            ("bind", addr.ip().to_string()),
            ("dir", path_text(&dir)?),
            ("logfile", path_text(&dir.join(LOG_FILE))?),
            ("pidfile", path_text(&dir.join(PID_FILE))?),
        ] {
            let _ = writeln!(config, "{directive} {}", quote(&value));
        }
        // redis-server dials its peers from its default source address
        // (127.0.0.1 on loopback), so they would learn it at the wrong
        // address; shardline-node binds its outgoing bus links itself.
        let is_redis = binary
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("redis-server") || n.contains("valkey-server"));
        if is_redis {
            let _ = writeln!(config, "bind-source-addr {}", addr.ip());
        }
        config.push_str(&shared);
        write_file(&config_path, config.as_bytes())?;
        write_file(&dir.join(REVISION_FILE), format!("{revision}\n").as_bytes())?;
        let _ = std::fs::remove_file(dir.join(PID_FILE));

        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(CONSOLE_FILE))?;
        let mut child = Command::new(&binary)
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            .process_group(0)
            .spawn()
            .map_err(|e| member_err(m, format!("start {}: {e}", binary.display())))?;
        let Some(pid) = child.id() else {
            return Err(member_err(m, "the member exited at once"));
        };
        tracing::info!(member = %m, pid, %addr, binary = %binary.display(), "started");
        write_file(&dir.join(PID_FILE), format!("{pid}\n").as_bytes())?;

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(member_err(
                    m,
                    format!("exited at start-up ({status}):\n{}", log_tail(&dir)),
                ));
            }
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                break;
            }
            if Instant::now() >= deadline {
                let proc = Proc {
                    pid,
                    child: Some(child),
                };
                let _ = kill_process(proc, &dir).await;
                return Err(member_err(
                    m,
                    format!(
                        "did not accept connections on {addr} within {READY_TIMEOUT:?}; killed it:\n{}",
                        log_tail(&dir)
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        self.procs.insert(
            m,
            Proc {
                pid,
                child: Some(child),
            },
        );
        Ok(())
    }

    /// Stops member `m` if it runs: SIGTERM, SIGKILL after 15 s.
    async fn stop(&mut self, m: MemberName) -> Result<(), PlatformError> {
        if self.running_pid(m).is_none() {
            return Ok(());
        }
        let dir = self.member_dir(m);
        match self.procs.remove(&m) {
            Some(proc) => stop_process(proc, &dir).await,
            None => Ok(()),
        }
    }
}

impl Platform for LocalPlatform {
    async fn members(
        &mut self,
        spec: &RedisClusterSpec,
    ) -> Result<Vec<PlatformMember>, PlatformError> {
        let current = match self.revision(spec) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute the members' revision");
                None
            }
        };
        let mut out = Vec::new();
        for name in self.member_names()? {
            let dir = self.member_dir(name);
            let stored = std::fs::read_to_string(dir.join(REVISION_FILE))
                .ok()
                .map(|s| s.trim().to_owned());
            out.push(PlatformMember {
                name,
                addr: self
                    .read_addr(name)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                running: self.running_pid(name).is_some(),
                up_to_date: current.is_some() && stored == current,
                host: Some("localhost".to_owned()),
                zone: None,
            });
        }
        Ok(out)
    }

    async fn create(
        &mut self,
        m: MemberName,
        spec: &RedisClusterSpec,
    ) -> Result<(), PlatformError> {
        let dir = self.member_dir(m);
        // Check the spec before leaving a directory behind.
        self.resolve_binary(spec)?;
        self.shared_config(spec)?;
        let addr = self.allocate_addr(m)?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => member_err(m, "already exists"),
            _ => member_err(m, format!("create {}: {e}", dir.display())),
        })?;
        write_file(&dir.join(ADDR_FILE), format!("{addr}\n").as_bytes())?;
        tracing::info!(member = %m, %addr, "created");
        self.spawn(m, spec).await
    }

    async fn start(&mut self, m: MemberName, spec: &RedisClusterSpec) -> Result<(), PlatformError> {
        if !self.member_dir(m).is_dir() {
            return Err(member_err(m, "does not exist"));
        }
        if let Some(pid) = self.running_pid(m) {
            tracing::debug!(member = %m, pid, "start: already running");
            return Ok(());
        }
        if self.read_addr(m).is_none() {
            // Created by an operator that died before writing the address.
            let addr = self.allocate_addr(m)?;
            write_file(
                &self.member_dir(m).join(ADDR_FILE),
                format!("{addr}\n").as_bytes(),
            )?;
            tracing::info!(member = %m, %addr, "allocated a missing address");
        }
        self.spawn(m, spec).await
    }

    async fn replace(
        &mut self,
        m: MemberName,
        spec: &RedisClusterSpec,
    ) -> Result<(), PlatformError> {
        if !self.member_dir(m).is_dir() {
            return Err(member_err(m, "does not exist"));
        }
        // Check the new spec before stopping the member.
        self.resolve_binary(spec)?;
        self.shared_config(spec)?;
        self.stop(m).await?;
        self.spawn(m, spec).await
    }

    async fn delete(&mut self, m: MemberName) -> Result<(), PlatformError> {
        let dir = self.member_dir(m);
        if !dir.is_dir() {
            return Err(member_err(m, "does not exist"));
        }
        self.stop(m).await?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| member_err(m, format!("remove {}: {e}", dir.display())))?;
        tracing::info!(member = %m, "deleted");
        Ok(())
    }
}

/// SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL.
async fn stop_process(mut proc: Proc, dir: &Path) -> Result<(), PlatformError> {
    signal(proc.pid, libc::SIGTERM)?;
    if wait_exit(&mut proc, dir, STOP_TIMEOUT).await {
        return Ok(());
    }
    tracing::warn!(pid = proc.pid, dir = %dir.display(), "no exit after SIGTERM; SIGKILL");
    kill_process(proc, dir).await
}

/// SIGKILL, and wait for the process to go.
async fn kill_process(mut proc: Proc, dir: &Path) -> Result<(), PlatformError> {
    signal(proc.pid, libc::SIGKILL)?;
    if wait_exit(&mut proc, dir, KILL_TIMEOUT).await {
        Ok(())
    } else {
        Err(PlatformError::Other(format!(
            "process {} of {} survived SIGKILL",
            proc.pid,
            dir.display()
        )))
    }
}

/// Waits up to `timeout` for the process to exit (reaping our children).
async fn wait_exit(proc: &mut Proc, dir: &Path, timeout: Duration) -> bool {
    match proc.child.as_mut() {
        Some(child) => tokio::time::timeout(timeout, child.wait()).await.is_ok(),
        None => {
            let deadline = Instant::now() + timeout;
            while process_matches(proc.pid, dir) {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(POLL).await;
            }
            true
        }
    }
}

/// Sends `sig` to process `pid`; a process already gone is not an error.
fn signal(pid: u32, sig: libc::c_int) -> Result<(), PlatformError> {
    let target = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| PlatformError::Other(format!("refusing to signal PID {pid}")))?;
    // SAFETY: kill(2) takes two integers and reads or writes no memory of
    // this process, so the call cannot break any Rust invariant whatever
    // its arguments. `target` is greater than 1, so it names one process:
    // never our process group (0), every process (-1), a group (< -1) or
    // init (1).
    let rc = unsafe { libc::kill(target, sig) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(PlatformError::Other(format!(
            "signal {sig} to PID {pid}: {e}"
        )))
    }
}

/// Process `pid` is alive (not a zombie) and is the member of `dir`: its
/// working directory is `dir` or its command line names `dir`'s config.
/// (redis-server rewrites its command line to `redis-server ip:port
/// [cluster]`, hence the working directory, which both servers set to
/// their `dir`.)
fn process_matches(pid: u32, dir: &Path) -> bool {
    if pid <= 1 {
        return false;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X") | Some("x")) {
        return false;
    }
    if std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd == dir) {
        return true;
    }
    let config = dir.join(CONFIG_FILE);
    std::fs::read(proc_dir.join("cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == config.as_os_str().as_encoded_bytes())
    })
}

fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn path_text(path: &Path) -> Result<String, PlatformError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| PlatformError::Other(format!("path {} is not UTF-8", path.display())))
}

/// Writes `data` to `path` through a temporary file and a rename, so a
/// reader never sees half a file.
fn write_file(path: &Path, data: &[u8]) -> Result<(), PlatformError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A config file argument: as is when plain, else double-quoted with the
/// escapes both servers' parsers (redis `sdssplitargs`) understand.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
    if plain {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    for c in arg.bytes() {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(char::from(c)),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// The last lines of a member's console output and log file.
fn log_tail(dir: &Path) -> String {
    let mut out = String::new();
    for name in [CONSOLE_FILE, LOG_FILE] {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "--- {name}:");
        for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
            let _ = writeln!(out, "{line}");
        }
    }
    if out.is_empty() {
        out.push_str("(no output)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_config_arguments() {
        assert_eq!(quote("yes"), "yes");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("900 1 300 10"), "\"900 1 300 10\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("é\n"), "\"\\xc3\\xa9\\n\"");
    }
}
