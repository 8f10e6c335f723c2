//! Writers: merged indicators out, in the formats resolvers, TIPs and
//! spreadsheets read.
