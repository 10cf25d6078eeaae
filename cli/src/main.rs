//! The `storage` command (being written).
fn main() {}
