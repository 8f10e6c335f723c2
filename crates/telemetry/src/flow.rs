//! NetFlow v5/v9 and IPFIX (being written).
