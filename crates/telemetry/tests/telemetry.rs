//! Integration tests of khien-telemetry, one module per theme.

#[path = "telemetry/dns_wire.rs"]
mod dns_wire;
#[path = "telemetry/flow.rs"]
mod flow;
#[path = "telemetry/fstrm_dnstap.rs"]
mod fstrm_dnstap;
#[path = "telemetry/lines.rs"]
mod lines;
#[path = "telemetry/properties.rs"]
mod properties;
#[path = "telemetry/support.rs"]
mod support;
