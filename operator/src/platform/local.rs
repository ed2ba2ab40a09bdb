//! Local platform (being written).
