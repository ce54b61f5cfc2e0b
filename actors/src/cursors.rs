//! Keyset cursors the server can recognise: each is its payload (the position in a list) and an
//! HMAC tag over the list's name and that payload, under a key every replica derives from the
//! sealing passphrase. An edited cursor, one made by hand, or one from another list (a teams
//! cursor on `/owners`) fails to open, so it is refused rather than read as a position.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::crypto::seal::SealingKey;

/// Bytes of the tag kept in a cursor (128 bits).
const TAG_LEN: usize = 16;

/// Signs and opens cursors. Cheap to clone.
#[derive(Clone)]
pub struct Cursors {
    /// The sealing key the tags are made with, the same on every replica so any of them opens a cursor.
    key: Arc<SealingKey>,
}

impl Cursors {
    pub(crate) fn new(key: Arc<SealingKey>) -> Self {
        Cursors { key }
    }

    fn tag(&self, list: &str, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut message = Vec::with_capacity(list.len() + 1 + payload.len());
        message.extend_from_slice(list.as_bytes());
        message.push(0);
        message.extend_from_slice(payload);
        let full = self.key.mac(&message);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// The cursor for `payload` in `list`: `base64url(payload ‖ tag)`.
    pub fn sign(&self, list: &str, payload: &str) -> String {
        let mut bytes = payload.as_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(list, payload.as_bytes()));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The payload of a cursor this server made for `list`, or `None`.
    pub fn open(&self, list: &str, cursor: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).ok()?;
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        if !bool::from(self.tag(list, payload).ct_eq(tag)) {
            return None;
        }
        String::from_utf8(payload.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_open_only_for_their_list_and_unchanged() {
        let cursors = Cursors::new(Arc::new(SealingKey::derive("passphrase-0123456789", b"salt-salt-salt-1", 1)));
        let cursor = cursors.sign("teams", "c+|t-1|1700000000");
        assert_eq!(cursors.open("teams", &cursor).as_deref(), Some("c+|t-1|1700000000"));
        assert_eq!(cursors.open("owners", &cursor), None, "another list");
        let mut edited = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        edited[0] ^= 1;
        assert_eq!(cursors.open("teams", &URL_SAFE_NO_PAD.encode(edited)), None, "edited");
        assert_eq!(cursors.open("teams", &URL_SAFE_NO_PAD.encode("c+|t-1|1700000000")), None, "unsigned");
        assert_eq!(cursors.open("teams", "!!"), None);
    }
}
