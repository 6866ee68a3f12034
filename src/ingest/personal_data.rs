//! Personal data: keyed hashes of `ip` and `email`, so they can be counted but not read back.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Context string of the key derivation: changing it changes every hash.
const KEY_CONTEXT: &str = "campaign-elt 2026-11 personal data hash v1";

/// Hashes personal values with a key the operator keeps secret (BLAKE3 in keyed mode, the key
/// derived from the operator's secret). Equal values give equal hashes under the same secret.
#[derive(Clone)]
pub struct PersonalDataHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for PersonalDataHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalDataHasher(..)")
    }
}

impl PersonalDataHasher {
    /// A hasher from the operator's secret (at least 16 bytes).
    pub fn new(secret: &[u8]) -> Result<Self> {
        let secret = secret.trim_ascii();
        if secret.len() < 16 {
            bail!("the personal-data hash key must have at least 16 bytes");
        }
        Ok(Self {
            key: blake3::derive_key(KEY_CONTEXT, secret),
        })
    }

    /// Reads the secret from a file (trailing whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self> {
        let secret = std::fs::read(path)
            .with_context(|| format!("cannot read the hash key file {}", path.display()))?;
        Self::new(&secret)
    }

    pub fn hash(&self, value: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, value.as_bytes()).as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_hash_equally_under_one_key_only() {
        let one = PersonalDataHasher::new(b"a secret of sixteen+ bytes").unwrap();
        let other = PersonalDataHasher::new(b"another secret, also long").unwrap();
        assert_eq!(one.hash("10.0.0.1"), one.hash("10.0.0.1"));
        assert_ne!(one.hash("10.0.0.1"), one.hash("10.0.0.2"));
        assert_ne!(one.hash("10.0.0.1"), other.hash("10.0.0.1"));
        assert!(PersonalDataHasher::new(b"short").is_err());
        assert!(!format!("{one:?}").contains("secret"));
    }
}
