//! Manual failover: CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica, and
//! the master's side of the handshake.
//!
//! Default mode: the replica sends MFSTART; its master pauses client
//! writes (reads go on), waits until no write is in flight (the I/O layer
//! drains them and calls [`Machine::mf_drained`]), and advertises its final
//! replication offset with the PAUSED flag. The replica waits until it has
//! processed exactly that offset, then runs an election with FORCEACK.
//! When the old master learns the new configuration it turns into a
//! replica of the winner and lifts the pause; the paused clients then get
//! MOVED. The replica gives up after 5 s; the master's pause lasts at most
//! twice that.

use super::{cerr, Action, Body, ClusterError, Machine, Message, NodeName};
use crate::cluster::wire::{self, msgtype, nflag};

/// How long a manual failover may take (CLUSTER_MF_TIMEOUT).
pub const MF_TIMEOUT_MS: u64 = 5000;
/// The master's pause lasts at most this many timeouts (CLUSTER_MF_PAUSE_MULT).
pub const MF_PAUSE_MULT: u64 = 2;

/// The three modes of CLUSTER FAILOVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverMode {
    /// Handshake with the master: no acknowledged write is lost.
    Default,
    /// No handshake (the master may be unreachable); still needs votes.
    Force,
    /// No votes: bump the epoch unilaterally and claim the slots.
    Takeover,
}

/// Manual failover state (redis's mf_*), on both sides.
#[derive(Debug, Default, Clone)]
pub struct ManualFailover {
    /// Deadline (unix ms); 0 when none is in progress.
    pub end: u64,
    /// Replica: the election may start.
    pub can_start: bool,
    /// Master: the replica that asked.
    pub replica: Option<NodeName>,
    /// Replica: the paused master's final offset.
    pub master_offset: Option<u64>,
    /// Master: writes are paused and drained; PAUSED may be advertised.
    pub drained: bool,
}

impl Machine {
    /// CLUSTER FAILOVER [FORCE|TAKEOVER].
    pub fn manual_failover(&mut self, mode: FailoverMode, now: u64) -> Result<(), ClusterError> {
        let me = self.me();
        if me.is_master() {
            return cerr("ERR You should send CLUSTER FAILOVER to a replica");
        }
        let Some(master) = me.slaveof.and_then(|m| self.nodes.get(&m)) else {
            return cerr("ERR I'm a replica but my master is unknown to me");
        };
        let master_name = master.name;
        let master_link = master.link.filter(|l| self.link_connected(*l));
        if mode == FailoverMode::Default && (master.has(nflag::FAIL) || master_link.is_none()) {
            return cerr("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE");
        }
        self.reset_manual_failover();
        self.mf.end = now + MF_TIMEOUT_MS;
        self.stats.manual_failovers += 1;
        // A manual failover always runs its own election, at once.
        self.election = super::Election::default();
        match mode {
            FailoverMode::Takeover => {
                tracing::info!("Taking over the master (user request).");
                let (changed, epoch) = self.bump_epoch();
                if changed {
                    tracing::info!("New configEpoch set to {epoch}");
                }
                self.replace_my_master(now);
            }
            FailoverMode::Force => {
                tracing::info!("Forced failover user request accepted.");
                self.mf.can_start = true;
                self.handle_replica_failover(now);
            }
            FailoverMode::Default => {
                tracing::info!(
                    "Manual failover user request accepted: asking master {} to pause writes.",
                    wire::name_str(&master_name)
                );
                if let Some(link) = master_link {
                    let msg = Message {
                        header: self.header(msgtype::MFSTART),
                        body: Body::Empty,
                    };
                    self.send(link, &msg);
                }
            }
        }
        Ok(())
    }

    /// A replica of ours asks to take over: pause writes. The PAUSED PING
    /// follows once the I/O layer drained in-flight writes.
    pub(crate) fn receive_mfstart(&mut self, sender: NodeName, now: u64) {
        let ours = self
            .nodes
            .get(&sender)
            .is_some_and(|p| p.is_replica() && p.slaveof == Some(self.myself));
        if !ours || !self.me().is_master() {
            return;
        }
        self.reset_manual_failover();
        self.mf.end = now + MF_TIMEOUT_MS;
        self.mf.replica = Some(sender);
        tracing::info!(
            "Manual failover requested by replica {}: pausing writes.",
            wire::name_str(&sender)
        );
        self.actions.push(Action::PauseWrites {
            until: now + MF_TIMEOUT_MS * MF_PAUSE_MULT,
        });
    }

    /// The I/O layer paused writes and no write is in flight any more: our
    /// offset is final. Tell the replica, with the PAUSED flag.
    pub fn mf_drained(&mut self, now: u64) {
        let Some(replica) = self.mf.replica.filter(|_| self.mf.end != 0) else {
            // The failover ended while the pause was being set up: lift
            // the pause that just began.
            self.actions.push(Action::Unpause);
            return;
        };
        self.mf.drained = true;
        tracing::info!(
            "Writes paused for the manual failover at offset {}.",
            self.me().repl_offset
        );
        if let Some(link) = self.link_to(&replica) {
            self.send_ping(link, msgtype::PING, now);
        }
    }

    /// Whether our headers carry the PAUSED flag.
    pub(crate) fn advertises_paused(&self) -> bool {
        self.me().is_master() && self.mf.end != 0 && self.mf.drained
    }

    /// A header from our master with the PAUSED flag: remember the offset
    /// to reach.
    pub(crate) fn note_paused_master(&mut self, sender: NodeName, offset: u64, now: u64) {
        let me = self.me();
        if !me.is_replica() || me.slaveof != Some(sender) || self.mf.end == 0 {
            return;
        }
        if self.mf.master_offset.is_none() {
            self.mf.master_offset = Some(offset);
            tracing::info!(
                "Received replication offset for paused master manual failover: {offset}"
            );
            self.handle_manual_failover(now);
        }
    }

    /// Replica: once our offset reaches the paused master's, the election
    /// may start.
    pub(crate) fn handle_manual_failover(&mut self, now: u64) {
        if self.mf.end == 0 || self.mf.can_start {
            return;
        }
        let Some(target) = self.mf.master_offset else {
            return;
        };
        if self.me().repl_offset >= target {
            self.mf.can_start = true;
            tracing::info!("All master replication stream processed, manual failover can start.");
            self.handle_replica_failover(now);
        }
    }

    pub(crate) fn check_manual_failover_timeout(&mut self, now: u64) {
        if self.mf.end != 0 && self.mf.end < now {
            tracing::warn!("Manual failover timed out.");
            self.stats.manual_failovers_timed_out += 1;
            self.reset_manual_failover();
        }
    }

    /// Ends any manual failover; a master lifts its pause.
    pub(crate) fn reset_manual_failover(&mut self) {
        if self.mf.replica.is_some() || self.mf.drained {
            self.actions.push(Action::Unpause);
        }
        self.mf = ManualFailover::default();
    }

    /// Whether a manual failover is in progress (INFO).
    pub fn manual_failover_state(&self) -> &'static str {
        let mf = &self.mf;
        if mf.end == 0 {
            "none"
        } else if mf.replica.is_some() {
            if mf.drained {
                "master-paused"
            } else {
                "master-pausing"
            }
        } else if mf.can_start {
            "election"
        } else if mf.master_offset.is_some() {
            "waiting-offset"
        } else {
            "waiting-pause"
        }
    }
}
