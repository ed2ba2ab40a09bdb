//! Observing members: what each one reports about the cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::task::JoinSet;

use crate::model::{Member, MemberName, MemberView, Observed, PlatformMember};

use super::parse::{parse_cluster_info, parse_cluster_nodes, parse_info_replication};
use super::{cluster, connect, query_on, Admin, AdminError};

/// Everything one member reports, read on `conn`.
async fn observe_on(
    conn: &mut MultiplexedConnection,
    addr: &str,
    timeout: Duration,
) -> Result<MemberView, AdminError> {
    let text: String = query_on(conn, addr, &cluster(&["NODES"]), timeout).await?;
    let nodes = parse_cluster_nodes(&text)?;
    let text: String = query_on(conn, addr, &cluster(&["INFO"]), timeout).await?;
    let info = parse_cluster_info(&text)?;
    let mut c = redis::cmd("INFO");
    c.arg("replication");
    let text: String = query_on(conn, addr, &c, timeout).await?;
    let repl = parse_info_replication(&text)?;
    let mut keys_in_slot = BTreeMap::new();
    if let Some(me) = nodes.iter().find(|n| n.myself) {
        let open: Vec<u16> = me
            .migrating
            .iter()
            .chain(&me.importing)
            .map(|&(s, _)| s)
            .collect();
        for s in open {
            let mut c = redis::cmd("CLUSTER");
            c.arg("COUNTKEYSINSLOT").arg(s);
            let n: u64 = query_on(conn, addr, &c, timeout).await?;
            keys_in_slot.insert(s, n);
        }
    }
    let mut c = redis::cmd("COMMAND");
    c.arg("INFO").arg("MIGRATESLOTS");
    let entry: redis::Value = query_on(conn, addr, &c, timeout).await?;
    Ok(MemberView {
        nodes,
        state_ok: info.state_ok,
        current_epoch: info.current_epoch,
        repl,
        keys_in_slot,
        migrateslots: command_known(&entry),
    })
}

/// `COMMAND INFO name` lists a non-nil entry.
fn command_known(reply: &redis::Value) -> bool {
    match reply {
        redis::Value::Array(entries) => entries
            .first()
            .is_some_and(|e| !matches!(e, redis::Value::Nil)),
        _ => false,
    }
}

impl Admin {
    /// Everything the member at `addr` reports: CLUSTER NODES, CLUSTER
    /// INFO, INFO replication, the keys in each of its open slots, and
    /// whether it knows MIGRATESLOTS.
    pub async fn observe_member(&mut self, addr: &str) -> Result<MemberView, AdminError> {
        let mut conn = self.conn(addr).await?;
        let r = observe_on(&mut conn, addr, self.timeout).await;
        if r.is_err() {
            self.conns.remove(addr);
        }
        r
    }

    /// Observes every running member at once. A member that does not
    /// answer has no view and keeps the node ID `previous` knew for it.
    pub async fn observe(
        &mut self,
        platform: Vec<PlatformMember>,
        previous: &Observed,
    ) -> Observed {
        let mut tasks = JoinSet::new();
        for (i, p) in platform.iter().enumerate() {
            if !p.running {
                continue;
            }
            let addr = p.addr.clone();
            let cached = self.conns.get(&addr).cloned();
            let password = self.password.clone();
            let timeout = self.timeout;
            tasks.spawn(async move {
                let conn = match cached {
                    Some(c) => Ok(c),
                    None => connect(&addr, password.as_deref(), timeout).await,
                };
                let r = match conn {
                    Ok(mut c) => observe_on(&mut c, &addr, timeout)
                        .await
                        .map(|view| (view, c)),
                    Err(e) => Err(e),
                };
                (i, r)
            });
        }
        let mut views: BTreeMap<usize, MemberView> = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, r)) = joined else {
                continue;
            };
            let Some(p) = platform.get(i) else {
                continue;
            };
            match r {
                Ok((view, conn)) => {
                    self.conns.insert(p.addr.clone(), conn);
                    views.insert(i, view);
                }
                Err(e) => {
                    tracing::debug!(member = %p.name, addr = %p.addr, error = %e, "no answer");
                    self.conns.remove(&p.addr);
                }
            }
        }
        let mut members: BTreeMap<MemberName, Member> = BTreeMap::new();
        for (i, p) in platform.into_iter().enumerate() {
            let view = views.remove(&i);
            let node_id = view
                .as_ref()
                .and_then(MemberView::myself)
                .map(|n| n.id.clone())
                .or_else(|| {
                    previous
                        .members
                        .get(&p.name)
                        .and_then(|m| m.node_id.clone())
                });
            members.insert(
                p.name,
                Member {
                    platform: p,
                    view,
                    node_id,
                },
            );
        }
        Observed { members }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_info_reply() {
        assert!(!command_known(&redis::Value::Array(vec![
            redis::Value::Nil
        ])));
        assert!(!command_known(&redis::Value::Array(vec![])));
        assert!(command_known(&redis::Value::Array(vec![
            redis::Value::Array(vec![redis::Value::BulkString(b"migrateslots".to_vec())])
        ])));
    }
}
