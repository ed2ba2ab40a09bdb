//! CLUSTER SETSLOT: the slot states of a migration (MIGRATING on the
//! source, IMPORTING on the target) and the hand-over of a slot (NODE),
//! with redis 7.0's rules and error strings.

use super::{cerr, parse_name_bytes, ClusterError, Machine, HANDOVER_GUARD_MS};
use crate::cluster::wire::{self, NodeName, SLOTS};

/// The action of CLUSTER SETSLOT slot ACTION [node-id].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetSlot {
    Migrating(Vec<u8>),
    Importing(Vec<u8>),
    Stable,
    Node(Vec<u8>),
}

impl SetSlot {
    /// Parses ACTION [node-id] as redis does: a wrong action or a wrong
    /// number of arguments for it is the same error.
    pub fn parse(args: &[&[u8]]) -> Result<SetSlot, ClusterError> {
        let bad = || {
            ClusterError(
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
                    .into(),
            )
        };
        let (action, rest) = args.split_first().ok_or_else(bad)?;
        let action = String::from_utf8_lossy(action).to_ascii_lowercase();
        match (action.as_str(), rest) {
            ("migrating", [id]) => Ok(SetSlot::Migrating(id.to_vec())),
            ("importing", [id]) => Ok(SetSlot::Importing(id.to_vec())),
            ("stable", []) => Ok(SetSlot::Stable),
            ("node", [id]) => Ok(SetSlot::Node(id.to_vec())),
            _ => Err(bad()),
        }
    }
}

impl Machine {
    /// A known master named `id`, or redis's error for SETSLOT.
    fn setslot_target(&self, id: &[u8], unknown: &str) -> Result<NodeName, ClusterError> {
        let Some(n) = parse_name_bytes(id).filter(|n| self.nodes.contains_key(n)) else {
            return cerr(format!("ERR {unknown} {}", String::from_utf8_lossy(id)));
        };
        if self.nodes.get(&n).is_some_and(|p| p.is_replica()) {
            return cerr("ERR Target node is not a master");
        }
        Ok(n)
    }

    /// CLUSTER SETSLOT. `keys_in_slot` is the number of keys we hold in
    /// the slot (db 0), which the NODE form checks.
    pub fn set_slot(
        &mut self,
        slot: u16,
        action: &SetSlot,
        keys_in_slot: usize,
        now: u64,
    ) -> Result<(), ClusterError> {
        if self.me().is_replica() {
            return cerr("ERR Please use SETSLOT only with masters.");
        }
        if slot as usize >= SLOTS {
            return cerr("ERR Invalid or out of range slot");
        }
        let me = self.myself;
        self.handed_over.remove(&slot);
        match action {
            SetSlot::Migrating(id) => {
                if self.owner(slot) != Some(me) {
                    return cerr(format!("ERR I'm not the owner of hash slot {slot}"));
                }
                let to = self.setslot_target(id, "I don't know about node")?;
                self.migrating.insert(slot, to);
                tracing::info!("slot {slot} migrating to {}", wire::name_str(&to));
            }
            SetSlot::Importing(id) => {
                if self.owner(slot) == Some(me) {
                    return cerr(format!("ERR I'm already the owner of hash slot {slot}"));
                }
                let from = self.setslot_target(id, "I don't know about node")?;
                self.importing.insert(slot, from);
                tracing::info!("slot {slot} importing from {}", wire::name_str(&from));
            }
            SetSlot::Stable => {
                self.importing.remove(&slot);
                self.migrating.remove(&slot);
            }
            SetSlot::Node(id) => {
                let n = self.setslot_target(id, "Unknown node")?;
                let was_mine = self.owner(slot) == Some(me);
                if was_mine && n != me && keys_in_slot != 0 {
                    return cerr(format!(
                        "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    ));
                }
                if keys_in_slot == 0 {
                    self.migrating.remove(&slot);
                }
                self.set_owner(slot, Some(n));
                tracing::info!("slot {slot} assigned to {}", wire::name_str(&n));
                if was_mine
                    && n != me
                    && self.me().numslots == 0
                    && self.settings.allow_replica_migration
                {
                    tracing::warn!(
                        "configuration change detected: reconfiguring as a replica of {}",
                        wire::name_str(&n)
                    );
                    self.importing.clear();
                    self.migrating.clear();
                    self.set_replica_role(&me, n);
                    if let Some(p) = self.nodes.get_mut(&me) {
                        p.slaveof = Some(n);
                    }
                    self.reset_manual_failover();
                    self.save = true;
                    self.broadcast_pong(now, false);
                }
                let imported_from = if n == me {
                    self.importing.remove(&slot)
                } else {
                    None
                };
                if let Some(from) = imported_from {
                    self.handed_over
                        .insert(slot, (Some(from), now + HANDOVER_GUARD_MS));
                    // A slot moved by hand: a new configEpoch lets the
                    // change win over the old owner's claim everywhere.
                    let (bumped, e) = self.bump_epoch();
                    if bumped {
                        tracing::warn!("configEpoch updated to {e} after importing slot {slot}");
                    }
                    self.broadcast_pong(now, false);
                }
            }
        }
        // Migration states need not survive a power loss (redis does not
        // fsync them either); an epoch bump above is saved durably.
        self.save_soft = true;
        self.map_dirty = true;
        self.update_state(now);
        Ok(())
    }

    /// The endpoint-independent view of open slots for the slot map:
    /// migrating slots with their target, and importing slots.
    pub fn open_slots(&self) -> (Vec<(u16, NodeName)>, Vec<u16>) {
        (
            self.migrating.iter().map(|(s, n)| (*s, *n)).collect(),
            self.importing.keys().copied().collect(),
        )
    }
}
