//! Real servers for the admin tests: shardline-node and redis-server
//! processes on their own loopback IPs, temp dirs and free ports, killed
//! when dropped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which server binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shardline,
    Redis,
}

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A running server; killed on drop.
pub struct Server {
    pub kind: Kind,
    pub ip: String,
    pub port: u16,
    /// `ip:port`.
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a cluster-enabled server of `kind` on `ip` (a free port).
    pub fn start(kind: Kind, ip: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port(ip);
        let port_text = port.to_string();
        let dir_text = dir.path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            "--bind",
            ip,
            "--port",
            &port_text,
            "--dir",
            &dir_text,
            "--protected-mode",
            "no",
        ];
        let program = match kind {
            Kind::Shardline => shardline_node(),
            Kind::Redis => {
                // redis-server connects out from the default address
                // (127.0.0.1) unless told, and the others would then see
                // it there.
                args.extend(["--bind-source-addr", ip, "--save", ""]);
                PathBuf::from(REDIS_SERVER)
            }
        };
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the server");
        let mut server = Server {
            kind,
            ip: ip.to_owned(),
            port,
            addr: format!("{ip}:{port}"),
            child,
            dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} at {} exited ({status}): {}",
                    self.kind,
                    self.addr,
                    self.log()
                );
            }
            if raw_ping(&self.addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} at {} not ready: {}",
                self.kind,
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// PING over a plain socket.
fn raw_ping(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A port free on `ip`, with its cluster bus port (+10000) free too.
fn free_port(ip: &str) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    for i in 0..2000u64 {
        let port = 20000 + ((seed.wrapping_mul(7919) + i * 13) % 10000) as u16;
        if TcpListener::bind((ip, port)).is_ok() && TcpListener::bind((ip, port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// The shardline-node binary, built first if absent.
pub fn shardline_node() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("..").join("target"));
        let path = target.join("debug").join("shardline-node");
        if !path.exists() {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "shardline-node"])
                .current_dir(manifest.join(".."))
                .status()
                .expect("run cargo build -p shardline-node");
            assert!(status.success(), "cargo build -p shardline-node failed");
        }
        path
    })
    .clone()
}

/// Starts one server per kind on `127.0.<net>.1`, `.2`, ...
pub fn start_servers(net: u8, kinds: &[Kind]) -> Vec<Server> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| Server::start(k, &format!("127.0.{net}.{}", i + 1)))
        .collect()
}

#[allow(unused_imports)]
pub use super::nodekit::cluster::key_slot;
