//! The native overlay graph driver (being written).
