//! Frame Streams, the framing dnstap travels in (farsightsec/fstrm): a
//! 32-bit big-endian length before each data frame; a zero length escapes a
//! control frame (READY, ACCEPT, START, STOP, FINISH) carrying content
//! types.
//!
//! [`FrameReader`] turns bytes pushed from a socket or file, in whatever
//! pieces they arrive, into whole frames; [`Handshake`] checks the order of
//! control frames and says what to write back. Neither does I/O.
//!
//! ```
//! use khien_telemetry::fstrm::{self, ControlType, Frame, FrameReader, Handshake};
//! use khien_telemetry::dnstap::CONTENT_TYPE;
//!
//! // A unidirectional (file) stream: START, one data frame, STOP.
//! let mut wire = fstrm::encode_control(ControlType::Start, Some(CONTENT_TYPE));
//! fstrm::encode_data(b"payload", &mut wire);
//! wire.extend(fstrm::encode_control(ControlType::Stop, None));
//!
//! let mut reader = FrameReader::new(64 * 1024);
//! let mut handshake = Handshake::new(false, CONTENT_TYPE);
//! let mut data = Vec::new();
//! for chunk in wire.chunks(3) {
//!     reader.push(chunk);
//!     while let Some(frame) = reader.next_frame()? {
//!         match frame {
//!             Frame::Control(c) => assert!(handshake.on_control(&c)?.is_none()),
//!             Frame::Data(d) => {
//!                 handshake.check_data_allowed()?;
//!                 data.push(d.to_vec());
//!             }
//!         }
//!     }
//! }
//! assert!(handshake.is_finished());
//! assert_eq!(data, [b"payload".to_vec()]);
//! # Ok::<(), khien_telemetry::DecodeError>(())
//! ```

use crate::DecodeError;
use crate::error::snippet;

/// Longest control frame accepted (fstrm's `FSTRM_CONTROL_FRAME_LENGTH_MAX`).
pub const MAX_CONTROL_FRAME: usize = 512;
/// Longest content type accepted in a control frame (fstrm's limit).
pub const MAX_CONTENT_TYPE: usize = 256;
const FIELD_CONTENT_TYPE: u32 = 1;

/// Control frame types, with their wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// 1: the receiver accepts one of the offered content types.
    Accept,
    /// 2: the sender starts the data.
    Start,
    /// 3: the sender stops.
    Stop,
    /// 4: the sender is ready and offers content types (bidirectional).
    Ready,
    /// 5: the receiver acknowledges STOP (bidirectional).
    Finish,
}

impl ControlType {
    /// Wire value.
    pub fn code(self) -> u32 {
        match self {
            Self::Accept => 1,
            Self::Start => 2,
            Self::Stop => 3,
            Self::Ready => 4,
            Self::Finish => 5,
        }
    }

    /// From a wire value.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::Accept,
            2 => Self::Start,
            3 => Self::Stop,
            4 => Self::Ready,
            5 => Self::Finish,
            _ => return None,
        })
    }

    /// Upper-case name, as in the Frame Streams documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "ACCEPT",
            Self::Start => "START",
            Self::Stop => "STOP",
            Self::Ready => "READY",
            Self::Finish => "FINISH",
        }
    }
}

/// A decoded control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its type.
    pub kind: ControlType,
    /// Content-type fields, in order (READY may offer several).
    pub content_types: Vec<Vec<u8>>,
}

/// One frame read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A data frame's payload (for dnstap, one protobuf `Dnstap` message).
    Data(&'a [u8]),
    /// A control frame.
    Control(Control),
}

/// Incremental Frame Streams reader.
///
/// Memory is bounded by one partial frame plus what the caller pushes
/// between calls to [`next_frame`](Self::next_frame): consumed bytes are
/// dropped on the next [`push`](Self::push). A data frame announced larger
/// than `max_data_frame` fails with `frame_too_large` *before* its bytes
/// are buffered; the stream has lost its framing then, so every later call
/// returns the same error and the caller must close the connection.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    max_data_frame: usize,
    poisoned: Option<DecodeError>,
}

impl FrameReader {
    /// A reader refusing data frames over `max_data_frame` bytes (dnstap
    /// frames are a few hundred bytes; 64 KiB is a generous limit).
    pub fn new(max_data_frame: usize) -> Self {
        Self {
            buf: Vec::with_capacity(8192),
            start: 0,
            max_data_frame,
            poisoned: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// At the end of a file or connection: an error if a frame was left
    /// incomplete.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buffered() {
            0 => Ok(()),
            n => Err(DecodeError::TruncatedFrame {
                what: "frame at end of stream",
                needed: n + 1,
                available: n,
            }),
        }
    }

