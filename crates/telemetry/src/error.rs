//! The crate's one error type.
//!
//! Every variant says *what* was wrong and *where* (byte offset, field name,
//! line part), so an operator reading the sensor's log can find the bad
//! input. [`DecodeError::kind`] gives a short, stable code for metrics
//! labels: codes are only ever added, never renamed or reused.

/// Why a piece of telemetry could not be decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a frame (Frame Streams) or a fixed structure.
    #[error("truncated frame: {what} needs {needed} bytes, {available} available")]
    TruncatedFrame {
        /// What was being read.
        what: &'static str,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// A Frame Streams control frame longer than
    /// [`crate::fstrm::MAX_CONTROL_FRAME`].
    #[error("Frame Streams control frame of {length} bytes is over the 512-byte limit")]
    ControlFrameTooLarge {
        /// Announced length.
        length: usize,
    },
    /// A Frame Streams data frame longer than the reader's limit. The stream
    /// cannot be resynchronised after this: close the connection.
    #[error(
        "Frame Streams data frame of {length} bytes is over the {max}-byte limit (is this a Frame Streams socket?)"
    )]
    FrameTooLarge {
        /// Announced length.
        length: usize,
        /// The reader's limit.
        max: usize,
    },
    /// A malformed Frame Streams control frame.
    #[error("bad Frame Streams control frame: {what} at byte {offset} of the frame")]
    BadControlFrame {
        /// What was wrong.
        what: &'static str,
        /// Offset inside the control frame.
        offset: usize,
    },
    /// A control frame that the handshake does not allow at this point.
    #[error("unexpected Frame Streams {got} control frame while {state}")]
    UnexpectedControl {
        /// The control frame received.
        got: &'static str,
        /// What the handshake was waiting for.
        state: &'static str,
    },
    /// A data frame before START or after STOP.
    #[error("Frame Streams data frame while {state}")]
    UnexpectedData {
        /// What the handshake was waiting for.
        state: &'static str,
    },
    /// The peer offered or started a content type other than the expected one.
    #[error("Frame Streams content type {got:?} is not the expected {expected:?}")]
    BadContentType {
        /// What the peer sent (shortened, escaped).
        got: String,
        /// What we accept.
        expected: String,
    },
    /// A protobuf payload that does not decode.
    #[error("bad protobuf: {what} at byte {offset}")]
    Protobuf {
        /// What was wrong.
        what: &'static str,
        /// Offset in the payload.
        offset: usize,
    },
    /// A DNS message that ends before its header or question does.
    #[error("DNS message truncated: {what} at byte {offset}")]
    DnsTruncated {
        /// What was being read.
        what: &'static str,
        /// Offset in the message.
        offset: usize,
    },
    /// Compression pointers that loop or chain more than the hop limit.
    #[error("DNS name compression pointers loop (pointer at byte {offset})")]
    DnsNamePointerLoop {
        /// Offset of the pointer that closed the loop.
        offset: usize,
    },
    /// A compression pointer outside the message.
    #[error(
        "DNS name compression pointer at byte {offset} points to {target}, outside the message"
    )]
    DnsNameBadPointer {
        /// Offset of the pointer.
        offset: usize,
        /// Where it points.
        target: usize,
    },
    /// A name over 255 octets in wire form.
    #[error("DNS name starting at byte {offset} is longer than 255 octets")]
    DnsNameTooLong {
        /// Offset where the name starts.
        offset: usize,
    },
    /// A label-length byte with the reserved 01/10 high bits (a "label" over
    /// 63 octets).
    #[error("DNS name has a bad label length byte {byte:#04x} at byte {offset}")]
    DnsNameBadLabel {
        /// Offset of the length byte.
        offset: usize,
        /// Its value.
        byte: u8,
    },
    /// Text that must be UTF-8 is not (JSON lines; plain-text logs keep
    /// names as bytes instead).
    #[error("invalid UTF-8 in {field}")]
    InvalidUtf8 {
        /// Where.
        field: &'static str,
    },
    /// A line longer than [`crate::MAX_LINE_BYTES`].
    #[error("line of {length} bytes is over the {max}-byte limit")]
    LineTooLong {
        /// Line length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A field that should be an IP address is not.
    #[error("bad IP address in {field}: {value:?}")]
    BadAddress {
        /// Which field.
        field: &'static str,
        /// What was there (shortened, escaped).
        value: String,
    },
    /// A timestamp that does not parse or is out of range.
    #[error("bad time in {field}: {value:?}")]
    BadTime {
        /// Which field.
        field: &'static str,
        /// What was there (shortened, escaped).
        value: String,
    },
    /// A number that does not parse or is out of range.
    #[error("bad number in {field}: {value:?}")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// What was there (shortened, escaped).
        value: String,
    },
    /// A required field is absent.
    #[error("missing field {field}")]
    MissingField {
        /// Which field.
        field: &'static str,
    },
    /// A line that looks like the configured format but is malformed.
    #[error("bad {format} line: {what} at byte {offset}")]
    BadLine {
        /// The line format.
        format: &'static str,
        /// What was wrong.
        what: &'static str,
        /// Byte offset in the line.
        offset: usize,
    },
    /// A JSON line that does not parse.
    #[error("bad JSON at column {column}: {message}")]
    Json {
        /// serde_json's message.
        message: String,
        /// 1-based column.
        column: usize,
    },
    /// A `--format` specification that does not parse.
    #[error("bad line format {spec:?}: {what}")]
    BadFormatSpec {
        /// The specification given.
        spec: String,
        /// What was wrong.
        what: String,
    },
    /// A flow datagram whose version is not 5, 9 or 10.
    #[error("flow datagram of version {version} (expected 5, 9 or 10)")]
    NetflowBadVersion {
        /// Version field.
        version: u16,
    },
    /// A flow datagram shorter than its header or a set/record it announces.
    #[error("flow datagram truncated: {what} at byte {offset}")]
    NetflowTruncated {
        /// What was being read.
        what: &'static str,
        /// Offset in the datagram.
        offset: usize,
    },
    /// A NetFlow v9 / IPFIX template that cannot be used.
    #[error("bad template {template_id}: {what}")]
    BadTemplate {
        /// Template id.
        template_id: u16,
        /// What was wrong.
        what: &'static str,
    },
    /// An IPFIX set id in the reserved range 4–255 (or 2–255 in v9).
    #[error("flow set with reserved id {set_id} at byte {offset}")]
    NetflowBadSetId {
        /// The set id.
        set_id: u16,
        /// Offset in the datagram.
        offset: usize,
    },
    /// The decoder already holds its limit of templates.
    #[error("template limit of {limit} reached; template {template_id} ignored")]
    TemplateLimit {
        /// The limit.
        limit: usize,
        /// The template that was refused.
        template_id: u16,
    },
}

