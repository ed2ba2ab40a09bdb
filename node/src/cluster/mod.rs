//! Redis Cluster mode: the bus wire format, the state machine, nodes.conf,
//! the slot map the data path routes with, and the bus I/O.

pub mod bus;
pub mod machine;
pub mod nodes_conf;
pub mod slotmap;
pub mod wire;

pub use bus::Cluster;
