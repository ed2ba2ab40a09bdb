//! Replica elections and the votes masters grant, as Redis 7.0 runs them.
//!
//! A replica whose master is FAIL (or that runs a manual failover) waits
//! 500 ms + random(0..500 ms) + rank × 1000 ms, where its rank is the
//! number of sibling replicas with a newer replication offset, then bumps
//! currentEpoch and asks every master for a vote (FAILOVER_AUTH_REQUEST).
//! A master with slots votes at most once per epoch and once per failed
//! master in twice the node timeout, and only for a replica of a failed
//! master (or any replica with FORCEACK) whose claimed slots are not owned
//! with a newer configEpoch. A majority of the masters with slots wins:
//! the winner takes the election epoch as its configEpoch, claims its
//! master's slots and broadcasts a PONG; everyone else follows through
//! PONG and UPDATE.
//!
//! Unlike redis, nothing here waits for the 100 ms cron: the I/O layer
//! wakes the machine at [`Machine::next_wakeup`], and a vote that completes
//! the majority ends the election on arrival.

use rand::Rng;

use super::{Body, Machine, Message, NodeName};
use crate::cluster::wire::{self, mflag, msgtype, nflag, Header};

/// Why a replica that should be failing over is not (redis's
/// CLUSTER_CANT_FAILOVER_* reasons), logged when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CantFailover {
    /// The replication link has been down for too long
    /// (cluster-replica-validity-factor).
    DataAge,
    /// The election is scheduled; waiting for its delay.
    WaitingDelay,
    /// The election timed out; waiting to retry.
    Expired,
    /// The vote request is out; waiting for a majority.
    WaitingVotes,
    /// cluster-replica-no-failover is set.
    Disabled,
}

impl CantFailover {
    pub fn describe(self) -> &'static str {
        match self {
            CantFailover::DataAge => "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
            CantFailover::WaitingDelay => "Waiting the delay before I can start a new failover.",
            CantFailover::Expired => "Failover attempt expired.",
            CantFailover::WaitingVotes => "Waiting for votes, but majority still not reached.",
            CantFailover::Disabled => "Replica failover is disabled by 'cluster-replica-no-failover'.",
        }
    }
}

/// A replica's election state (redis's failover_auth_*).
#[derive(Debug, Default, Clone)]
pub struct Election {
    /// When the election starts (or started); 0 when none was scheduled.
    pub auth_time: u64,
    /// The vote request went out.
    pub auth_sent: bool,
    pub rank: usize,
    /// The epoch the votes are for.
    pub epoch: u64,
    /// Masters that voted for us in `epoch` (distinct: a duplicated ACK
    /// counts once).
    pub voters: Vec<NodeName>,
    pub cant: Option<CantFailover>,
    cant_logged_at: u64,
}

/// Counters shown by INFO.
#[derive(Debug, Default, Clone)]
pub struct FailoverStats {
    pub elections_started: u64,
    pub elections_won: u64,
    pub votes_granted: u64,
    pub votes_refused: u64,
    pub manual_failovers: u64,
    pub manual_failovers_timed_out: u64,
}

/// How often an unchanged "unable to failover" reason is logged again.
const CANT_RELOG_MS: u64 = 10_000;

impl Machine {
    /// The replica's replication link, as the replication layer sees it:
    /// whether it is up, the last time data arrived from the master, and
    /// since when it is down. The election uses it for the data age check.
    pub fn set_repl_link(&mut self, up: bool, last_io: u64, down_since: u64) {
        self.repl_link = (up, last_io, down_since);
    }

    /// How stale our data may be, as redis computes it (the node timeout
    /// is not counted against us).
    fn data_age(&self, now: u64) -> u64 {
        let (up, last_io, down_since) = self.repl_link;
        let age = if up {
            now.saturating_sub(last_io)
        } else {
            now.saturating_sub(down_since)
        };
        let timeout = self.settings.node_timeout;
        if age > timeout {
            age - timeout
        } else {
            age
        }
    }

    /// Our rank among our master's replicas: how many of them that may
    /// fail over have a newer replication offset.
    fn replica_rank(&self) -> usize {
        let me = self.me();
        let Some(master) = me.slaveof else {
            return 0;
        };
        let mine = me.repl_offset;
        self.nodes
            .values()
            .filter(|p| p.name != self.myself && p.is_replica() && p.slaveof == Some(master))
            .filter(|p| !p.has(nflag::NOFAILOVER) && p.repl_offset > mine)
            .count()
    }

