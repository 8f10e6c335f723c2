//! JSON field extraction (being written).
