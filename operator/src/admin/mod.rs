//! The admin library: observes and changes a cluster through standard Redis
//! commands only (CLUSTER NODES/INFO/MEET/ADDSLOTSRANGE/REPLICATE/FORGET/
//! SETSLOT/FAILOVER, INFO replication, MIGRATE), so it drives redis-server
//! 7.0 as well as shardline-node. Where a member answers
//! `COMMAND INFO MIGRATESLOTS` (shardline-node), slots move with the bulk
//! `MIGRATESLOTS` instead of a MIGRATE per batch of keys.
//!
//! [`Admin`] keeps one connection per address, dropped when a command on it
//! fails for any reason but an error reply; every command has a timeout.

mod execute;
mod migrate;
mod observe;
mod parse;

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, FromRedisValue};

pub use parse::{parse_cluster_info, parse_cluster_nodes, parse_info_replication, ClusterInfo};

/// What went wrong talking to a member.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// The address is not `ip:port`.
    #[error("bad address `{0}`")]
    BadAddress(String),
    /// Could not connect (or authenticate).
    #[error("{addr}: cannot connect: {message}")]
    Connect { addr: String, message: String },
    /// A command did not answer in time.
    #[error("{addr}: `{command}` timed out after {timeout:?}")]
    Timeout {
        addr: String,
        command: String,
        timeout: Duration,
    },
    /// A command failed: an error reply (`message` is its text) or a broken
    /// connection.
    #[error("{addr}: `{command}` failed: {message}")]
    Command {
        addr: String,
        command: String,
        message: String,
    },
    /// A reply that does not parse.
    #[error("cannot parse {what}: {message}")]
    Parse { what: &'static str, message: String },
    /// The action was sent but its effect was not seen (in time).
    #[error("{addr}: {message}")]
    NotConfirmed { addr: String, message: String },
    /// The action cannot be done as asked.
    #[error("{addr}: {message}")]
    Refused { addr: String, message: String },
}

