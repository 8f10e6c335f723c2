//! Suricata eve.json (being written).

use super::Ctx;
use crate::{DecodeError, Record};

pub(super) fn decode<'a>(
    _line: &'a [u8],
    _ctx: Ctx,
    _scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    Err(DecodeError::BadFormatSpec {
        spec: "eve".into(),
        what: "not implemented yet".into(),
    })
}
