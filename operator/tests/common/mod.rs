//! Helpers shared by the integration tests: member binaries, free ports,
//! and clean-up of member processes.
#![allow(dead_code)]

pub mod servers;

/// The node's test harness (servers, RESP client, cluster helpers).
#[path = "../../../node/tests/common/mod.rs"]
pub mod nodekit;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The workspace root (the operator crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else the one this
/// test binary was built in (`<target>/debug/deps/<test>`), else
/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return std::path::absolute(PathBuf::from(dir)).unwrap_or_default();
    }
    if let Ok(exe) = std::env::current_exe() {
        // <target>/debug/deps/<test binary>
        if let Some(target) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            if target.join("debug").is_dir() {
                return target.to_path_buf();
            }
        }
    }
    workspace_root().join("target")
}

static BUILD: Mutex<()> = Mutex::new(());

/// `<target>/debug/shardline-node`, built with `cargo build -p
/// shardline-node` if absent.
pub fn shardline_node_binary() -> PathBuf {
    let target = target_dir();
    let path = target.join("debug").join("shardline-node");
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !path.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "shardline-node"])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo build -p shardline-node");
        assert!(status.success(), "cargo build -p shardline-node failed");
    }
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// redis-server 7, when installed.
pub fn redis_server_binary() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/redis-server");
    path.is_file().then_some(path)
}

/// A port free on `ip` whose cluster bus port (port + 10000) is free too.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind((ip, 0)).expect("bind port 0");
        let port = listener.local_addr().expect("local addr").port();
        if port > 55535 {
            continue;
        }
        if TcpListener::bind((ip, port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair on {ip}");
}

/// PIDs of the live (non-zombie) processes whose working directory is `dir`.
pub fn processes_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == dir)
            && process_alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// The process exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// SIGKILLs a process (through kill(1)).
pub fn kill9(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// A temporary root of member directories; on drop, SIGKILLs every process
/// running in one of them (so a failed test leaves nothing behind), then
/// removes the directory.
pub struct MemberRoot {
    dir: tempfile::TempDir,
}

impl MemberRoot {
    pub fn new() -> MemberRoot {
        MemberRoot {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The root, canonical (as the processes' working directories show it).
    pub fn path(&self) -> PathBuf {
        self.dir
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.dir.path().to_path_buf())
    }

    pub fn kill_all(&self) {
        let Ok(entries) = std::fs::read_dir(self.path()) else {
            return;
        };
        for entry in entries.flatten() {
            for pid in processes_in(&entry.path()) {
                kill9(pid);
            }
        }
    }
}

impl Default for MemberRoot {
    fn default() -> Self {
        MemberRoot::new()
    }
}

impl Drop for MemberRoot {
    fn drop(&mut self) {
        self.kill_all();
    }
}