    fn cant_failover(&mut self, reason: CantFailover, now: u64) {
        let changed = self.election.cant != Some(reason);
        if changed || now.saturating_sub(self.election.cant_logged_at) > CANT_RELOG_MS {
            self.election.cant = Some(reason);
            self.election.cant_logged_at = now;
            tracing::info!("Currently unable to failover: {}", reason.describe());
        }
    }

    /// redis's clusterHandleSlaveFailover: schedules, starts and concludes
    /// our election when our master failed (or a manual failover may
    /// start). Called from the cron, on every relevant event and at
    /// [`Machine::next_wakeup`].
    pub(crate) fn handle_replica_failover(&mut self, now: u64) {
        let me = self.me();
        if !me.is_replica() {
            return;
        }
        let Some(master) = me.slaveof.and_then(|m| self.nodes.get(&m)) else {
            return;
        };
        let master_failed = master.has(nflag::FAIL);
        let master_slots = master.numslots;
        let manual = self.mf.end != 0 && self.mf.can_start;
        let timeout = self.settings.node_timeout;
        let auth_timeout = (timeout * 2).max(2000);
        let auth_retry = auth_timeout * 2;
        if !(master_failed || manual) || master_slots == 0 {
            self.election.cant = None;
            return;
        }
        if self.settings.replica_no_failover && !manual {
            self.cant_failover(CantFailover::Disabled, now);
            return;
        }
        let factor = self.settings.replica_validity_factor;
        if factor > 0
            && !manual
            && self.data_age(now)
                > self.settings.repl_ping_period_ms + timeout.saturating_mul(factor)
        {
            self.cant_failover(CantFailover::DataAge, now);
            return;
        }
        if now.saturating_sub(self.election.auth_time) > auth_retry {
            // Schedule a new election.
            let rank = self.replica_rank();
            let jitter = self.rng.gen_range(0..500u64);
            let (delay, rank) = if manual {
                (0, 0)
            } else {
                (500 + jitter + rank as u64 * 1000, rank)
            };
            self.election = super::Election {
                auth_time: now + delay,
                rank,
                ..Default::default()
            };
            tracing::info!(
                "Start of election delayed for {delay} milliseconds (rank #{rank}, offset {}).",
                self.me().repl_offset
            );
            // Tell our sibling replicas our offset, so they rank themselves.
            self.broadcast_pong(now, true);
            if !manual {
                return;
            }
        }
        if !self.election.auth_sent && !manual {
            // Siblings may have announced newer offsets meanwhile.
            let rank = self.replica_rank();
            if rank > self.election.rank {
                let added = (rank - self.election.rank) as u64 * 1000;
                self.election.auth_time += added;
                self.election.rank = rank;
                tracing::info!(
                    "Replica rank updated to #{rank}, added {added} milliseconds of delay."
                );
            }
        }
        if now < self.election.auth_time {
            self.cant_failover(CantFailover::WaitingDelay, now);
            return;
        }
        if now - self.election.auth_time > auth_timeout {
            self.cant_failover(CantFailover::Expired, now);
            return;
        }
        if !self.election.auth_sent {
            self.current_epoch += 1;
            self.election.epoch = self.current_epoch;
            // We spend our own vote in this epoch: should we win and turn
            // master, we must not vote for anyone else in the epoch we won
            // (redis leaves this open; a deterministic chaos run found two
            // winners of one epoch through it).
            self.last_vote_epoch = self.current_epoch;
            self.election.auth_sent = true;
            self.election.voters.clear();
            self.stats.elections_started += 1;
            tracing::info!(
                "Starting a failover election for epoch {}.",
                self.current_epoch
            );
            let mut header = self.header(msgtype::AUTH_REQUEST);
            if manual {
                header.mflags |= mflag::FORCEACK;
            }
            self.broadcast(&Message {
                header,
                body: Body::Empty,
            });
            self.save = true;
            return;
        }
        // Count only voters that are still masters with slots: a master
        // replaced since it voted (it may not know yet) shares its shard's
        // say with its successor, and must not count beside it.
        let quorum = self.size() / 2 + 1;
        let votes = self
            .election
            .voters
            .iter()
            .filter(|v| {
                self.nodes
                    .get(*v)
                    .is_some_and(|p| p.is_master() && p.numslots > 0)
            })
            .count();
        if votes < quorum {
            self.cant_failover(CantFailover::WaitingVotes, now);
            return;
        }
        let epoch = self.election.epoch;
        tracing::info!("Failover election won for epoch {epoch}.");
        self.stats.elections_won += 1;
        self.election.cant = None;
        if self.me().config_epoch < epoch {
            self.me_mut().config_epoch = epoch;
            tracing::info!("configEpoch set to {epoch} after successful failover");
        }
        self.replace_my_master(now);
    }

