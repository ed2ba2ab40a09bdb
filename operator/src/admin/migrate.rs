//! Moving slots with their keys from one master to another.
//!
//! The standard path (redis-cli's): per slot, IMPORTING on the target,
//! MIGRATING on the source, MIGRATE the keys in batches, then SETSLOT NODE
//! on the target, the source and the other masters. The fast path, when the
//! source is a shardline-node: MIGRATESLOTS on the source, which does all of
//! that itself for many slots at once. Either finishes a move of these slots
//! left open by an interrupted attempt.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::action::ranges_text;
use crate::model::SlotRange;

use super::execute::{ranges_of, slots_of};
use super::{split_addr, Admin, AdminError};

/// Slots per MIGRATESLOTS call (progress is reported between calls).
const FAST_CHUNK: usize = 64;
/// Keys per GETKEYSINSLOT / MIGRATE.
const BATCH: usize = 1000;

/// The slot-independent parts of a move.
struct Move<'a> {
    from: &'a str,
    to: &'a str,
    from_id: String,
    to_id: String,
    to_host: String,
    to_port: u16,
    others: Vec<String>,
    /// Other members that did not answer: not tried again in this move.
    unreachable: BTreeSet<String>,
}

impl Admin {
    /// Moves `slots` with their keys from the master at `from_addr` to the
    /// master at `to_addr`, finishing any move of these slots already under
    /// way; `all_addrs` are the cluster's members (the other masters among
    /// them are told the new owner). `progress(done, total)` is called as
    /// slots are done. Returns the number of keys moved.
    pub async fn move_slots(
        &mut self,
        from_addr: &str,
        to_addr: &str,
        slots: &[SlotRange],
        all_addrs: &[String],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, AdminError> {
        tracing::info!(from = from_addr, to = to_addr, slots = %ranges_text(slots), "move slots");
        let src = self.myself(from_addr).await?;
        let dst = self.myself(to_addr).await?;
        if src.id == dst.id {
            return Err(AdminError::Refused {
                addr: from_addr.to_owned(),
                message: format!("cannot move slots to itself ({to_addr})"),
            });
        }
        let (to_host, to_port) = split_addr(to_addr)?;
        let mut others: Vec<String> = all_addrs
            .iter()
            .filter(|a| a.as_str() != from_addr && a.as_str() != to_addr)
            .cloned()
            .collect();
        others.sort();
        others.dedup();
        let mut mv = Move {
            from: from_addr,
            to: to_addr,
            from_id: src.id.clone(),
            to_id: dst.id.clone(),
            to_host,
            to_port,
            others,
            unreachable: BTreeSet::new(),
        };
        let all = slots_of(slots);
        let total = all.len() as u64;
        let mut todo = Vec::new();
        for &s in &all {
            if !dst.owns(s) {
                todo.push(s);
            } else if src.owns(s) || src.migrating.iter().any(|&(m, _)| m == s) {
                // Handed over on the target but not on the source: an
                // earlier attempt was cut between the two SETSLOT NODE.
                self.set_slot_node(mv.from, s, &mv.to_id).await?;
            }
        }
        let mut done = total - todo.len() as u64;
        progress(done, total);
        let mut moved = 0u64;
        if !todo.is_empty() {
            let fast = self.knows_migrateslots(from_addr).await;
            tracing::info!(
                from = from_addr,
                slots = todo.len(),
                path = if fast { "MIGRATESLOTS" } else { "MIGRATE" },
                "moving"
            );
            if fast {
                for chunk in todo.chunks(FAST_CHUNK) {
                    moved += self.migrate_slots_fast(&mv, chunk).await?;
                    done += chunk.len() as u64;
                    progress(done, total);
                }
            } else {
                for &s in &todo {
                    moved += self.move_slot(&mut mv, s).await?;
                    done += 1;
                    progress(done, total);
                }
            }
        }
        self.confirm_owner(to_addr, &all).await?;
        tracing::info!(
            from = from_addr,
            to = to_addr,
            slots = %ranges_text(slots),
            keys = moved,
            "slots moved"
        );
        Ok(moved)
    }

    async fn knows_migrateslots(&mut self, addr: &str) -> bool {
        let mut c = redis::cmd("COMMAND");
        c.arg("INFO").arg("MIGRATESLOTS");
        match self.query::<redis::Value>(addr, &c).await {
            Ok(redis::Value::Array(entries)) => entries
                .first()
                .is_some_and(|e| !matches!(e, redis::Value::Nil)),
            _ => false,
        }
    }

    /// The fast path: `MIGRATESLOTS` on the source for `slots`.
    async fn migrate_slots_fast(
        &mut self,
        mv: &Move<'_>,
        slots: &[u16],
    ) -> Result<u64, AdminError> {
        let mut c = redis::cmd("MIGRATESLOTS");
        c.arg(&mv.to_host)
            .arg(mv.to_port)
            .arg(self.timeout.as_millis() as u64);
        if let Some(pw) = &self.password {
            c.arg("AUTH").arg(pw);
        }
        c.arg("SLOTSRANGE");
        for (a, b) in ranges_of(slots) {
            c.arg(a).arg(b);
        }
        // It moves every key of the slots: allow for more than one round
        // trip's timeout.
        let within = self.timeout * 10 + Duration::from_secs(30);
        let n: u64 = self.query_within(mv.from, &c, within).await?;
        tracing::debug!(from = mv.from, to = mv.to, keys = n, "MIGRATESLOTS done");
        Ok(n)
    }

    /// The standard path for one slot; returns the keys moved.
    async fn move_slot(&mut self, mv: &mut Move<'_>, slot: u16) -> Result<u64, AdminError> {
        // 1. Open: importing on the target, then migrating on the source.
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg("IMPORTING").arg(&mv.from_id);
        match self.query::<()>(mv.to, &c).await {
            Ok(()) => {}
            Err(e) if e.reply().is_some_and(|r| r.contains("already the owner")) => {
                self.set_slot_node(mv.from, slot, &mv.to_id).await?;
                return Ok(0);
            }
            Err(e) => return Err(e),
        }
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg("MIGRATING").arg(&mv.to_id);
        let _: () = self.query(mv.from, &c).await?;
        // 2. Move the keys.
        let mut moved = 0u64;
        loop {
            let mut c = redis::cmd("CLUSTER");
            c.arg("GETKEYSINSLOT").arg(slot).arg(BATCH);
            let keys: Vec<Vec<u8>> = self.query(mv.from, &c).await?;
            if keys.is_empty() {
                break;
            }
            match self.migrate_keys(mv, &keys, false).await {
                Ok(()) => {}
                Err(e) if e.reply().is_some_and(|r| r.contains("BUSYKEY")) => {
                    tracing::warn!(
                        from = mv.from,
                        to = mv.to,
                        slot,
                        "target already has some of the keys (an earlier attempt was cut): \
                         moving them again with REPLACE"
                    );
                    self.migrate_keys(mv, &keys, true).await?;
                }
                Err(e) => return Err(e),
            }
            moved += keys.len() as u64;
        }
        // 3. Hand over: the target first, then the source, then the rest.
        self.set_slot_node(mv.to, slot, &mv.to_id).await?;
        self.set_slot_node(mv.from, slot, &mv.to_id).await?;
        for addr in mv.others.clone() {
            if mv.unreachable.contains(&addr) {
                continue;
            }
            if let Err(e) = self.set_slot_node(&addr, slot, &mv.to_id).await {
                // A replica refuses; a member that is down is not tried
                // again (gossip tells it).
                if e.reply().is_none() {
                    mv.unreachable.insert(addr.clone());
                }
                tracing::debug!(addr = %addr, slot, error = %e, "SETSLOT NODE on another member");
            }
        }
        Ok(moved)
    }

    async fn migrate_keys(
        &mut self,
        mv: &Move<'_>,
        keys: &[Vec<u8>],
        replace: bool,
    ) -> Result<(), AdminError> {
        let mut c = redis::cmd("MIGRATE");
        c.arg(&mv.to_host)
            .arg(mv.to_port)
            .arg("")
            .arg(0)
            .arg(self.timeout.as_millis() as u64);
        if replace {
            c.arg("REPLACE");
        }
        if let Some(pw) = &self.password {
            c.arg("AUTH").arg(pw);
        }
        c.arg("KEYS");
        for k in keys {
            c.arg(k.as_slice());
        }
        let within = self.timeout * 2;
        let _: redis::Value = self.query_within(mv.from, &c, within).await?;
        Ok(())
    }

    async fn set_slot_node(
        &mut self,
        addr: &str,
        slot: u16,
        node_id: &str,
    ) -> Result<(), AdminError> {
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg("NODE").arg(node_id);
        self.query(addr, &c).await
    }

    /// Polls until the member at `addr` owns every slot of `slots`.
    async fn confirm_owner(&mut self, addr: &str, slots: &[u16]) -> Result<(), AdminError> {
        let deadline = Instant::now() + self.confirm_window();
        loop {
            let me = self.myself(addr).await?;
            let missing: Vec<u16> = slots.iter().copied().filter(|&s| !me.owns(s)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AdminError::NotConfirmed {
                    addr: addr.to_owned(),
                    message: format!(
                        "after the move it does not own slots {}",
                        ranges_text(&ranges_of(&missing))
                    ),
                });
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
}
