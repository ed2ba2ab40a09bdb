//! The reconciler: observe, plan, act, over and over. One pass
//! ([`Reconciler::pass`]) observes the platform and the cluster, asks the
//! planner what to do, runs the steps (stopping at the first failure) and
//! updates the status. It keeps only what observation cannot recover: the
//! slot moves it started (also written to a state file, so a restarted
//! operator resumes them), how long stopped members have been down, and
//! the last failover.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::action::{Action, Plan, Step};
use crate::admin::Admin;
use crate::crd::{RedisClusterSpec, RedisClusterStatus};
use crate::model::{MemberName, Observed, SlotMove};
use crate::planner::{self, PlanInput};
use crate::platform::Platform;
use crate::status;

#[derive(thiserror::Error, Debug)]
pub enum ReconcileError {
    #[error("platform: {0}")]
    Platform(#[from] crate::platform::PlatformError),
    #[error("{0}")]
    Admin(#[from] crate::admin::AdminError),
    #[error("{action}: {message}")]
    Step { action: String, message: String },
    #[error("state file {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Called with (slots done, slots total) while a slot move runs.
pub type ProgressFn = Box<dyn FnMut(&Action, u64, u64) + Send>;

/// What the reconciler keeps on disk between runs.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    #[serde(default)]
    in_flight: Vec<SlotMove>,
}

pub struct Reconciler<P: Platform> {
    pub platform: P,
    admin: Admin,
    spec: RedisClusterSpec,
    observed: Observed,
    down_since: BTreeMap<MemberName, Instant>,
    in_flight: Vec<SlotMove>,
    state_path: Option<PathBuf>,
    status: RedisClusterStatus,
    /// The role each member had last pass, to notice failovers the cluster
    /// made by itself.
    masters: BTreeMap<MemberName, bool>,
    last_waiting: Vec<String>,
    progress: Option<ProgressFn>,
}

/// The outcome of one pass.
#[derive(Debug)]
pub struct PassReport {
    pub plan: Plan,
    /// Steps that ran to completion.
    pub done: usize,
    /// The first step that failed, with its error.
    pub failed: Option<(Step, String)>,
}

impl PassReport {
    /// Nothing to do and nothing to wait for.
    pub fn converged(&self) -> bool {
        self.plan.is_converged()
    }
}

impl<P: Platform> Reconciler<P> {
    pub fn new(
        platform: P,
        admin: Admin,
        spec: RedisClusterSpec,
        state_path: Option<PathBuf>,
    ) -> Result<Self, ReconcileError> {
        let state: State = match &state_path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                    warn!(path = %path.display(), error = %e, "ignoring unreadable state file");
                    State::default()
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
                Err(source) => {
                    return Err(ReconcileError::State {
                        path: path.clone(),
                        source,
                    })
                }
            },
            None => State::default(),
        };
        if !state.in_flight.is_empty() {
            info!(
                moves = state.in_flight.len(),
                "resuming recorded slot moves"
            );
        }
        Ok(Reconciler {
            platform,
            admin,
            spec,
            observed: Observed::default(),
            down_since: BTreeMap::new(),
            in_flight: state.in_flight,
            state_path,
            status: RedisClusterStatus::default(),
            masters: BTreeMap::new(),
            last_waiting: Vec::new(),
            progress: None,
        })
    }

    pub fn set_progress(&mut self, progress: ProgressFn) {
        self.progress = Some(progress);
    }

    pub fn spec(&self) -> &RedisClusterSpec {
        &self.spec
    }

    pub fn set_spec(&mut self, spec: RedisClusterSpec) {
        self.spec = spec;
    }

