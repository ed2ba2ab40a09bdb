//! The `RedisCluster` custom resource (`shardline.dev/v1alpha1`).
//!
//! The schema the API server enforces is derived from these types: ranges
//! and enums through schemars, rules across fields through CEL
//! (`x-kubernetes-validations`, via `#[x_kube(validation = ...)]`).
//! [`RedisClusterSpec::validate`] checks what the schema cannot, such as the
//! redis.conf directives the operator knows how to apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most masters a cluster may have.
pub const MAX_MASTERS: i32 = 1000;
/// Most Redis pods (masters and replicas) a cluster may have.
pub const MAX_MEMBERS: i64 = 3000;

/// The redis.conf directives the operator knows how to apply, through
/// `CONFIG SET` on running members and the generated config file on new ones.
pub const KNOWN_CONFIG: &[&str] = &[
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "appendonly",
    "appendfsync",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "save",
    "timeout",
    "tcp-keepalive",
    "hz",
    "databases",
    "maxclients",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "latency-monitor-threshold",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "notify-keyspace-events",
    "cluster-require-full-coverage",
    "cluster-allow-reads-when-down",
    "loglevel",
];

/// A Redis Cluster run by the Shardline operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "shardline.dev",
    version = "v1alpha1",
    kind = "RedisCluster",
    namespaced,
    shortname = "rdc",
    status = "RedisClusterStatus",
    printcolumn = r#"{"name":"Masters","type":"integer","jsonPath":".spec.masters"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","description":"Replicas per master","jsonPath":".spec.replicasPerMaster"}"#,
    printcolumn = r#"{"name":"State","type":"string","description":"CLUSTER INFO cluster_state","jsonPath":".status.clusterState"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.masters * (1 + self.replicasPerMaster) <= 3000")
    .message("masters * (1 + replicasPerMaster) must be at most 3000 pods")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterSpec {
    /// Number of master shards; the 16384 slots are spread over them.
    #[serde(default = "default_masters")]
    #[schemars(range(min = 1, max = 1000))]
    #[x_kube(validation = Rule::new("self <= 1000").message("masters must be at most 1000"))]
    pub masters: i32,

    /// Replicas of each master.
    #[serde(default = "default_replicas_per_master")]
    #[schemars(range(min = 0))]
    #[x_kube(validation = Rule::new("self >= 0").message("replicasPerMaster must not be negative"))]
    pub replicas_per_master: i32,

    /// Container image of the Shardline node.
    #[schemars(length(min = 1))]
    pub image: String,

    /// Compute resources of each Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Persistent storage of each member; absent, members keep no data on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// redis.conf directives, each one of the operator's known directives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// Password of the cluster, from a Secret; absent, no AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// cluster-node-timeout in milliseconds.
    #[serde(default = "default_node_timeout_ms")]
    #[schemars(range(min = 1000))]
    pub node_timeout_ms: i64,

    /// Overrides of the member pods' template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// How members are replaced when the spec changes.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,

    /// After failovers, hand each shard's mastership back to its first
    /// member (`<name>-<shard>-0`) once that member is an in-sync replica
    /// again, with a confirmed manual failover.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failback: bool,
}

fn default_masters() -> i32 {
    3
}

fn default_replicas_per_master() -> i32 {
    1
}

fn default_node_timeout_ms() -> i64 {
    5000
}

/// A member's persistent volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each member's volume, a quantity such as `10Gi`.
    #[x_kube(validation = Rule::new("self != ''").message("storage.size is required when storage is set"))]
    pub size: String,

    /// StorageClass of the volumes; absent, the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Where the cluster's password is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret in the cluster's namespace.
    #[schemars(length(min = 1))]
    pub secret_name: String,

    /// Key of the password in the Secret.
    #[serde(default = "default_auth_key")]
    pub key: String,
}

fn default_auth_key() -> String {
    "password".to_owned()
}

