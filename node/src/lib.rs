//! shardline-node: a Redis-compatible server whose cluster mode is
//! wire-compatible with Redis 7 Cluster.

pub mod blocking;
pub mod busy_poll;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod cmdspec;
pub mod config;
pub mod digest;
pub mod engine;
pub mod glob;
pub mod node;
pub mod pubsub;
pub mod rdb;
pub mod replication;
pub mod resp;
pub mod server;
pub mod shutdown;
pub mod stats;
pub mod stream;

/// The redis version we are compatible with, reported by INFO and HELLO so
/// that clients enable the features of that version.
pub const REDIS_VERSION: &str = "7.0.15";
