//! MISP warninglists: known-good values that must never be blocked.
