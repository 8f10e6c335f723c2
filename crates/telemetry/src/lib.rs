//! khien-telemetry (being written).
