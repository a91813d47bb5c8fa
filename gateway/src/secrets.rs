//! Connection secrets at rest: each value sealed with AES-256-GCM under the gateway's key, bound
//! to its connection and name (a sealed value copied to another row does not open). The key
//! comes from `DAIFA_SECRET_KEY` (base64 of 32 bytes); without it, a key file is created on first
//! start (`secret_key_file`), which suits one machine but not a fleet.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use std::path::Path;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

pub struct SecretBox {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{0}` is not sealed in a known format")]
    Format(String),
    #[error("secret `{0}` does not open with this gateway's key (was the key changed?)")]
    Key(String),
}

impl SecretBox {
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        let bytes = BASE64
            .decode(key.trim())
            .context("the secret key is not base64")?;
        anyhow::ensure!(
            bytes.len() == 32,
            "the secret key must be 32 bytes, base64-encoded (it is {} bytes)",
            bytes.len()
        );
        Ok(Self {
            cipher: Aes256Gcm::new_from_slice(&bytes).context("the secret key")?,
        })
    }

    /// The configured key, or the key file's (created with a fresh key when missing).
    pub fn load(key: Option<&str>, key_file: &Path) -> anyhow::Result<Self> {
        if let Some(key) = key {
            return Self::from_base64(key);
        }
        if let Ok(existing) = std::fs::read_to_string(key_file) {
            return Self::from_base64(&existing)
                .with_context(|| format!("reading {}", key_file.display()));
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let encoded = BASE64.encode(key);
        if let Some(dir) = key_file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_private(key_file, &encoded)
            .with_context(|| format!("writing {}", key_file.display()))?;
        tracing::warn!(path = %key_file.display(), "created a secret key file; set DAIFA_SECRET_KEY to share one key between gateway processes");
        Self::from_base64(&encoded)
    }

    /// Seals `plaintext`, bound to `context` (the connection id and secret name).
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SecretError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| SecretError::Format(context.to_string()))?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Key(context.to_string()))?;
        String::from_utf8(plain).map_err(|_| SecretError::Format(context.to_string()))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretBox {
        SecretBox::from_base64(&BASE64.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_their_context() {
        let b = key();
        let sealed = b.seal("con_1/webhook_secret", "shpss_abc");
        assert!(!sealed.contains("shpss_abc"));
        assert_ne!(
            sealed,
            b.seal("con_1/webhook_secret", "shpss_abc"),
            "a fresh nonce every time"
        );
        assert_eq!(
            b.open("con_1/webhook_secret", &sealed).unwrap(),
            "shpss_abc"
        );
        assert!(matches!(
            b.open("con_2/webhook_secret", &sealed),
            Err(SecretError::Key(_))
        ));
        let other = SecretBox::from_base64(&BASE64.encode([8u8; 32])).unwrap();
        assert!(matches!(
            other.open("con_1/webhook_secret", &sealed),
            Err(SecretError::Key(_))
        ));
        assert!(matches!(
            b.open("x", "plain text"),
            Err(SecretError::Format(_))
        ));
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn creates_then_reuses_a_key_file() {
        let dir = std::env::temp_dir().join(format!("daifa-key-{}", uuid::Uuid::now_v7().simple()));
        let file = dir.join("secret.key");
        let first = SecretBox::load(None, &file).unwrap();
        let sealed = first.seal("c", "v");
        let second = SecretBox::load(None, &file).unwrap();
        assert_eq!(second.open("c", &sealed).unwrap(), "v");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
