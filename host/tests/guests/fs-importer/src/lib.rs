//! Test guest fs-importer (being written).
