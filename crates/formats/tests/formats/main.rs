//! Integration tests of `khien-formats`, one binary with a module per theme:
//! each reader on real feeds and hostile input, the writers against golden
//! files and external validators, warninglists, and a real Unbound loading
//! the exported RPZ zone.

mod attribution;
mod read;
mod read_csv;
mod read_list;
mod read_misp;
mod read_stix;
mod support;
mod unbound;
mod warninglist;
mod write;
