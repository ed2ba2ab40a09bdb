//! shardline-node: a Redis-compatible server.
pub mod config;
pub mod glob;
pub mod resp;
