//! Replica migration: a replica of a well-covered master moves to a master
//! left without working replicas (an orphan), as redis's
//! clusterHandleSlaveMigration does. Only masters that had replicas
//! (MIGRATE_TO) count as orphans; the master we leave must keep more than
//! cluster-migration-barrier working replicas; among the replicas of the
//! best-covered masters only the one with the smallest name moves, and
//! only after the orphan has been orphaned for 5 s.

use super::{Machine, NodeName};
use crate::cluster::wire::{self, nflag};

/// How long a master must be orphaned before a replica moves to it.
const MIGRATION_DELAY_MS: u64 = 5000;

impl Machine {
    /// Replicas of `master` not flagged FAIL.
    fn working_replicas(&self, master: &NodeName) -> usize {
        self.nodes
            .values()
            .filter(|p| p.is_replica() && p.slaveof == Some(*master) && !p.has(nflag::FAIL))
            .count()
    }

    /// From the cron, on a replica: maybe move to an orphaned master.
    pub(crate) fn handle_replica_migration(&mut self, now: u64) {
        let me = self.me();
        if !me.is_replica() || !self.settings.allow_replica_migration || !self.state_ok {
            return;
        }
        let Some(my_master) = me.slaveof.filter(|m| self.nodes.contains_key(m)) else {
            return;
        };
        // Orphans, the best coverage of any master, and ours.
        let mut orphans = 0;
        let mut max_replicas = 0;
        let mut mine = 0;
        for p in self.nodes.values() {
            if p.is_master() && !p.has(nflag::FAIL) {
                let ok = self.working_replicas(&p.name);
                if ok == 0 && p.numslots > 0 && p.has(nflag::MIGRATE_TO) {
                    orphans += 1;
                }
                max_replicas = max_replicas.max(ok);
                if p.name == my_master {
                    mine = ok;
                }
            }
        }
        if orphans == 0 || max_replicas < 2 || mine != max_replicas {
            return;
        }
        if mine <= self.settings.migration_barrier {
            return;
        }
        // The orphan to move to, and the candidate among the replicas of
        // the best-covered masters: the smallest name.
        let mut target: Option<NodeName> = None;
        let mut candidate = self.myself;
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        for name in names {
            let Some(p) = self.nodes.get(&name) else {
                continue;
            };
            let ok = if p.is_master() {
                self.working_replicas(&name)
            } else {
                0
            };
            let orphaned =
                p.is_master() && !p.has(nflag::FAIL) && p.has(nflag::MIGRATE_TO) && ok == 0;
            let numslots = p.numslots;
            if orphaned {
                if target.is_none() && numslots > 0 {
                    target = Some(name);
                }
                if let Some(p) = self.nodes.get_mut(&name) {
                    if p.orphaned_time == 0 {
                        p.orphaned_time = now;
                    }
                }
            } else if let Some(p) = self.nodes.get_mut(&name) {
                p.orphaned_time = 0;
            }
            if p_is_master_with(self, &name) && ok == max_replicas {
                for r in self.nodes.values() {
                    if r.is_replica() && r.slaveof == Some(name) && r.name < candidate {
                        candidate = r.name;
                    }
                }
            }
        }
        let Some(target) = target else {
            return;
        };
        let since = self
            .nodes
            .get(&target)
            .map_or(0, |p| now.saturating_sub(p.orphaned_time));
        if candidate == self.myself && since > MIGRATION_DELAY_MS {
            tracing::info!("Migrating to orphaned master {}", wire::name_str(&target));
            let me = self.myself;
            self.reset_manual_failover();
            self.set_replica_role(&me, target);
            if let Some(p) = self.nodes.get_mut(&me) {
                p.slaveof = Some(target);
            }
            self.save = true;
            self.map_dirty = true;
            self.broadcast_pong(now, false);
        }
    }
}

fn p_is_master_with(m: &Machine, name: &NodeName) -> bool {
    m.nodes.get(name).is_some_and(|p| p.is_master())
}