/// Fields of the member pods' template that users may set.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Labels added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    /// Annotations added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// How members are replaced when the spec changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'RollingUpdate' || !has(self.maxUnavailable)")
    .message("maxUnavailable applies only to the RollingUpdate strategy"))]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(rename = "type", default)]
    pub type_: UpdateStrategyType,

    /// Most members restarted at once during a rolling update (never two
    /// of the same shard); absent, one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_unavailable: Option<i32>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpdateStrategyType {
    /// The operator replaces members one at a time, replicas first, failing
    /// over each master before its pod is replaced.
    #[default]
    RollingUpdate,
    /// Members are replaced only when their pods are deleted.
    OnDelete,
}

/// A spec the schema accepts but the operator cannot apply.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    #[error("config directive `{0}` is not one the operator knows how to apply (known: {known})", known = KNOWN_CONFIG.join(", "))]
    UnknownConfigDirective(String),
    #[error("config directive `{0}` is set to an empty value")]
    EmptyConfigValue(String),
    #[error("masters must be between 1 and {MAX_MASTERS}, not {0}")]
    Masters(i32),
    #[error("replicasPerMaster must not be negative, not {0}")]
    ReplicasPerMaster(i32),
    #[error("masters * (1 + replicasPerMaster) = {0} pods, more than {MAX_MEMBERS}")]
    TooManyMembers(i64),
    #[error("nodeTimeoutMs must be at least 1000, not {0}")]
    NodeTimeout(i64),
    #[error("storage.size is required when storage is set")]
    StorageSize,
}

impl RedisClusterSpec {
    /// Checks what the CRD schema does not: every config directive is in
    /// [`KNOWN_CONFIG`]. Also checks the bounds the schema states, so that a
    /// spec that did not go through the API server is held to them too.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1..=MAX_MASTERS).contains(&self.masters) {
            return Err(SpecError::Masters(self.masters));
        }
        if self.replicas_per_master < 0 {
            return Err(SpecError::ReplicasPerMaster(self.replicas_per_master));
        }
        let members = i64::from(self.masters) * (1 + i64::from(self.replicas_per_master));
        if members > MAX_MEMBERS {
            return Err(SpecError::TooManyMembers(members));
        }
        if self.node_timeout_ms < 1000 {
            return Err(SpecError::NodeTimeout(self.node_timeout_ms));
        }
        if self.storage.as_ref().is_some_and(|s| s.size.is_empty()) {
            return Err(SpecError::StorageSize);
        }
        for (directive, value) in &self.config {
            if !KNOWN_CONFIG.contains(&directive.as_str()) {
                tracing::debug!(%directive, "config directive not in KNOWN_CONFIG");
                return Err(SpecError::UnknownConfigDirective(directive.clone()));
            }
            // `save ""` turns snapshots off, so only `save` may be empty.
            if value.is_empty() && directive != "save" {
                return Err(SpecError::EmptyConfigValue(directive.clone()));
            }
        }
        Ok(())
    }
}

/// What the operator last saw of the cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisClusterStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `cluster_state` of CLUSTER INFO: `ok` or `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_state: Option<String>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,

    /// The slot migration under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverStatus>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    /// CamelCase reason of the last transition.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// Every slot is served and every member is up.
    Ready,
    /// The operator is changing the cluster (scaling, migrating, updating).
    Progressing,
    /// The cluster serves all slots but has lost members or replicas.
    Degraded,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// An inclusive range of hash slots.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRange {
    #[schemars(range(min = 0, max = 16383))]
    pub start: i32,
    #[schemars(range(min = 0, max = 16383))]
    pub end: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// Member (pod) name of the master.
    pub master: String,
    pub master_node_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
    /// Replicas whose link is up and whose lag is within bounds.
    #[serde(default)]
    pub in_sync_replicas: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub member: String,
    pub node_id: String,
    pub link_state: LinkState,
    /// Replication lag in bytes (master offset minus replica offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    Down,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `ip:port` of the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub role: MemberRole,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberRole {
    Master,
    Replica,
    /// Not (yet) part of the cluster.
    Unassigned,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    pub slots: Vec<SlotRange>,
    /// Member the slots leave.
    pub from: String,
    /// Member the slots go to.
    pub to: String,
    /// Percent of the slots moved.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub progress: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    pub time: Time,
    pub reason: String,
    /// Member that was master.
    pub from: String,
    /// Member promoted.
    pub to: String,
}
