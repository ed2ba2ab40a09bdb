//! Temporary configuration (replaced by the full implementation).
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub protected_mode: bool,
    pub requirepass: String,
    pub dir: String,
    pub pidfile: String,
    pub logfile: String,
    pub loglevel: String,
    pub databases: usize,
    pub maxclients: usize,
    pub timeout: u64,
    pub tcp_keepalive: u64,
    pub tcp_backlog: u32,
    pub hz: u32,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    pub shards: usize,
    pub active_expire_effort: u32,
    pub cluster_enabled: bool,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub appendonly: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["*".into(), "-::*".into()],
            protected_mode: true,
            requirepass: String::new(),
            dir: ".".into(),
            pidfile: String::new(),
            logfile: String::new(),
            loglevel: "notice".into(),
            databases: 16,
            maxclients: 10000,
            timeout: 0,
            tcp_keepalive: 300,
            tcp_backlog: 511,
            hz: 10,
            proto_max_bulk_len: 512 << 20,
            client_query_buffer_limit: 1 << 30,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            shards: 0,
            active_expire_effort: 1,
            cluster_enabled: false,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            appendonly: false,
        }
    }
}

pub struct LoadedConfig {
    pub config: Config,
    pub path: Option<PathBuf>,
}
pub enum CliAction {
    Run(LoadedConfig),
    Help,
    Version,
}

pub fn parse_cli(args: &[String]) -> Result<CliAction, ConfigError> {
    let mut c = Config::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches("--").to_ascii_lowercase();
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match a.as_str() {
            "port" => c.port = v.parse().map_err(|_| ConfigError("bad port".into()))?,
            "requirepass" => c.requirepass = v,
            "bind" => c.bind = v.split(' ').map(String::from).collect(),
            "shards" => c.shards = v.parse().map_err(|_| ConfigError("bad shards".into()))?,
            "maxclients" => c.maxclients = v.parse().map_err(|_| ConfigError("bad".into()))?,
            "timeout" => c.timeout = v.parse().map_err(|_| ConfigError("bad".into()))?,
            _ => {}
        }
        i += 2;
    }
    Ok(CliAction::Run(LoadedConfig {
        config: c,
        path: None,
    }))
}
pub fn help_text() -> String {
    "Usage: shardline-node [/path/to/redis.conf] [--directive value ...]".into()
}
pub fn version_text() -> String {
    format!("shardline-node v={}", env!("CARGO_PKG_VERSION"))
}

impl Config {
    pub fn get(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let all = [
            ("port", self.port.to_string()),
            ("databases", self.databases.to_string()),
            ("maxclients", self.maxclients.to_string()),
            ("timeout", self.timeout.to_string()),
            ("hz", self.hz.to_string()),
        ];
        all.into_iter()
            .filter(|(n, _)| crate::glob::glob_match(pattern, n.as_bytes(), true))
            .map(|(n, v)| (n.to_string(), v))
            .collect()
    }
    pub fn set(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        let _ = pairs;
        Err("ERR not yet".into())
    }
    pub fn rewrite(&self, _path: &std::path::Path) -> std::io::Result<()> {
        Ok(())
    }
    pub fn effective_shards(&self) -> usize {
        if self.shards == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.shards
        }
    }
}
