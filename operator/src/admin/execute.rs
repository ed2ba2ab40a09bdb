//! Executing cluster actions (slot moves aside, see `migrate`), each
//! verified by reading back its effect.

use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::action::ranges_text;
use crate::model::{ClusterNode, Replication, Role, SlotRange};

use super::parse::{parse_cluster_nodes, parse_info_replication};
use super::{cluster, split_addr, Admin, AdminError};

/// How often a verification polls.
const POLL: Duration = Duration::from_millis(100);
/// The least time a verification waits for an effect to show.
const CONFIRM: Duration = Duration::from_secs(5);

/// Sorted, merged ranges (for comparing slot sets).
pub(crate) fn normalize(ranges: &[SlotRange]) -> Vec<SlotRange> {
    let mut r: Vec<SlotRange> = ranges.to_vec();
    r.sort_unstable();
    let mut out: Vec<SlotRange> = Vec::with_capacity(r.len());
    for (a, b) in r {
        match out.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Every slot of `ranges`.
pub(crate) fn slots_of(ranges: &[SlotRange]) -> Vec<u16> {
    normalize(ranges)
        .into_iter()
        .flat_map(|(a, b)| a..=b)
        .collect()
}

/// Slots as ranges.
pub(crate) fn ranges_of(slots: &[u16]) -> Vec<SlotRange> {
    let r: Vec<SlotRange> = slots.iter().map(|&s| (s, s)).collect();
    normalize(&r)
}

impl Admin {
    /// The time a verification waits for an effect to show.
    pub(crate) fn confirm_window(&self) -> Duration {
        self.timeout.max(CONFIRM)
    }

    /// CLUSTER NODES of `addr`.
    pub(crate) async fn nodes(&mut self, addr: &str) -> Result<Vec<ClusterNode>, AdminError> {
        let text: String = self.query(addr, &cluster(&["NODES"])).await?;
        parse_cluster_nodes(&text)
    }

    /// The `myself` line of CLUSTER NODES of `addr`.
    pub(crate) async fn myself(&mut self, addr: &str) -> Result<ClusterNode, AdminError> {
        self.nodes(addr)
            .await?
            .into_iter()
            .find(|n| n.myself)
            .ok_or_else(|| AdminError::Parse {
                what: "CLUSTER NODES",
                message: format!("{addr}: no `myself` line"),
            })
    }

    /// INFO replication of `addr`.
    pub(crate) async fn replication(&mut self, addr: &str) -> Result<Replication, AdminError> {
        let mut c = redis::cmd("INFO");
        c.arg("replication");
        let text: String = self.query(addr, &c).await?;
        parse_info_replication(&text)
    }

    /// `CLUSTER MEET` on `on_addr` for `target_addr`; confirmed once
    /// `on_addr` lists a node at `target_addr` out of handshake.
    pub async fn meet(&mut self, on_addr: &str, target_addr: &str) -> Result<(), AdminError> {
        tracing::info!(on = on_addr, target = target_addr, "CLUSTER MEET");
        let (ip, port) = split_addr(target_addr)?;
        let known = |nodes: &[ClusterNode]| {
            nodes
                .iter()
                .any(|n| n.addr == target_addr && !n.handshake && !n.noaddr)
        };
        if known(&self.nodes(on_addr).await?) {
            tracing::info!(on = on_addr, target = target_addr, "already known");
            return Ok(());
        }
        let mut c = redis::cmd("CLUSTER");
        c.arg("MEET").arg(&ip).arg(port);
        let _: () = self.query(on_addr, &c).await?;
        let deadline = Instant::now() + self.confirm_window();
        loop {
            let seen: String = match self.nodes(on_addr).await {
                Ok(nodes) if known(&nodes) => return Ok(()),
                Ok(nodes) => match nodes.iter().find(|n| n.addr == target_addr) {
                    Some(n) if n.handshake => "the node still in handshake".into(),
                    Some(_) => "the node without an address".into(),
                    None => "no node at that address".into(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(AdminError::NotConfirmed {
                    addr: on_addr.to_owned(),
                    message: format!("CLUSTER MEET {target_addr} not confirmed: saw {seen}"),
                });
            }
            sleep(POLL).await;
        }
    }

    /// `CLUSTER ADDSLOTSRANGE` on `on_addr` for the slots of `ranges` it
    /// does not own yet; confirmed once its `myself` owns them all.
    pub async fn add_slots(
        &mut self,
        on_addr: &str,
        ranges: &[SlotRange],
    ) -> Result<(), AdminError> {
        tracing::info!(on = on_addr, slots = %ranges_text(ranges), "CLUSTER ADDSLOTSRANGE");
        let me = self.myself(on_addr).await?;
        let missing: Vec<u16> = slots_of(ranges)
            .into_iter()
            .filter(|&s| !me.owns(s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut c = redis::cmd("CLUSTER");
        c.arg("ADDSLOTSRANGE");
        for (a, b) in ranges_of(&missing) {
            c.arg(a).arg(b);
        }
        let _: () = self.query(on_addr, &c).await?;
        let me = self.myself(on_addr).await?;
        let still: Vec<u16> = missing.into_iter().filter(|&s| !me.owns(s)).collect();
        if still.is_empty() {
            Ok(())
        } else {
            Err(AdminError::NotConfirmed {
                addr: on_addr.to_owned(),
                message: format!(
                    "after ADDSLOTSRANGE it does not own {}",
                    ranges_text(&ranges_of(&still))
                ),
            })
        }
    }

    /// `CLUSTER REPLICATE master_id` on `on_addr`; confirmed once its
    /// `myself` is a replica of that master.
    pub async fn replicate(&mut self, on_addr: &str, master_id: &str) -> Result<(), AdminError> {
        tracing::info!(on = on_addr, master = master_id, "CLUSTER REPLICATE");
        let is_done = |me: &ClusterNode| !me.master && me.master_id.as_deref() == Some(master_id);
        let me = self.myself(on_addr).await?;
        if is_done(&me) {
            return Ok(());
        }
        if me.master && me.slot_count() > 0 {
            return Err(AdminError::Refused {
                addr: on_addr.to_owned(),
                message: format!(
                    "cannot replicate {master_id}: it still owns slots {}",
                    ranges_text(&me.slots)
                ),
            });
        }
        let mut c = redis::cmd("CLUSTER");
        c.arg("REPLICATE").arg(master_id);
        let _: () = self.query(on_addr, &c).await?;
        let deadline = Instant::now() + self.confirm_window();
        loop {
            let me = self.myself(on_addr).await?;
            if is_done(&me) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AdminError::NotConfirmed {
                    addr: on_addr.to_owned(),
                    message: format!(
                        "after CLUSTER REPLICATE {master_id} it is a {} of {}",
                        if me.master { "master" } else { "replica" },
                        me.master_id.as_deref().unwrap_or("-")
                    ),
                });
            }
            sleep(POLL).await;
        }
    }

    /// `CLUSTER FORGET node_id` on every address of `member_addrs` but the
    /// node itself. A member that does not know the node already forgot
    /// it. Every address is tried; the failures are reported together.
    pub async fn forget(
        &mut self,
        node_id: &str,
        member_addrs: &[String],
    ) -> Result<(), AdminError> {
        tracing::info!(node = node_id, "CLUSTER FORGET everywhere");
        let mut failures = Vec::new();
        for addr in member_addrs {
            if let Err(e) = self.forget_on(addr, node_id).await {
                failures.push(e.to_string());
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(AdminError::NotConfirmed {
                addr: member_addrs.join(","),
                message: format!("CLUSTER FORGET {node_id}: {}", failures.join("; ")),
            })
        }
    }

    async fn forget_on(&mut self, addr: &str, node_id: &str) -> Result<(), AdminError> {
        let nodes = self.nodes(addr).await?;
        if nodes.iter().any(|n| n.myself && n.id == node_id) {
            return Ok(());
        }
        if let Some(me) = nodes.iter().find(|n| n.myself) {
            if me.master_id.as_deref() == Some(node_id) {
                return Err(AdminError::Refused {
                    addr: addr.to_owned(),
                    message: format!("Can't forget my master {node_id}"),
                });
            }
        }
        if !nodes.iter().any(|n| n.id == node_id) {
            return Ok(());
        }
        let mut c = redis::cmd("CLUSTER");
        c.arg("FORGET").arg(node_id);
        match self.query::<()>(addr, &c).await {
            Ok(()) => {}
            Err(e) if e.reply().is_some_and(|r| r.contains("Unknown node")) => {}
            Err(e) => return Err(e),
        }
        if self.nodes(addr).await?.iter().any(|n| n.id == node_id) {
            return Err(AdminError::NotConfirmed {
                addr: addr.to_owned(),
                message: format!("still lists {node_id} after CLUSTER FORGET"),
            });
        }
        Ok(())
    }

    /// `CONFIG SET directive value` on `on_addr`.
    pub async fn config_set(
        &mut self,
        on_addr: &str,
        directive: &str,
        value: &str,
    ) -> Result<(), AdminError> {
        tracing::debug!(on = on_addr, directive, value, "CONFIG SET");
        let mut c = redis::cmd("CONFIG");
        c.arg("SET").arg(directive).arg(value);
        let _: () = self.query(on_addr, &c).await?;
        Ok(())
    }

    /// `CLUSTER SETSLOT slot STABLE` on `on_addr`.
    pub async fn stable_slot(&mut self, on_addr: &str, slot: u16) -> Result<(), AdminError> {
        tracing::info!(on = on_addr, slot, "CLUSTER SETSLOT STABLE");
        let mut c = redis::cmd("CLUSTER");
        c.arg("SETSLOT").arg(slot).arg("STABLE");
        let _: () = self.query(on_addr, &c).await?;
        let me = self.myself(on_addr).await?;
        if me
            .migrating
            .iter()
            .chain(&me.importing)
            .any(|&(s, _)| s == slot)
        {
            return Err(AdminError::NotConfirmed {
                addr: on_addr.to_owned(),
                message: format!("slot {slot} still open after SETSLOT STABLE"),
            });
        }
        Ok(())
    }

    /// `CLUSTER FAILOVER` (default mode) on the replica at `replica_addr`
    /// of the master at `master_addr`. Confirmed, within `timeout`, once
    /// the replica is a master owning the old master's slots and the old
    /// master is its replica, link up, at the same offset. Done already
    /// (a retry) is success.
    pub async fn failover(
        &mut self,
        replica_addr: &str,
        master_addr: &str,
        timeout: Duration,
    ) -> Result<(), AdminError> {
        tracing::info!(
            replica = replica_addr,
            master = master_addr,
            "CLUSTER FAILOVER"
        );
        let replica_me = self.myself(replica_addr).await?;
        let master_me = self.myself(master_addr).await?;
        // The slots that move: the master's, as it (or, after a completed
        // failover, the replica) sees them.
        let slots = if master_me.master {
            normalize(&master_me.slots)
        } else {
            normalize(&replica_me.slots)
        };
        let deadline = Instant::now() + timeout;
        if !replica_me.master {
            if replica_me.master_id.as_deref() != Some(master_me.id.as_str()) {
                return Err(AdminError::Refused {
                    addr: replica_addr.to_owned(),
                    message: format!(
                        "is not a replica of {master_addr} ({}) but of {}",
                        master_me.id,
                        replica_me.master_id.as_deref().unwrap_or("-")
                    ),
                });
            }
            let _: () = self.query(replica_addr, &cluster(&["FAILOVER"])).await?;
        }
        loop {
            let seen = self
                .failover_state(replica_addr, master_addr, &replica_me.id, &slots)
                .await;
            match seen {
                Ok(None) => {
                    tracing::info!(
                        replica = replica_addr,
                        master = master_addr,
                        "failover confirmed"
                    );
                    return Ok(());
                }
                Ok(Some(what)) | Err(AdminError::Refused { message: what, .. }) => {
                    if Instant::now() >= deadline {
                        return Err(AdminError::NotConfirmed {
                            addr: replica_addr.to_owned(),
                            message: format!(
                                "failover from {master_addr} not confirmed after {timeout:?}: {what}"
                            ),
                        });
                    }
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(AdminError::NotConfirmed {
                            addr: replica_addr.to_owned(),
                            message: format!(
                                "failover from {master_addr} not confirmed after {timeout:?}: {e}"
                            ),
                        });
                    }
                }
            }
            sleep(POLL).await;
        }
    }

    /// `None` when the failover is complete, else what is still missing.
    async fn failover_state(
        &mut self,
        new_addr: &str,
        old_addr: &str,
        new_id: &str,
        slots: &[SlotRange],
    ) -> Result<Option<String>, AdminError> {
        let new_repl = self.replication(new_addr).await?;
        if new_repl.role != Role::Master {
            return Ok(Some(format!("{new_addr} still reports role slave")));
        }
        let new_me = self.myself(new_addr).await?;
        if !new_me.master {
            return Ok(Some(format!(
                "{new_addr} is not a master in its CLUSTER NODES"
            )));
        }
        if normalize(&new_me.slots) != slots {
            return Ok(Some(format!(
                "{new_addr} owns slots `{}`, expected `{}`",
                ranges_text(&new_me.slots),
                ranges_text(slots)
            )));
        }
        let old_repl = self.replication(old_addr).await?;
        if old_repl.role != Role::Replica {
            return Ok(Some(format!("{old_addr} still reports role master")));
        }
        if old_repl.master_addr.as_deref() != Some(new_addr) {
            return Ok(Some(format!(
                "{old_addr} replicates {}",
                old_repl.master_addr.as_deref().unwrap_or("nothing")
            )));
        }
        if !old_repl.link_up {
            return Ok(Some(format!("{old_addr}'s link to {new_addr} is down")));
        }
        let old_me = self.myself(old_addr).await?;
        if old_me.master || old_me.master_id.as_deref() != Some(new_id) {
            return Ok(Some(format!(
                "{old_addr}'s CLUSTER NODES does not show it as a replica of {new_id}"
            )));
        }
        // The new master's offset, read after the old master's, can only
        // be ahead: equal means caught up.
        let new_offset = self.replication(new_addr).await?.offset;
        if old_repl.offset != new_offset {
            return Ok(Some(format!(
                "{old_addr} at offset {}, {new_addr} at {new_offset}",
                old_repl.offset
            )));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            normalize(&[(5, 9), (0, 4), (20, 20), (8, 12)]),
            vec![(0, 12), (20, 20)]
        );
        assert_eq!(slots_of(&[(3, 5), (1, 1)]), vec![1, 3, 4, 5]);
        assert_eq!(
            ranges_of(&[1, 2, 3, 7, 9, 10]),
            vec![(1, 3), (7, 7), (9, 10)]
        );
        assert_eq!(normalize(&[(16383, 16383), (0, 16382)]), vec![(0, 16383)]);
    }
}
