//! `khien intel export`.