    /// The next whole frame; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, DecodeError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let avail = &self.buf[self.start..];
        let Some(len) = be32(avail, 0) else {
            return Ok(None);
        };
        let len = len as usize;
        if len != 0 {
            if len > self.max_data_frame {
                let e = DecodeError::FrameTooLarge {
                    length: len,
                    max: self.max_data_frame,
                };
                self.poisoned = Some(e.clone());
                return Err(e);
            }
            if avail.len() < 4 + len {
                return Ok(None);
            }
            let from = self.start + 4;
            self.start = from + len;
            return Ok(Some(Frame::Data(&self.buf[from..from + len])));
        }
        let Some(clen) = be32(avail, 4) else {
            return Ok(None);
        };
        let clen = clen as usize;
        if clen > MAX_CONTROL_FRAME {
            let e = DecodeError::ControlFrameTooLarge { length: clen };
            self.poisoned = Some(e.clone());
            return Err(e);
        }
        if avail.len() < 8 + clen {
            return Ok(None);
        }
        let control = parse_control(&avail[8..8 + clen]);
        self.start += 8 + clen;
        control.map(|c| Some(Frame::Control(c)))
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_control(frame: &[u8]) -> Result<Control, DecodeError> {
    let Some(code) = be32(frame, 0) else {
        return Err(DecodeError::BadControlFrame {
            what: "shorter than its type",
            offset: 0,
        });
    };
    let Some(kind) = ControlType::from_code(code) else {
        return Err(DecodeError::BadControlFrame {
            what: "unknown control type",
            offset: 0,
        });
    };
    let mut content_types = Vec::new();
    let mut at = 4;
    while at < frame.len() {
        let (Some(field), Some(flen)) = (be32(frame, at), be32(frame, at + 4)) else {
            return Err(DecodeError::BadControlFrame {
                what: "truncated field header",
                offset: at,
            });
        };
        let flen = flen as usize;
        let Some(value) = frame.get(at + 8..at + 8 + flen) else {
            return Err(DecodeError::BadControlFrame {
                what: "field longer than the frame",
                offset: at,
            });
        };
        if field == FIELD_CONTENT_TYPE {
            if flen > MAX_CONTENT_TYPE {
                return Err(DecodeError::BadControlFrame {
                    what: "content type over 256 bytes",
                    offset: at,
                });
            }
            content_types.push(value.to_vec());
        }
        // Unknown field types are skipped: later protocol versions may add some.
        at += 8 + flen;
    }
    if kind == ControlType::Start && content_types.len() > 1 {
        return Err(DecodeError::BadControlFrame {
            what: "START with more than one content type",
            offset: 4,
        });
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// Encodes a control frame, escape included.
pub fn encode_control(kind: ControlType, content_type: Option<&[u8]>) -> Vec<u8> {
    let body = 4 + content_type.map_or(0, |c| 8 + c.len());
    let mut out = Vec::with_capacity(8 + body);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&kind.code().to_be_bytes());
    if let Some(c) = content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// Appends a data frame. An empty payload cannot be framed (a zero length
/// is the control escape), so it appends nothing.
pub fn encode_data(payload: &[u8], out: &mut Vec<u8>) {
    if payload.is_empty() {
        return;
    }
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitReady,
    WaitStart,
    Started,
    Finished,
}

impl State {
    fn describe(self) -> &'static str {
        match self {
            Self::WaitReady => "waiting for READY",
            Self::WaitStart => "waiting for START",
            Self::Started => "receiving data",
            Self::Finished => "finished",
        }
    }
}

/// The receiving side of the Frame Streams handshake.
///
/// Bidirectional (a socket): READY (offering content types) → we answer
/// ACCEPT → START → data… → STOP → we answer FINISH. Unidirectional (a file,
/// or a sender that does not read): START → data… → STOP.
#[derive(Debug)]
pub struct Handshake {
    content_type: Vec<u8>,
    bidirectional: bool,
    state: State,
}

impl Handshake {
    /// A handshake expecting `content_type` (for dnstap,
    /// [`crate::dnstap::CONTENT_TYPE`]).
    pub fn new(bidirectional: bool, content_type: &[u8]) -> Self {
        Self {
            content_type: content_type.to_vec(),
            bidirectional,
            state: if bidirectional {
                State::WaitReady
            } else {
                State::WaitStart
            },
        }
    }

    /// Feeds one control frame. Returns the bytes to write back to the
    /// sender, if any.
    pub fn on_control(&mut self, c: &Control) -> Result<Option<Vec<u8>>, DecodeError> {
        match (self.state, c.kind) {
            (State::WaitReady, ControlType::Ready) => {
                if !c.content_types.contains(&self.content_type) {
                    return Err(self.bad_content_type(&c.content_types));
                }
                self.state = State::WaitStart;
                Ok(Some(encode_control(
                    ControlType::Accept,
                    Some(&self.content_type),
                )))
            }
            (State::WaitStart, ControlType::Start) => {
                match c.content_types.first() {
                    Some(t) if *t != self.content_type => {
                        return Err(self.bad_content_type(&c.content_types));
                    }
                    _ => {}
                }
                self.state = State::Started;
                Ok(None)
            }
            (State::Started, ControlType::Stop) => {
                self.state = State::Finished;
                Ok(self.bidirectional_reply())
            }
            (state, kind) => Err(DecodeError::UnexpectedControl {
                got: kind.as_str(),
                state: state.describe(),
            }),
        }
    }

    fn bidirectional_reply(&self) -> Option<Vec<u8>> {
        self.bidirectional
            .then(|| encode_control(ControlType::Finish, None))
    }

    fn bad_content_type(&self, offered: &[Vec<u8>]) -> DecodeError {
        let got = offered
            .iter()
            .map(|t| snippet(t))
            .collect::<Vec<_>>()
            .join(", ");
        DecodeError::BadContentType {
            got,
            expected: snippet(&self.content_type),
        }
    }

    /// START seen and STOP not yet.
    pub fn is_started(&self) -> bool {
        self.state == State::Started
    }

    /// STOP seen: the sender will send nothing more.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// `Ok` if a data frame may arrive now.
    pub fn check_data_allowed(&self) -> Result<(), DecodeError> {
        match self.state {
            State::Started => Ok(()),
            s => Err(DecodeError::UnexpectedData {
                state: s.describe(),
            }),
        }
    }
}
