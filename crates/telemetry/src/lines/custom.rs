//! CSV and JSON lines described by a FieldMap (being written).

use super::{Ctx, FieldMap};
use crate::{DecodeError, Record};

pub(super) fn csv<'a>(
    _m: &FieldMap,
    _line: &'a [u8],
    _ctx: Ctx,
    _first: bool,
    _scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    Err(DecodeError::BadFormatSpec {
        spec: "csv".into(),
        what: "not implemented yet".into(),
    })
}

pub(super) fn json<'a>(
    _m: &FieldMap,
    _line: &'a [u8],
    _ctx: Ctx,
    _scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    Err(DecodeError::BadFormatSpec {
        spec: "json".into(),
        what: "not implemented yet".into(),
    })
}
