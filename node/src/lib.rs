//! shardline-node: a Redis-compatible server.
pub mod resp;
