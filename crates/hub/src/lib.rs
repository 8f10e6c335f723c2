//! khien-hub (being written).
