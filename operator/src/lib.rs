//! Shardline operator: the `RedisCluster` custom resource, the admin
//! library that observes and changes a cluster through standard Redis
//! commands, the pure planner that decides what to do next, and the
//! platforms members run on.

pub mod action;
pub mod admin;
pub mod crd;
pub mod model;
pub mod planner;
pub mod platform;
pub mod reconcile;
pub mod status;
pub mod up;

pub use crd::{RedisCluster, RedisClusterSpec, RedisClusterStatus};

/// The CRD of `RedisCluster` as YAML, as committed in
/// `crds/redisclusters.shardline.dev.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&RedisCluster::crd())
}
