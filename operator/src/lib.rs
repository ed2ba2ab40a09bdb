//! Shardline operator: the `RedisCluster` custom resource and (later) its
//! controller.

pub mod crd;

pub use crd::{RedisCluster, RedisClusterSpec, RedisClusterStatus};

/// The CRD of `RedisCluster` as YAML, as committed in
/// `crds/redisclusters.shardline.dev.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&RedisCluster::crd())
}
