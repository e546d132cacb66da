//! API keys, compared in constant time with every configured key, so two keys can be rotated. Each
//! surface reads the key where its protocol carries it and answers a refusal in its own words.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The accepted keys, kept only as SHA-256 digests: comparing fixed-length digests in constant time
/// reveals neither the keys nor their lengths.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        let digests = keys
            .into_iter()
            .map(|k| k.as_ref().trim().to_string())
            .filter(|k| !k.is_empty())
            .map(|k| digest(&k))
            .collect();
        ApiKeys { digests }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        // Check every key without stopping early.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| {
                found | key.ct_eq(&candidate)
            })
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_configured_key_is_accepted_and_nothing_else() {
        let keys = ApiKeys::new(["primary-key", " secondary-key ", ""]);
        assert!(keys.accepts("primary-key"));
        assert!(keys.accepts("secondary-key"));
        assert!(!keys.accepts("primary-ke"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::new(Vec::<String>::new()).is_empty());
    }
}
