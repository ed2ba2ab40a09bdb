//! Parsers for CLUSTER NODES, CLUSTER INFO and INFO replication (pure).

use crate::model::{ClusterNode, ReplicaLink, Replication, Role, SLOTS};

use super::AdminError;

fn parse_err(what: &'static str, message: String) -> AdminError {
    AdminError::Parse { what, message }
}

fn slot_number(text: &str, line: &str) -> Result<u16, AdminError> {
    match text.parse::<u16>() {
        Ok(s) if s < SLOTS => Ok(s),
        _ => Err(parse_err(
            "CLUSTER NODES",
            format!("bad slot `{text}` in `{line}`"),
        )),
    }
}

/// `ip:port@cport[,hostname]` to `ip:port`; empty for a node without an
/// address (`:0@0`, or `:port@cport` for a node that has not learned its own
/// address yet).
fn node_addr(field: &str) -> String {
    let field = field.split(',').next().unwrap_or_default();
    let hostport = field.split('@').next().unwrap_or_default();
    match hostport.rsplit_once(':') {
        Some((ip, port)) if !ip.is_empty() && port != "0" && !port.is_empty() => {
            hostport.to_owned()
        }
        _ => String::new(),
    }
}

/// Parses one line of CLUSTER NODES.
fn parse_node_line(line: &str) -> Result<ClusterNode, AdminError> {
    let bad = |m: &str| parse_err("CLUSTER NODES", format!("{m} in `{line}`"));
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.len() < 8 {
        return Err(bad("fewer than 8 fields"));
    }
    let id = fields[0];
    if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("bad node id"));
    }
    let mut node = ClusterNode {
        id: id.to_owned(),
        addr: node_addr(fields[1]),
        ..ClusterNode::default()
    };
    for flag in fields[2].split(',') {
        match flag {
            "myself" => node.myself = true,
            "master" => node.master = true,
            "slave" => node.master = false,
            "fail" => node.fail = true,
            "fail?" => node.pfail = true,
            "handshake" => node.handshake = true,
            "noaddr" => node.noaddr = true,
            // nofailover, noflags and anything newer: not modelled.
            _ => {}
        }
    }
    if fields[3] != "-" {
        node.master_id = Some(fields[3].to_owned());
    }
    node.config_epoch = fields[6].parse().map_err(|_| bad("bad config epoch"))?;
    node.connected = match fields[7] {
        "connected" => true,
        "disconnected" => false,
        _ => return Err(bad("bad link state")),
    };
    for slot in &fields[8..] {
        if let Some(open) = slot.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if let Some((s, id)) = open.split_once("->-") {
                node.migrating.push((slot_number(s, line)?, id.to_owned()));
            } else if let Some((s, id)) = open.split_once("-<-") {
                node.importing.push((slot_number(s, line)?, id.to_owned()));
            } else {
                return Err(bad("bad open slot"));
            }
        } else if let Some((a, b)) = slot.split_once('-') {
            let (a, b) = (slot_number(a, line)?, slot_number(b, line)?);
            if a > b {
                return Err(bad("bad slot range"));
            }
            node.slots.push((a, b));
        } else {
            let s = slot_number(slot, line)?;
            node.slots.push((s, s));
        }
    }
    Ok(node)
}

/// Parses CLUSTER NODES.
pub fn parse_cluster_nodes(text: &str) -> Result<Vec<ClusterNode>, AdminError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(parse_node_line)
        .collect()
}

/// `key:value` lines of an INFO section.
fn info_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
}

/// Parses INFO replication.
pub fn parse_info_replication(text: &str) -> Result<Replication, AdminError> {
    let bad = |m: String| parse_err("INFO replication", m);
    let mut role = None;
    let (mut host, mut port) = (None, None);
    let mut link_up = false;
    let (mut master_offset, mut replica_offset) = (None, None);
    let mut replicas = Vec::new();
    for (key, value) in info_fields(text) {
        match key {
            "role" => {
                role = Some(match value {
                    "master" => Role::Master,
                    "slave" => Role::Replica,
                    _ => return Err(bad(format!("unknown role `{value}`"))),
                })
            }
            "master_host" => host = Some(value),
            "master_port" => port = Some(value),
            "master_link_status" => link_up = value == "up",
            "master_repl_offset" => {
                master_offset = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| bad(format!("bad master_repl_offset `{value}`")))?,
                )
            }
            "slave_repl_offset" => replica_offset = value.parse::<i64>().ok(),
            k if k.len() > 5
                && k.starts_with("slave")
                && k[5..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                replicas.push(parse_replica_link(value).map_err(bad)?);
            }
            _ => {}
        }
    }
    let role = role.ok_or_else(|| bad("no role".to_owned()))?;
    let master_addr = match (role, host, port) {
        (Role::Replica, Some(h), Some(p)) => Some(format!("{h}:{p}")),
        _ => None,
    };
    let offset = match role {
        Role::Replica => replica_offset.or(master_offset),
        Role::Master => master_offset,
    }
    .unwrap_or(0);
    Ok(Replication {
        role,
        master_addr,
        link_up: role == Role::Replica && link_up,
        offset,
        replicas,
    })
}

