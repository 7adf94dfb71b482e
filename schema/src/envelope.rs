//! The Envelope: what ingest hands to the queue.
//!
//! The raw bytes exactly as received plus where they came from. Nothing in it is parsed;
//! the processor decides what the bytes are. `sha256` keys the Kafka message and makes
//! byte-identical redeliveries cheap to recognize.

use sha2::{Digest, Sha256};

/// Which kind of source produced an Envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A file or directory given on the command line or watched.
    Dir,
    /// An IMAP mailbox.
    Imap,
    /// The HTTP endpoint.
    Http,
}

impl Source {
    /// The lowercase name used in headers and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dir => "dir",
            Source::Imap => "imap",
            Source::Http => "http",
        }
    }
}

/// Raw report bytes plus provenance.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The bytes exactly as received.
    pub bytes: Vec<u8>,
    /// Where they came from.
    pub source: Source,
    /// When ingest received them, unix seconds.
    pub received_at: i64,
    /// Original file or attachment name, when there was one.
    pub filename: Option<String>,
    /// Declared content type, when there was one (informational only).
    pub content_type: Option<String>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// Mailbox + UID, remote address, or path.
    pub origin: String,
    /// Why the source could not read the input, when it could not (then `bytes` is
    /// empty): the processor records it as a dead letter with this reason.
    pub read_error: Option<String>,
}

impl Envelope {
    /// Wraps bytes, computing their hash.
    pub fn new(bytes: Vec<u8>, source: Source, origin: String, received_at: i64) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Self {
            bytes,
            source,
            received_at,
            filename: None,
            content_type: None,
            sha256,
            origin,
            read_error: None,
        }
    }

    /// An input the source could not read: no bytes, the reason. Its hash is taken over
    /// the origin and the reason, so the same problem reported twice is recorded once.
    pub fn unreadable(source: Source, origin: String, reason: &str, received_at: i64) -> Self {
        let mut hash = Sha256::new();
        for part in [b"unreadable".as_slice(), origin.as_bytes(), reason.as_bytes()] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        Self {
            bytes: Vec::new(),
            source,
            received_at,
            filename: None,
            content_type: None,
            sha256: hash.finalize().into(),
            origin,
            read_error: Some(reason.to_owned()),
        }
    }

    /// The hash as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("bytes", &self.bytes.len())
            .field("source", &self.source)
            .field("received_at", &self.received_at)
            .field("filename", &self.filename)
            .field("sha256", &self.sha256_hex())
            .field("origin", &self.origin)
            .field("read_error", &self.read_error)
            .finish()
    }
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What a source does once its delivery is durably stored (see the processor's
/// durability barrier): mark the file done, move the IMAP message, answer the HTTP
/// client, commit the Kafka offset.
pub type Ack = Box<dyn FnOnce() + Send>;

/// One Envelope on the queue, with the acknowledgement its source is waiting for.
pub struct Delivery {
    /// The raw input.
    pub envelope: Envelope,
    /// Fired only after the batch holding the data committed; `None` when the source
    /// needs no acknowledgement (a one-off file run).
    pub ack: Option<Ack>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("ack", &self.ack.is_some())
            .finish()
    }
}
