//! khien-sensor (being written).
