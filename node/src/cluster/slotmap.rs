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
    /// Slots we are migrating away, with the target's "endpoint:port"
    /// (`-ASK`), sorted by slot.
    migrating: Vec<(u16, String)>,
    /// Slots we are importing, sorted.
    importing: Vec<u16>,
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            owner: vec![NONE; SLOTS],
            endpoints: Vec::new(),
            local: NONE,
            master: NONE,
            ok: false,
            migrating: Vec::new(),
            importing: Vec::new(),
        }
    }
}

impl SlotMap {
    pub fn build(m: &Machine, endpoint: EndpointType) -> SlotMap {
        let mut map = SlotMap {
            ok: m.state_ok,
            ..SlotMap::default()
        };
        let (migrating, importing) = m.open_slots();
        map.importing = importing;
        map.migrating = migrating
            .into_iter()
            .map(|(slot, to)| {
                let ep = m
                    .nodes
                    .get(&to)
                    .map_or_else(|| "?:0".to_string(), |p| endpoint_of(p, endpoint));
                (slot, ep)
            })
            .collect();
        // A replica serves its master's slots for READONLY reads only.
        let me = m.me();
        let my_master = me.slaveof.filter(|_| me.is_replica());
        for (name, slots) in m.owned_slots() {
            if slots.is_empty() {
                continue;
            }
            let i = map.endpoints.len() as u16;
            let text = match m.nodes.get(name) {
                Some(p) => {
                    if p.has(nflag::MYSELF) {
                        map.local = i;
                    }
                    if Some(p.name) == my_master {
                        map.master = i;
                    }
                    endpoint_of(p, endpoint)
                }
                None => "?:0".to_string(),
            };
            map.endpoints.push(text);
            for (a, z) in slots.ranges() {
                if let Some(r) = map.owner.get_mut(usize::from(a)..=usize::from(z)) {
                    r.fill(i);
                }
            }
        }
        map
    }

    /// Whether any slot is migrating or importing here: the data path
    /// checks key presence only then.
    pub fn has_open_slots(&self) -> bool {
        !self.migrating.is_empty() || !self.importing.is_empty()
    }

    /// The "endpoint:port" a slot we are migrating goes to.
    pub fn migrating_to(&self, slot: usize) -> Option<&str> {
        let slot = u16::try_from(slot).ok()?;
        self.migrating
            .binary_search_by_key(&slot, |(s, _)| *s)
            .ok()
            .and_then(|i| self.migrating.get(i))
            .map(|(_, ep)| ep.as_str())
    }

    /// Whether we are importing a slot.
    pub fn importing(&self, slot: usize) -> bool {
        u16::try_from(slot).is_ok_and(|s| self.importing.binary_search(&s).is_ok())
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

/// "host:port" of a node, as cluster-preferred-endpoint-type asks.
fn endpoint_of(p: &super::machine::Peer, endpoint: EndpointType) -> String {
    let host = match endpoint {
        EndpointType::Ip => p.ip.as_str(),
        EndpointType::Hostname if !p.hostname.is_empty() => p.hostname.as_str(),
        EndpointType::Hostname => "?",
        EndpointType::Unknown => "",
    };
    format!("{host}:{}", p.port)
}