    /// We won (or took over): become a master, claim every slot of our
    /// former master and tell everyone.
    pub(crate) fn replace_my_master(&mut self, now: u64) {
        let me = self.myself;
        let Some(old) = self.me().slaveof.filter(|_| self.me().is_replica()) else {
            return;
        };
        self.set_master_role(&me);
        for slot in 0..wire::SLOTS as u16 {
            if self.owner(slot) == Some(old) {
                self.set_owner(slot, Some(me));
            }
        }
        if let Some(p) = self.nodes.get_mut(&old) {
            p.flags |= nflag::MIGRATE_TO;
        }
        self.update_state(now);
        self.save = true;
        self.map_dirty = true;
        self.broadcast_pong(now, false);
        self.reset_manual_failover();
        // The next election, whenever it comes, starts from scratch.
        self.election = super::Election::default();
    }

    /// PONG to every connected node, or only to the replicas of our master.
    pub(crate) fn broadcast_pong(&mut self, now: u64, siblings_only: bool) {
        let my_master = self.me().slaveof;
        let links: Vec<super::LinkId> = self
            .nodes
            .values()
            .filter(|p| p.name != self.myself && !p.has(nflag::HANDSHAKE))
            .filter(|p| !siblings_only || (p.is_replica() && p.slaveof == my_master))
            .filter_map(|p| p.link)
            .filter(|l| self.link_connected(*l))
            .collect();
        for l in links {
            self.send_ping(l, msgtype::PONG, now);
        }
    }

    /// A link to `name` to answer on: our outbound link when connected,
    /// else the link it talks to us on.
    pub(crate) fn link_to(&self, name: &NodeName) -> Option<super::LinkId> {
        let p = self.nodes.get(name)?;
        p.link
            .filter(|l| self.link_connected(*l))
            .or(p.inbound.filter(|l| self.links.contains_key(l)))
    }

    /// redis's clusterSendFailoverAuthIfNeeded: a master decides whether
    /// to vote for the replica that sent FAILOVER_AUTH_REQUEST.
    pub(crate) fn receive_auth_request(&mut self, sender: NodeName, hdr: &Header, now: u64) {
        let me = self.me();
        if me.is_replica() || me.numslots == 0 {
            return;
        }
        let who = wire::name_str(&sender).to_string();
        let refuse = |m: &mut Machine, why: String| {
            m.stats.votes_refused += 1;
            tracing::info!("Failover auth denied to {who}: {why}");
        };
        if hdr.current_epoch < self.current_epoch {
            let why = format!(
                "reqEpoch ({}) < curEpoch({})",
                hdr.current_epoch, self.current_epoch
            );
            return refuse(self, why);
        }
        if self.last_vote_epoch == self.current_epoch {
            let why = format!("already voted for epoch {}", self.current_epoch);
            return refuse(self, why);
        }
        let force_ack = hdr.mflags & mflag::FORCEACK != 0;
        let Some(node) = self.nodes.get(&sender) else {
            return;
        };
        if node.is_master() {
            return refuse(self, "it is a master node".into());
        }
        let Some(master) = node.slaveof.and_then(|m| self.nodes.get(&m)) else {
            return refuse(self, "I don't know its master".into());
        };
        if !master.has(nflag::FAIL) && !force_ack {
            return refuse(self, "its master is up".into());
        }
        // One vote per failed master in twice the node timeout. Redis
        // notes the rule is not needed for correctness, only to keep
        // competing elections apart; a manual failover (FORCEACK) has no
        // competitor, as its master is paused, so back-to-back manual
        // failovers are not held up by it here.
        let window = 2 * self.settings.node_timeout;
        let since = now.saturating_sub(master.voted_time);
        if !force_ack && master.voted_time != 0 && since < window {
            let why = format!(
                "can't vote about this master before {} milliseconds",
                window - since
            );
            return refuse(self, why);
        }
        let master_name = master.name;
        for slot in hdr.myslots.iter() {
            let Some(owner) = self.owner(slot) else {
                continue;
            };
            let owner_epoch = self.nodes.get(&owner).map_or(0, |p| p.config_epoch);
            if owner_epoch <= hdr.config_epoch {
                continue;
            }
            let why = format!(
                "slot {slot} epoch ({owner_epoch}) > reqEpoch ({})",
                hdr.config_epoch
            );
            return refuse(self, why);
        }
        self.last_vote_epoch = self.current_epoch;
        if let Some(m) = self.nodes.get_mut(&master_name) {
            m.voted_time = now;
        }
        self.save = true;
        self.stats.votes_granted += 1;
        if let Some(link) = self.link_to(&sender) {
            let msg = Message {
                header: self.header(msgtype::AUTH_ACK),
                body: Body::Empty,
            };
            self.send(link, &msg);
        }
        tracing::info!(
            "Failover auth granted to {who} for epoch {}",
            self.current_epoch
        );
    }