    pub fn status(&self) -> &RedisClusterStatus {
        &self.status
    }

    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    fn save_state(&self) -> Result<(), ReconcileError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let state = State {
            in_flight: self.in_flight.clone(),
        };
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| ReconcileError::State {
                path: path.clone(),
                source,
            })
    }

    async fn observe(&mut self) -> Result<(), ReconcileError> {
        let members = self.platform.members(&self.spec).await?;
        let now = Instant::now();
        for m in &members {
            if m.running {
                self.down_since.remove(&m.name);
            } else {
                self.down_since.entry(m.name).or_insert(now);
            }
        }
        self.down_since
            .retain(|name, _| members.iter().any(|m| m.name == *name));
        self.observed = self.admin.observe(members, &self.observed).await;
        self.notice_failovers();
        Ok(())
    }

    /// Records failovers the cluster made by itself (a master died and its
    /// replica was promoted).
    fn notice_failovers(&mut self) {
        let now: BTreeMap<MemberName, bool> = self
            .observed
            .members
            .iter()
            .filter_map(|(name, m)| m.myself().map(|n| (*name, n.master && !n.slots.is_empty())))
            .collect();
        for (name, &is_master) in &now {
            if !is_master || self.masters.get(name).copied().unwrap_or(true) {
                continue;
            }
            // `name` became a master; who lost mastership in its shard?
            let from = self
                .masters
                .iter()
                .find(|(other, was)| other.shard == name.shard && **was && other != &name)
                .map(|(other, _)| *other);
            let Some(from) = from else { continue };
            let planned = self
                .status
                .last_failover
                .as_ref()
                .is_some_and(|f| f.to == name.to_string() && f.from == from.to_string());
            if !planned {
                let reason = if self
                    .observed
                    .members
                    .get(&from)
                    .is_some_and(|m| m.view.is_none())
                {
                    format!("{from} failed; the cluster promoted {name}")
                } else {
                    format!("the cluster promoted {name} over {from}")
                };
                warn!(%from, to = %name, "failover: {reason}");
                self.status.last_failover = Some(status::failover_status(from, *name, &reason));
            }
        }
        for (name, is_master) in now {
            self.masters.insert(name, is_master);
        }
    }

    fn addr(&self, member: MemberName) -> Result<String, ReconcileError> {
        self.observed
            .members
            .get(&member)
            .map(|m| m.platform.addr.clone())
            .ok_or_else(|| ReconcileError::Step {
                action: member.to_string(),
                message: "no such member".into(),
            })
    }

    fn reachable_addrs(&self) -> Vec<String> {
        self.observed
            .members
            .values()
            .filter(|m| m.view.is_some())
            .map(|m| m.platform.addr.clone())
            .collect()
    }

    /// One pass: observe, plan, run the plan's steps, update the status.
    pub async fn pass(&mut self) -> Result<PassReport, ReconcileError> {
        self.observe().await?;
        let down_for: BTreeMap<MemberName, Duration> = self
            .down_since
            .iter()
            .map(|(k, t)| (*k, t.elapsed()))
            .collect();
        // Forget recorded moves that are complete.
        let before = self.in_flight.len();
        let observed = &self.observed;
        self.in_flight.retain(|mv| {
            observed
                .members
                .get(&mv.to)
                .and_then(|m| m.myself())
                .is_none_or(|n| !mv.slots.iter().flat_map(|&(a, b)| a..=b).all(|s| n.owns(s)))
        });
        if self.in_flight.len() != before {
            self.save_state()?;
        }
        let plan = planner::plan(&PlanInput {
            spec: &self.spec,
            observed: &self.observed,
            in_flight: &self.in_flight,
            down_for: &down_for,
        });
        if plan.steps.is_empty() && plan.waiting != self.last_waiting {
            for w in &plan.waiting {
                info!("waiting: {w}");
            }
        }
        self.last_waiting = plan.waiting.clone();

        let mut done = 0;
        let mut failed = None;
        for step in &plan.steps {
            info!(action = %step.action, reason = %step.reason, "step");
            match self.run(step).await {
                Ok(()) => done += 1,
                Err(e) => {
                    warn!(action = %step.action, error = %e, "step failed; observing again");
                    failed = Some((step.clone(), e.to_string()));
                    break;
                }
            }
        }
        self.status = status::build(&self.spec, &self.observed, &plan, &self.status);
        Ok(PassReport { plan, done, failed })
    }

    async fn run(&mut self, step: &Step) -> Result<(), ReconcileError> {
        match &step.action {
            Action::CreateMember { member } => {
                self.platform.create(*member, &self.spec).await?;
            }
            Action::StartMember { member } => {
                self.platform.start(*member, &self.spec).await?;
            }
            Action::ReplaceMember { member } => {
                self.platform.replace(*member, &self.spec).await?;
            }
            Action::DeleteMember { member } => {
                self.platform.delete(*member).await?;
            }
            Action::Meet { on, addr } => {
                let on = self.addr(*on)?;
                self.admin.meet(&on, addr).await?;
            }
            Action::AddSlots { on, ranges } => {
                let on = self.addr(*on)?;
                self.admin.add_slots(&on, ranges).await?;
            }
            Action::Replicate { on, master } => {
                let on = self.addr(*on)?;
                self.admin.replicate(&on, master).await?;
            }
            Action::Forget { node } => {
                let addrs = self.reachable_addrs();
                self.admin.forget(node, &addrs).await?;
            }
            Action::StableSlot { on, slot } => {
                let on = self.addr(*on)?;
                self.admin.stable_slot(&on, *slot).await?;
            }
            Action::MoveSlots { from, to, slots } => {
                let record = SlotMove {
                    from: *from,
                    to: *to,
                    slots: slots.clone(),
                };
                if !self.in_flight.contains(&record) {
                    self.in_flight.push(record.clone());
                    self.save_state()?;
                }
                let (from_addr, to_addr) = (self.addr(*from)?, self.addr(*to)?);
                if from.shard >= u32::try_from(self.spec.masters.max(0)).unwrap_or(0) {
                    // A departing shard: once its master gives away its
                    // last slot it would turn into a replica of the taker
                    // (and its replicas follow), and every node that has
                    // not yet heard all the takers' claims would drop the
                    // rest of its slots for a moment. Keep it an empty
                    // master instead; it is deleted right after.
                    let shard: Vec<String> = self
                        .observed
                        .members
                        .values()
                        .filter(|m| m.name().shard == from.shard && m.view.is_some())
                        .map(|m| m.platform.addr.clone())
                        .collect();
                    for addr in shard {
                        self.admin
                            .config_set(&addr, "cluster-allow-replica-migration", "no")
                            .await?;
                    }
                }
                let addrs = self.reachable_addrs();
                let total: u64 = slots
                    .iter()
                    .map(|&(a, b)| u64::from(b) - u64::from(a) + 1)
                    .sum();
                self.status.migration = Some(status::migration_status(*from, *to, slots, 0, total));
                let action = step.action.clone();
                let mut progress = self.progress.take();
                let mut report = |done: u64, total: u64| {
                    if let Some(p) = progress.as_mut() {
                        p(&action, done, total);
                    }
                };
                let result = self
                    .admin
                    .move_slots(&from_addr, &to_addr, slots, &addrs, &mut report)
                    .await;
                self.progress = progress;
                self.status.migration = None;
                result?;
                self.in_flight.retain(|m| *m != record);
                self.save_state()?;
            }
            Action::Failover { on } => {
                let replica = self.addr(*on)?;
                let from = self
                    .observed
                    .members
                    .get(on)
                    .and_then(|m| m.myself())
                    .and_then(|n| n.master_id.clone())
                    .and_then(|id| {
                        self.observed
                            .members
                            .iter()
                            .find(|(_, m)| m.myself().is_some_and(|n| n.id == id))
                            .map(|(k, _)| *k)
                    })
                    .ok_or_else(|| ReconcileError::Step {
                        action: step.action.to_string(),
                        message: "the replica's master is not a member".into(),
                    })?;
                let master = self.addr(from)?;
                let timeout = Duration::from_millis(
                    u64::try_from(self.spec.node_timeout_ms.max(1000)).unwrap_or(5000) * 4,
                );
                self.admin.failover(&replica, &master, timeout).await?;
                self.status.last_failover = Some(status::failover_status(from, *on, &step.reason));
                self.masters.insert(*on, true);
                self.masters.insert(from, false);
            }
        }
        Ok(())
    }
}
