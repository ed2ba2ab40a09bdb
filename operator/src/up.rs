//! `shardline-operator up`: the reconciler against local node processes,
//! in the foreground.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use tracing::{error, info, warn};

use crate::action::Action;
use crate::admin::Admin;
use crate::crd::RedisClusterSpec;
use crate::platform::local::{LocalOptions, LocalPlatform};
use crate::reconcile::Reconciler;

/// Options of `shardline-operator up`.
#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Masters (shards). Ignored with -f.
    #[arg(long, default_value_t = 3)]
    pub masters: i32,
    /// Replicas per master. Ignored with -f.
    #[arg(long, default_value_t = 1)]
    pub replicas: i32,
    /// A RedisCluster manifest (or just its spec) to run; edits to the file
    /// are applied while running.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Port every member listens on, each on its own loopback address.
    #[arg(long, default_value_t = 7000)]
    pub port: u16,
    /// Address of the first member; the others follow it.
    #[arg(long, default_value = "127.0.0.1")]
    pub first_ip: Ipv4Addr,
    /// The member binary: shardline-node (default: the one next to this
    /// program, else on PATH) or redis-server. A spec's `image` that names
    /// an executable overrides it.
    #[arg(long)]
    pub node_binary: Option<PathBuf>,
    /// Where members keep their data, config and logs.
    #[arg(long, default_value = "shardline-data")]
    pub dir: PathBuf,
    /// Password for clients and replication (requirepass / masterauth).
    #[arg(long, env = "SHARDLINE_PASSWORD")]
    pub password: Option<String>,
    /// Leave the members running when the operator stops.
    #[arg(long)]
    pub keep_running: bool,
}

#[derive(thiserror::Error, Debug)]
pub enum UpError {
    #[error("{path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("invalid spec: {0}")]
    Invalid(#[from] crate::crd::SpecError),
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    #[error(transparent)]
    Reconcile(#[from] crate::reconcile::ReconcileError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads a spec file: a whole RedisCluster manifest or just its spec.
pub fn read_spec(path: &Path) -> Result<RedisClusterSpec, UpError> {
    let err = |message: String| UpError::Spec {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let spec_value = match value.get("spec") {
        Some(spec) if value.get("kind").is_some() => spec.clone(),
        _ => value,
    };
    let spec: RedisClusterSpec =
        serde_yaml::from_value(spec_value).map_err(|e| err(e.to_string()))?;
    spec.validate()?;
    Ok(spec)
}

fn default_node_binary() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let sibling = dir.join("shardline-node");
            if sibling.is_file() {
                return sibling;
            }
        }
    }
    PathBuf::from("shardline-node")
}

fn spec_from_args(args: &UpArgs) -> Result<RedisClusterSpec, UpError> {
    let mut spec: RedisClusterSpec =
        serde_yaml::from_str("image: shardline-node").map_err(|e| UpError::Spec {
            path: PathBuf::from("<defaults>"),
            message: e.to_string(),
        })?;
    spec.masters = args.masters;
    spec.replicas_per_master = args.replicas;
    spec.image = args
        .node_binary
        .clone()
        .unwrap_or_else(default_node_binary)
        .display()
        .to_string();
    spec.validate()?;
    Ok(spec)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// A progress bar per slot move.
fn progress_reporter() -> crate::reconcile::ProgressFn {
    let mut current: Option<(String, ProgressBar)> = None;
    Box::new(move |action: &Action, done: u64, total: u64| {
        let key = action.to_string();
        if current.as_ref().is_none_or(|(k, _)| *k != key) {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} slots ({elapsed}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(key.clone());
            current = Some((key, bar));
        }
        if let Some((_, bar)) = &current {
            bar.set_length(total);
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
            }
        }
    })
}

/// Runs until Ctrl-C (SIGINT) or SIGTERM.
pub async fn run(args: UpArgs) -> Result<(), UpError> {
    let mut spec = match &args.file {
        Some(path) => read_spec(path)?,
        None => spec_from_args(&args)?,
    };
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    let node_binary = args.node_binary.clone().unwrap_or_else(default_node_binary);
    let platform = LocalPlatform::new(LocalOptions {
        root: dir.clone(),
        port: args.port,
        first_ip: args.first_ip,
        node_binary,
        password: args.password.clone(),
    })?;
    let admin = Admin::new(args.password.clone(), Duration::from_secs(5));
    let mut rec = Reconciler::new(
        platform,
        admin,
        spec.clone(),
        Some(dir.join("operator-state.json")),
    )?;
    rec.set_progress(progress_reporter());
    info!(
        masters = spec.masters,
        replicas = spec.replicas_per_master,
        dir = %dir.display(),
        "shardline-operator up"
    );

    let mut spec_mtime = args.file.as_deref().and_then(mtime);
    let mut was_ready = false;
    let mut last_status = String::new();
    let status_path = dir.join("status.yaml");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    loop {
        // Apply edits to the spec file.
        if let Some(path) = &args.file {
            let now = mtime(path);
            if now != spec_mtime {
                spec_mtime = now;
                match read_spec(path) {
                    Ok(new) if new != spec => {
                        info!(
                            masters = new.masters,
                            replicas = new.replicas_per_master,
                            "the spec file changed; applying it"
                        );
                        spec = new.clone();
                        rec.set_spec(new);
                    }
                    Ok(_) => {}
                    Err(e) => error!("{e}; keeping the previous spec"),
                }
            }
        }

        let pass = tokio::select! {
            r = rec.pass() => r,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let delay = match pass {
            Ok(report) => {
                let ready = rec.status().conditions.iter().any(|c| {
                    c.type_ == crate::crd::ConditionType::Ready
                        && c.status == crate::crd::ConditionStatus::True
                });
                if ready && !was_ready {
                    let first = rec
                        .observed()
                        .members
                        .values()
                        .map(|m| m.platform.addr.clone())
                        .next()
                        .unwrap_or_default();
                    let (host, port) = first.rsplit_once(':').unwrap_or((&first, ""));
                    say(&format!(
                        "cluster ready: {} masters, {} replicas each. Connect with: redis-cli -c -h {host} -p {port}",
                        spec.masters, spec.replicas_per_master
                    ));
                } else if !ready && was_ready {
                    say("cluster not ready; healing");
                }
                was_ready = ready;
                if report.failed.is_some() {
                    Duration::from_millis(1000)
                } else if !report.plan.steps.is_empty() {
                    Duration::from_millis(100)
                } else if !report.plan.waiting.is_empty() {
                    Duration::from_millis(300)
                } else {
                    Duration::from_millis(1000)
                }
            }
            Err(e) => {
                warn!("reconcile pass failed: {e}");
                Duration::from_secs(1)
            }
        };
        let text = serde_yaml::to_string(rec.status()).unwrap_or_default();
        if text != last_status {
            let tmp = status_path.with_extension("tmp");
            if let Err(e) =
                std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, &status_path))
            {
                warn!("cannot write {}: {e}", status_path.display());
            }
            last_status = text;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }

    if args.keep_running {
        say("stopping the operator; the members keep running");
    } else {
        say("stopping the members");
        rec.platform.stop_all().await;
    }
    Ok(())
}
