//! Where members run. The reconciler acts through a [`Platform`]: the
//! Kubernetes one (pods, volumes, services) or the [`local`] one (node
//! processes on 127.0.0.x).

pub mod local;

use std::future::Future;

use crate::crd::RedisClusterSpec;
use crate::model::{MemberName, PlatformMember};

#[derive(thiserror::Error, Debug)]
pub enum PlatformError {
    #[error("{member}: {message}")]
    Member { member: MemberName, message: String },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Members: create, start, replace, delete, and report.
pub trait Platform: Send {
    /// Every member that exists, running or not.
    fn members(
        &mut self,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<Vec<PlatformMember>, PlatformError>> + Send;

    /// Creates and starts a member from `spec`.
    fn create(
        &mut self,
        member: MemberName,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Starts a member that exists but is not running, keeping its data.
    fn start(
        &mut self,
        member: MemberName,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Stops a member (gracefully: it saves its data) and starts it from
    /// the current `spec`, keeping its data and node ID.
    fn replace(
        &mut self,
        member: MemberName,
        spec: &RedisClusterSpec,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;

    /// Stops a member and removes its data.
    fn delete(
        &mut self,
        member: MemberName,
    ) -> impl Future<Output = Result<(), PlatformError>> + Send;
}
