//! shardline-node: a Redis-compatible server.
pub mod cmdspec;
pub mod resp;