impl DecodeError {
    /// A stable snake_case code for metrics labels
    /// (`sensor_decode_errors_total{kind="..."}`). Codes are only added,
    /// never renamed.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TruncatedFrame { .. } => "truncated_frame",
            Self::ControlFrameTooLarge { .. } => "control_frame_too_large",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::BadControlFrame { .. } => "bad_control_frame",
            Self::UnexpectedControl { .. } => "unexpected_control",
            Self::UnexpectedData { .. } => "unexpected_data",
            Self::BadContentType { .. } => "bad_content_type",
            Self::Protobuf { .. } => "protobuf",
            Self::DnsTruncated { .. } => "dns_truncated",
            Self::DnsNamePointerLoop { .. } => "dns_name_pointer_loop",
            Self::DnsNameBadPointer { .. } => "dns_name_bad_pointer",
            Self::DnsNameTooLong { .. } => "dns_name_too_long",
            Self::DnsNameBadLabel { .. } => "dns_name_bad_label",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::LineTooLong { .. } => "line_too_long",
            Self::BadAddress { .. } => "bad_address",
            Self::BadTime { .. } => "bad_time",
            Self::BadNumber { .. } => "bad_number",
            Self::MissingField { .. } => "missing_field",
            Self::BadLine { .. } => "bad_line",
            Self::Json { .. } => "json",
            Self::BadFormatSpec { .. } => "bad_format_spec",
            Self::NetflowBadVersion { .. } => "netflow_bad_version",
            Self::NetflowTruncated { .. } => "netflow_truncated",
            Self::BadTemplate { .. } => "bad_template",
            Self::NetflowBadSetId { .. } => "netflow_bad_set_id",
            Self::TemplateLimit { .. } => "template_limit",
        }
    }

    /// Every code [`kind`](Self::kind) can return, for pre-registering
    /// metric label values.
    pub const KINDS: &'static [&'static str] = &[
        "truncated_frame",
        "control_frame_too_large",
        "frame_too_large",
        "bad_control_frame",
        "unexpected_control",
        "unexpected_data",
        "bad_content_type",
        "protobuf",
        "dns_truncated",
        "dns_name_pointer_loop",
        "dns_name_bad_pointer",
        "dns_name_too_long",
        "dns_name_bad_label",
        "invalid_utf8",
        "line_too_long",
        "bad_address",
        "bad_time",
        "bad_number",
        "missing_field",
        "bad_line",
        "json",
        "bad_format_spec",
        "netflow_bad_version",
        "netflow_truncated",
        "bad_template",
        "netflow_bad_set_id",
        "template_limit",
    ];
}

/// At most 64 bytes of `bytes`, escaped, for an error message: hostile
/// input must not make error values large or unprintable.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = bytes.len().min(MAX);
    let mut s = bytes[..cut].escape_ascii().to_string();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}
