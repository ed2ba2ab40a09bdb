//! The immutable slot map the data path reads without locks: who serves
//! each slot, where to redirect clients, and whether the cluster is up.
//! The bus publishes a new one whenever ownership or state changes.

use super::machine::Machine;
use super::wire::{nflag, SLOTS};

/// Slot owner index meaning "unassigned".
const NONE: u16 = u16::MAX;

/// How clients are told where a slot lives (cluster-preferred-endpoint-type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointType {
    Ip,
    Hostname,
    Unknown,
}

/// Where a command must go.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// We serve the slot.
    Local,
    /// Another master serves it: `-MOVED slot endpoint:port`.
    Moved(&'a str),
    /// Our master serves it (we are its replica): READONLY clients may
    /// read it here, anything else is `-MOVED slot endpoint:port`.
    Master(&'a str),
    /// Nobody serves it.
    Unbound,
}

#[derive(Debug)]
pub struct SlotMap {
    /// Owner of each slot: an index into `endpoints`, or NONE.
    owner: Vec<u16>,
    /// "endpoint:port" of each master that owns slots; index 0 is unused
    /// when we own slots ourselves (see `local`).
    endpoints: Vec<String>,
    local: u16,
    /// Our master's index when we are a replica, or NONE.
    master: u16,
    /// cluster_state:ok
    pub ok: bool,
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            owner: vec![NONE; SLOTS],
            endpoints: Vec::new(),
            local: NONE,
            master: NONE,
            ok: false,
        }
    }
}

impl SlotMap {
    pub fn build(m: &Machine, endpoint: EndpointType) -> SlotMap {
        let mut map = SlotMap {
            ok: m.state_ok,
            ..SlotMap::default()
        };
        let mut index: std::collections::BTreeMap<[u8; 40], u16> = Default::default();
        // A replica serves its master's slots for READONLY reads only.
        let me = m.me();
        let my_master = me.slaveof.filter(|_| me.is_replica());
        for (slot, owner) in m.owners().iter().enumerate() {
            let Some(name) = owner else { continue };
            let idx = match index.get(name) {
                Some(i) => *i,
                None => {
                    let i = map.endpoints.len() as u16;
                    let text = match m.nodes.get(name) {
                        Some(p) => {
                            let host = match endpoint {
                                EndpointType::Ip => p.ip.clone(),
                                EndpointType::Hostname if !p.hostname.is_empty() => {
                                    p.hostname.clone()
                                }
                                EndpointType::Hostname => "?".to_string(),
                                EndpointType::Unknown => String::new(),
                            };
                            if p.has(nflag::MYSELF) {
                                map.local = i;
                            }
                            if Some(p.name) == my_master {
                                map.master = i;
                            }
                            format!("{host}:{}", p.port)
                        }
                        None => "?:0".to_string(),
                    };
                    map.endpoints.push(text);
                    index.insert(*name, i);
                    i
                }
            };
            map.owner[slot] = idx;
        }
        map
    }

    pub fn route(&self, slot: usize) -> Route<'_> {
        match self.owner.get(slot).copied().unwrap_or(NONE) {
            NONE => Route::Unbound,
            i if i == self.local => Route::Local,
            i if i == self.master => {
                Route::Master(self.endpoints.get(i as usize).map_or("?:0", |s| s.as_str()))
            }
            i => Route::Moved(self.endpoints.get(i as usize).map_or("?:0", |s| s.as_str())),
        }
    }
}
