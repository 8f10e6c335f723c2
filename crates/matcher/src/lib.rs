//! khien-matcher (being written).
