//! The committed CRD matches the types, and specs parse and validate.

use kube::CustomResourceExt;
use shardline_operator::crd::{SpecError, UpdateStrategyType, KNOWN_CONFIG};
use shardline_operator::{RedisCluster, RedisClusterSpec};

const CRD_PATH: &str = "crds/redisclusters.shardline.dev.yaml";

#[test]
fn committed_crd_is_up_to_date() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/redisclusters.shardline.dev.yaml"
    );
    let generated = shardline_operator::crd_yaml().expect("serialize the CRD");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{CRD_PATH} is stale: run `cargo run -p shardline-operator -- crd > {CRD_PATH}`"
    );
}

#[test]
fn crd_names_columns_and_rules() {
    let crd = RedisCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("redisclusters.shardline.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["rdc".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Masters", "Replicas", "State", "Ready", "Age"]);
    assert!(version
        .subresources
        .as_ref()
        .is_some_and(|s| s.status.is_some()));

    let json = serde_json::to_string(&crd).expect("serialize the CRD");
    for rule in [
        "self.masters * (1 + self.replicasPerMaster) <= 3000",
        "self <= 1000",
        "self >= 0",
        "self != ''",
        "self.type == 'RollingUpdate' || !has(self.maxUnavailable)",
    ] {
        assert!(
            json.contains(&format!(
                "\"rule\":{}",
                serde_json::to_string(rule).expect("str")
            )),
            "no CEL rule {rule}"
        );
    }
}

const SAMPLE: &str = r#"
apiVersion: shardline.dev/v1alpha1
kind: RedisCluster
metadata:
  name: cache
  namespace: default
spec:
  image: shardline/node:0.1.0
  storage:
    size: 10Gi
  auth:
    secretName: cache-auth
  config:
    maxmemory: 2gb
    maxmemory-policy: allkeys-lru
    save: ""
  podTemplate:
    nodeSelector:
      disk: ssd
    tolerations:
      - key: dedicated
        operator: Equal
        value: redis
        effect: NoSchedule
    priorityClassName: high
"#;

#[test]
fn sample_parses_with_defaults() {
    let rc: RedisCluster = serde_yaml::from_str(SAMPLE).expect("parse sample");
    let spec = &rc.spec;
    assert_eq!(spec.masters, 3);
    assert_eq!(spec.replicas_per_master, 1);
    assert_eq!(spec.node_timeout_ms, 5000);
    assert_eq!(
        spec.update_strategy.type_,
        UpdateStrategyType::RollingUpdate
    );
    assert_eq!(spec.update_strategy.max_unavailable, None);
    let auth = spec.auth.as_ref().expect("auth");
    assert_eq!(
        (auth.secret_name.as_str(), auth.key.as_str()),
        ("cache-auth", "password")
    );
    let storage = spec.storage.as_ref().expect("storage");
    assert_eq!(
        (storage.size.as_str(), storage.storage_class_name.as_deref()),
        ("10Gi", None)
    );
    let pod = spec.pod_template.as_ref().expect("podTemplate");
    assert_eq!(
        pod.node_selector.get("disk").map(String::as_str),
        Some("ssd")
    );
    assert_eq!(pod.tolerations.len(), 1);
    assert!(spec.resources.is_none());
    assert!(rc.status.is_none());
    assert_eq!(spec.validate(), Ok(()));
}

#[test]
fn minimal_spec_needs_only_image() {
    let spec: RedisClusterSpec = serde_yaml::from_str("image: x").expect("parse");
    assert_eq!((spec.masters, spec.replicas_per_master), (3, 1));
    assert!(spec.storage.is_none() && spec.auth.is_none() && spec.config.is_empty());
    assert_eq!(spec.validate(), Ok(()));
    assert!(serde_yaml::from_str::<RedisClusterSpec>("masters: 3").is_err());
}

#[test]
fn validate_rejects_unknown_directive() {
    let mut rc: RedisCluster = serde_yaml::from_str(SAMPLE).expect("parse sample");
    rc.spec
        .config
        .insert("enable-debug-command".to_owned(), "yes".to_owned());
    let err = rc.spec.validate().expect_err("unknown directive accepted");
    assert_eq!(
        err,
        SpecError::UnknownConfigDirective("enable-debug-command".to_owned())
    );
    assert!(err.to_string().contains("`enable-debug-command`"), "{err}");
}

#[test]
fn validate_checks_bounds() {
    let spec = |yaml: &str| -> RedisClusterSpec { serde_yaml::from_str(yaml).expect("parse") };
    assert_eq!(
        spec("image: x\nmasters: 0").validate(),
        Err(SpecError::Masters(0))
    );
    assert_eq!(
        spec("image: x\nmasters: 1001").validate(),
        Err(SpecError::Masters(1001))
    );
    assert_eq!(
        spec("image: x\nreplicasPerMaster: -1").validate(),
        Err(SpecError::ReplicasPerMaster(-1))
    );
    assert_eq!(
        spec("image: x\nmasters: 1000\nreplicasPerMaster: 2").validate(),
        Ok(())
    );
    assert_eq!(
        spec("image: x\nmasters: 1000\nreplicasPerMaster: 3").validate(),
        Err(SpecError::TooManyMembers(4000))
    );
    assert_eq!(
        spec("image: x\nnodeTimeoutMs: 999").validate(),
        Err(SpecError::NodeTimeout(999))
    );
    assert_eq!(
        spec("image: x\nstorage:\n  size: ''").validate(),
        Err(SpecError::StorageSize)
    );
    assert!(serde_yaml::from_str::<RedisClusterSpec>("image: x\nstorage: {}").is_err());
    assert_eq!(
        spec("image: x\nconfig:\n  maxmemory: ''").validate(),
        Err(SpecError::EmptyConfigValue("maxmemory".to_owned()))
    );
    assert!(KNOWN_CONFIG.contains(&"appendonly"));
}
