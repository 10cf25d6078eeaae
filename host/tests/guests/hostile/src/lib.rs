//! Test guest hostile (being written).
