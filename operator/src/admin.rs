//! Admin library (being written).