impl AdminError {
    /// The error reply text, for a command that got one.
    pub fn reply(&self) -> Option<&str> {
        match self {
            AdminError::Command { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// Talks to cluster members.
pub struct Admin {
    password: Option<String>,
    timeout: Duration,
    conns: HashMap<String, MultiplexedConnection>,
}

impl Admin {
    /// `password` is sent with AUTH to every member (and passed on to
    /// MIGRATE / MIGRATESLOTS); `timeout` bounds connecting and every
    /// command.
    pub fn new(password: Option<String>, timeout: Duration) -> Self {
        Admin {
            password,
            timeout,
            conns: HashMap::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The cached connection to `addr`, or a new one.
    async fn conn(&mut self, addr: &str) -> Result<MultiplexedConnection, AdminError> {
        if let Some(c) = self.conns.get(addr) {
            return Ok(c.clone());
        }
        let c = connect(addr, self.password.as_deref(), self.timeout).await?;
        self.conns.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// Runs `cmd` on `addr` with the default timeout.
    async fn query<T: FromRedisValue>(&mut self, addr: &str, cmd: &Cmd) -> Result<T, AdminError> {
        let timeout = self.timeout;
        self.query_within(addr, cmd, timeout).await
    }

    /// Runs `cmd` on `addr` within `timeout`; drops the cached connection
    /// on any failure but an error reply.
    async fn query_within<T: FromRedisValue>(
        &mut self,
        addr: &str,
        cmd: &Cmd,
        timeout: Duration,
    ) -> Result<T, AdminError> {
        let mut c = self.conn(addr).await?;
        let r = run(&mut c, addr, cmd, timeout).await;
        if let Err(e) = &r {
            if !is_reply(e) {
                self.conns.remove(addr);
            }
        }
        r
    }

    /// The member answers PING.
    pub async fn ping(&mut self, addr: &str) -> bool {
        matches!(
            self.query::<String>(addr, &redis::cmd("PING")).await,
            Ok(s) if s == "PONG"
        )
    }

    /// `CLUSTER COUNTKEYSINSLOT slot` on `addr`.
    pub async fn keys_in_slot(&mut self, addr: &str, slot: u16) -> Result<u64, AdminError> {
        let mut c = redis::cmd("CLUSTER");
        c.arg("COUNTKEYSINSLOT").arg(slot);
        self.query(addr, &c).await
    }
}

/// An error reply from the server (the connection is fine).
fn is_reply(e: &AdminError) -> bool {
    matches!(e, AdminError::Command { message, .. } if !message.starts_with("(client)"))
}

/// `ip:port` split; IPv6 addresses may be bracketed.
pub(crate) fn split_addr(addr: &str) -> Result<(String, u16), AdminError> {
    let bad = || AdminError::BadAddress(addr.to_owned());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

async fn connect(
    addr: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<MultiplexedConnection, AdminError> {
    let (host, port) = split_addr(addr)?;
    let info = redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(host, port),
        redis: redis::RedisConnectionInfo {
            db: 0,
            username: None,
            password: password.map(str::to_owned),
            protocol: redis::ProtocolVersion::RESP2,
        },
    };
    let fail = |message: String| AdminError::Connect {
        addr: addr.to_owned(),
        message,
    };
    let client = redis::Client::open(info).map_err(|e| fail(e.to_string()))?;
    tracing::debug!(addr, "connecting");
    match tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_connection_timeout(timeout),
        ),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("timed out after {timeout:?}"))),
    }
}

/// The command as text for logs and errors, with any AUTH password masked.
fn describe(cmd: &Cmd) -> String {
    let mut out = Vec::new();
    let mut mask = false;
    for arg in cmd.args_iter() {
        let text = match arg {
            redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Arg::Cursor => "<cursor>".to_owned(),
        };
        if mask {
            out.push("***".to_owned());
            mask = false;
            continue;
        }
        mask = text.eq_ignore_ascii_case("auth");
        if out.len() >= 12 {
            out.push("...".to_owned());
            break;
        }
        out.push(if text.is_empty() {
            "\"\"".to_owned()
        } else {
            text
        });
    }
    out.join(" ")
}

/// The text of a redis error: `CODE detail` for an error reply,
/// `(client) ...` for anything else (I/O, protocol, unexpected type).
fn error_text(e: &redis::RedisError) -> String {
    match (e.kind(), e.code(), e.detail()) {
        (redis::ErrorKind::IoError, _, _) | (_, None, _) => format!("(client) {e}"),
        (_, Some(code), Some(detail)) => format!("{code} {detail}"),
        (_, Some(code), None) => code.to_owned(),
    }
}

async fn run<T: FromRedisValue>(
    conn: &mut MultiplexedConnection,
    addr: &str,
    cmd: &Cmd,
    timeout: Duration,
) -> Result<T, AdminError> {
    let command = describe(cmd);
    tracing::debug!(addr, command = %command, "command");
    match tokio::time::timeout(timeout, cmd.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let message = error_text(&e);
            tracing::debug!(addr, command = %command, error = %message, "command failed");
            Err(AdminError::Command {
                addr: addr.to_owned(),
                command,
                message,
            })
        }
        Err(_) => Err(AdminError::Timeout {
            addr: addr.to_owned(),
            command,
            timeout,
        }),
    }
}

/// Runs `cmd` on a connection of its own (for the concurrent observation).
async fn query_on<T: FromRedisValue>(
    conn: &mut MultiplexedConnection,
    addr: &str,
    cmd: &Cmd,
    timeout: Duration,
) -> Result<T, AdminError> {
    run(conn, addr, cmd, timeout).await
}

/// `CLUSTER <args...>`.
fn cluster(args: &[&str]) -> Cmd {
    let mut c = redis::cmd("CLUSTER");
    for a in args {
        c.arg(*a);
    }
    c
}