    /// A master voted for us.
    pub(crate) fn receive_auth_ack(&mut self, sender: NodeName, hdr: &Header, now: u64) {
        let Some(p) = self.nodes.get(&sender) else {
            return;
        };
        if !p.is_master() || p.numslots == 0 || !self.me().is_replica() {
            return;
        }
        if !self.election.auth_sent || hdr.current_epoch < self.election.epoch {
            return;
        }
        if !self.election.voters.contains(&sender) {
            self.election.voters.push(sender);
        }
        self.handle_replica_failover(now);
    }

    /// When the I/O layer must call [`Machine::poll_failover`] next, if
    /// earlier than the next cron tick would: an election's start, a
    /// manual failover waiting for our replication offset (polled every
    /// few milliseconds), or a manual failover's deadline.
    pub fn next_wakeup(&self, now: u64) -> Option<u64> {
        let mut at: Option<u64> = None;
        let mut want = |t: u64| at = Some(at.map_or(t, |a: u64| a.min(t)));
        if self.me().is_replica() {
            if self.election.auth_time > now && !self.election.auth_sent {
                want(self.election.auth_time);
            }
            if self.mf.end != 0 && !self.mf.can_start && self.mf.master_offset.is_some() {
                want(now + 2);
            }
        }
        if self.mf.end != 0 {
            want(self.mf.end + 1);
        }
        at
    }

    /// Runs the time-driven parts of failover: manual failover timeout,
    /// the replica's offset check, the election.
    pub fn poll_failover(&mut self, now: u64) {
        self.check_manual_failover_timeout(now);
        if self.me().is_replica() {
            self.handle_manual_failover(now);
            self.handle_replica_failover(now);
        }
    }
}

impl Machine {
    /// The failover lines of INFO's cluster section (Shardline's own:
    /// redis shows only cluster_enabled there).
    pub fn failover_info(&self) -> String {
        let e = &self.election;
        let st = &self.stats;
        let election = if !self.me().is_replica() || e.auth_time == 0 {
            "none"
        } else if e.cant == Some(CantFailover::Expired) {
            "expired"
        } else if e.auth_sent {
            "waiting-votes"
        } else {
            "scheduled"
        };
        format!(
            "cluster_current_epoch:{}\r\ncluster_last_vote_epoch:{}\r\n\
             cluster_election_state:{election}\r\ncluster_election_epoch:{}\r\n\
             cluster_election_rank:{}\r\ncluster_election_votes:{}\r\n\
             cluster_elections_started:{}\r\ncluster_elections_won:{}\r\n\
             cluster_votes_granted:{}\r\ncluster_votes_refused:{}\r\n\
             cluster_manual_failover_state:{}\r\ncluster_manual_failovers:{}\r\n\
             cluster_manual_failovers_timed_out:{}\r\n",
            self.current_epoch,
            self.last_vote_epoch,
            e.epoch,
            e.rank,
            e.voters.len(),
            st.elections_started,
            st.elections_won,
            st.votes_granted,
            st.votes_refused,
            self.manual_failover_state(),
            st.manual_failovers,
            st.manual_failovers_timed_out,
        )
    }
}
