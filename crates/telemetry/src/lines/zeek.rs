//! Zeek logs (being written).

use super::Ctx;
use crate::{DecodeError, Record};

#[derive(Debug, Default)]
pub(super) struct Header {
    _todo: (),
}

impl Header {
    pub(super) fn decode<'a>(
        &'a mut self,
        _line: &'a [u8],
        _ctx: Ctx,
    ) -> Result<Option<Record<'a>>, DecodeError> {
        Err(DecodeError::BadFormatSpec {
            spec: "zeek".into(),
            what: "not implemented yet".into(),
        })
    }
}

pub(super) fn decode_json<'a>(
    _line: &'a [u8],
    _ctx: Ctx,
    _scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    Err(DecodeError::BadFormatSpec {
        spec: "zeek-json".into(),
        what: "not implemented yet".into(),
    })
}
