//! Constructors and formatting for [`PluginError`].

use crate::types::PluginError;

impl PluginError {
    pub fn bad_signature(message: impl Into<String>) -> Self {
        Self::BadSignature(message.into())
    }
    pub fn bad_payload(message: impl Into<String>) -> Self {
        Self::BadPayload(message.into())
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported(message.into())
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient(message.into())
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// The kind as a short, stable name ("bad-signature").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadSignature(_) => "bad-signature",
            Self::BadPayload(_) => "bad-payload",
            Self::Unsupported(_) => "unsupported",
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::BadSignature(m)
            | Self::BadPayload(m)
            | Self::Unsupported(m)
            | Self::Transient(m)
            | Self::Permanent(m) => m,
        }
    }
}