/// `ip=..,port=..,state=online,offset=..,lag=..`
fn parse_replica_link(value: &str) -> Result<ReplicaLink, String> {
    let (mut ip, mut port, mut online, mut offset) = (None, None, false, 0);
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("ip", v)) => ip = Some(v),
            Some(("port", v)) => port = Some(v),
            Some(("state", v)) => online = v == "online",
            Some(("offset", v)) => offset = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(ReplicaLink {
            addr: format!("{ip}:{port}"),
            online,
            offset,
        }),
        _ => Err(format!("bad replica line `{value}`")),
    }
}

/// CLUSTER INFO, the parts the operator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `cluster_state:ok`.
    pub state_ok: bool,
    pub current_epoch: u64,
}

/// Parses CLUSTER INFO.
pub fn parse_cluster_info(text: &str) -> Result<ClusterInfo, AdminError> {
    let bad = |m: String| parse_err("CLUSTER INFO", m);
    let (mut state, mut epoch) = (None, None);
    for (key, value) in info_fields(text) {
        match key {
            "cluster_state" => state = Some(value == "ok"),
            "cluster_current_epoch" => {
                epoch = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| bad(format!("bad cluster_current_epoch `{value}`")))?,
                )
            }
            _ => {}
        }
    }
    Ok(ClusterInfo {
        state_ok: state.ok_or_else(|| bad("no cluster_state".to_owned()))?,
        current_epoch: epoch.ok_or_else(|| bad("no cluster_current_epoch".to_owned()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // redis-server 7.0, a master with an open slot, a replica, a node
    // whose address is unknown, a failed node and one in handshake.
    const REDIS_NODES: &str = "\
e148a22d7f2841687e03f246b2bde45d2cf014a7 127.0.79.3:7103@17103 master - 0 1796409650852 2 connected 5461-10922 [93-<-fc3a2c439a2ae3b74073f235d7f27ebc76a6c704]
fc3a2c439a2ae3b74073f235d7f27ebc76a6c704 127.0.79.2:7102@17102,node-2.example master - 0 1796409651253 0 connected 0-92 [93->-e148a22d7f2841687e03f246b2bde45d2cf014a7] 93-5460 16383
acf36e1ad2c23f4bd9d4f8c06ef35774c229fd26 :7101@17101 myself,slave fc3a2c439a2ae3b74073f235d7f27ebc76a6c704 0 0 1 connected
94756430393e8c18bc66ceb8aa05201b45209c07 :0@0 master,fail,noaddr - 1796409648857 1796409648757 3 disconnected 10923-16382
11b88d98c5ff8597e4df3c6c1d5ee35f5ba75169 127.0.79.5:7105@17105 slave,fail?,nofailover 94756430393e8c18bc66ceb8aa05201b45209c07 0 0 3 connected
c137228e385fe05e7cb1328da757f92b44212dec 127.0.79.6:7106@17106 handshake - 0 0 0 disconnected
";

    // shardline-node.
    const SHARDLINE_NODES: &str = "\
11b88d98c5ff8597e4df3c6c1d5ee35f5ba75169 127.0.79.2:7102@17102 myself,slave 94756430393e8c18bc66ceb8aa05201b45209c07 0 1796409719000 1 connected
94756430393e8c18bc66ceb8aa05201b45209c07 127.0.79.1:7111@17111 master - 0 1796409719679 1 connected 0-16383
c137228e385fe05e7cb1328da757f92b44212dec 127.0.79.3:7103@17103 master - 0 1796409720181 0 connected
";

    #[test]
    fn cluster_nodes_redis() {
        let nodes = parse_cluster_nodes(REDIS_NODES).unwrap();
        assert_eq!(nodes.len(), 6);
        let n = &nodes[0];
        assert_eq!(n.addr, "127.0.79.3:7103");
        assert!(n.master && !n.myself && n.connected);
        assert_eq!(n.config_epoch, 2);
        assert_eq!(n.slots, vec![(5461, 10922)]);
        assert_eq!(
            n.importing,
            vec![(93, "fc3a2c439a2ae3b74073f235d7f27ebc76a6c704".to_owned())]
        );
        let n = &nodes[1];
        assert_eq!(n.addr, "127.0.79.2:7102");
        assert_eq!(n.slots, vec![(0, 92), (93, 5460), (16383, 16383)]);
        assert_eq!(n.slot_count(), 5462);
        assert!(n.owns(16383) && !n.owns(5461));
        assert_eq!(
            n.migrating,
            vec![(93, "e148a22d7f2841687e03f246b2bde45d2cf014a7".to_owned())]
        );
        let n = &nodes[2];
        assert!(n.myself && !n.master);
        assert_eq!(n.addr, "");
        assert_eq!(
            n.master_id.as_deref(),
            Some("fc3a2c439a2ae3b74073f235d7f27ebc76a6c704")
        );
        let n = &nodes[3];
        assert!(n.fail && n.noaddr && n.master && !n.connected);
        assert_eq!(n.addr, "");
        assert_eq!(n.master_id, None);
        let n = &nodes[4];
        assert!(n.pfail && !n.fail && !n.master);
        let n = &nodes[5];
        assert!(n.handshake && !n.master && !n.connected);
    }

    #[test]
    fn cluster_nodes_shardline() {
        let nodes = parse_cluster_nodes(SHARDLINE_NODES).unwrap();
        assert_eq!(nodes.len(), 3);
        assert!(nodes[0].myself && !nodes[0].master);
        assert_eq!(nodes[0].config_epoch, 1);
        assert_eq!(nodes[1].slots, vec![(0, 16383)]);
        assert_eq!(nodes[1].slot_count(), 16384);
        assert!(nodes[2].slots.is_empty());
    }

    #[test]
    fn cluster_nodes_errors() {
        assert!(parse_cluster_nodes("").unwrap().is_empty());
        assert!(parse_cluster_nodes("abc 1.2.3.4:1@2 master - 0 0 0 connected").is_err());
        let id = "c137228e385fe05e7cb1328da757f92b44212dec";
        assert!(
            parse_cluster_nodes(&format!("{id} 1.2.3.4:1@2 master - 0 0 0 connected 16384"))
                .is_err()
        );
        assert!(
            parse_cluster_nodes(&format!("{id} 1.2.3.4:1@2 master - 0 0 0 connected 9-3")).is_err()
        );
        assert!(parse_cluster_nodes(&format!("{id} 1.2.3.4:1@2 master - 0 0 0 linked")).is_err());
        assert!(
            parse_cluster_nodes(&format!("{id} 1.2.3.4:1@2 master - 0 0 x connected")).is_err()
        );
        assert!(
            parse_cluster_nodes(&format!("{id} 1.2.3.4:1@2 master - 0 0 0 connected [7]")).is_err()
        );
    }

    #[test]
    fn info_replication_replica() {
        let text = "# Replication\r\nrole:slave\r\nmaster_host:127.0.79.1\r\nmaster_port:7111\r\n\
master_link_status:up\r\nmaster_last_io_seconds_ago:1\r\nslave_read_repl_offset:120\r\n\
slave_repl_offset:118\r\nslave_priority:100\r\nconnected_slaves:0\r\nmaster_repl_offset:90\r\n";
        let r = parse_info_replication(text).unwrap();
        assert_eq!(r.role, Role::Replica);
        assert_eq!(r.master_addr.as_deref(), Some("127.0.79.1:7111"));
        assert!(r.link_up);
        assert_eq!(r.offset, 118);
        assert!(r.replicas.is_empty());
        let down = text.replace("link_status:up", "link_status:down");
        assert!(!parse_info_replication(&down).unwrap().link_up);
    }

    #[test]
    fn info_replication_master() {
        let text = "# Replication\nrole:master\nconnected_slaves:2\n\
slave0:ip=127.0.79.2,port=7102,state=online,offset=4242,lag=0\n\
slave1:ip=127.0.79.3,port=7103,state=wait_bgsave,offset=0,lag=1\n\
master_failover_state:no-failover\nmaster_replid:541207a888686332f7da3864469f9067f8c4fe73\n\
master_repl_offset:4242\nsecond_repl_offset:-1\n";
        let r = parse_info_replication(text).unwrap();
        assert_eq!(r.role, Role::Master);
        assert_eq!(r.master_addr, None);
        assert!(!r.link_up);
        assert_eq!(r.offset, 4242);
        assert_eq!(
            r.replicas,
            vec![
                ReplicaLink {
                    addr: "127.0.79.2:7102".into(),
                    online: true,
                    offset: 4242
                },
                ReplicaLink {
                    addr: "127.0.79.3:7103".into(),
                    online: false,
                    offset: 0
                },
            ]
        );
        assert!(parse_info_replication("role:sentinel\n").is_err());
        assert!(parse_info_replication("connected_slaves:0\n").is_err());
    }

    #[test]
    fn cluster_info() {
        let text = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_current_epoch:6\r\ncluster_my_epoch:2\r\n";
        assert_eq!(
            parse_cluster_info(text).unwrap(),
            ClusterInfo {
                state_ok: true,
                current_epoch: 6
            }
        );
        let fail = text.replace("state:ok", "state:fail");
        assert!(!parse_cluster_info(&fail).unwrap().state_ok);
        assert!(parse_cluster_info("cluster_state:ok\n").is_err());
    }
}
