//! Session ids that survive a restart: 16 hex digits of random nonce followed by 16 hex digits
//! of SipHash-2-4 tag over the nonce and the credential that created the session, under a
//! 128-bit key kept in the data directory. Any id this relay ever minted verifies again after a
//! restart (clients that do not re-initialize on 404 keep working) for the same credential,
//! while a guessed or foreign id, or one presented with another credential, does not. SipHash is a keyed pseudo-random
//! function designed for exactly this size of input, and small enough to carry here.

use std::fs;
use std::io::Read;
use std::path::Path;

/// Mints and verifies session ids under one key.
pub(crate) struct SessionIds {
    key: [u64; 2],
}

impl SessionIds {
    /// Uses the key in `dir/session.key`, creating it if absent; without a usable directory the
    /// key lives only as long as the process.
    pub(crate) fn open(dir: Option<&Path>) -> SessionIds {
        let key = dir.and_then(|d| {
            load_or_create_key(d)
                .map_err(|e| {
                    log::warn!(
                        "session key in {}: {e}; session ids will not survive a restart",
                        d.display()
                    )
                })
                .ok()
        });
        let bytes = key.unwrap_or_else(random16);
        SessionIds {
            key: [
                u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default()),
            ],
        }
    }

    /// A new id for a session of `owner` (the credential's name, empty without one): 32
    /// lower-case hex digits, all visible ASCII.
    pub(crate) fn mint(&self, owner: &str) -> String {
        let nonce = u64::from_le_bytes(random16()[..8].try_into().unwrap_or_default());
        format!("{nonce:016x}{:016x}", self.tag(nonce, owner))
    }

    /// The tag of `nonce` for `owner`. Without an owner it is the tag of the nonce alone, as
    /// ids were signed before sessions had owners.
    fn tag(&self, nonce: u64, owner: &str) -> u64 {
        let mut data = nonce.to_le_bytes().to_vec();
        data.extend_from_slice(owner.as_bytes());
        siphash24(self.key, &data)
    }

    /// Whether `id` was minted under this key for `owner`, exactly as minted: one id has one
    /// spelling, so a session ended under it cannot come back under another.
    pub(crate) fn verify(&self, id: &str, owner: &str) -> bool {
        let minted_digit = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if id.len() != 32 || !id.bytes().all(minted_digit) {
            return false;
        }
        let (Ok(nonce), Ok(tag)) = (
            u64::from_str_radix(&id[..16], 16),
            u64::from_str_radix(&id[16..], 16),
        ) else {
            return false;
        };
        self.tag(nonce, owner) == tag
    }
}

fn load_or_create_key(dir: &Path) -> std::io::Result<[u8; 16]> {
    let path = dir.join("session.key");
    if let Ok(bytes) = fs::read(&path) {
        if let Ok(key) = <[u8; 16]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
        log::warn!("{} is not a 16-byte key; making a new one", path.display());
    }
    fs::create_dir_all(dir)?;
    let key = random16();
    let tmp = dir.join("session.key.tmp");
    fs::write(&tmp, key)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    }
    fs::rename(&tmp, &path)?;
    Ok(key)
}

/// 16 bytes from the operating system's random source. Where `/dev/urandom` is missing, std's
/// randomly keyed hasher (seeded by the OS) stands in.
pub(crate) fn random16() -> [u8; 16] {
    let mut out = [0u8; 16];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .is_ok()
    {
        return out;
    }
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// SipHash-2-4 of `data` under `key` (Aumasson and Bernstein, 2012).
fn siphash24(key: [u64; 2], data: &[u8]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = (data.len() as u64 & 0xff) << 56;
    for (i, b) in chunks.remainder().iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // Key 00..0f, messages 00..(n-1), from the SipHash paper's reference implementation.
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        let data: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(key, &data[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(key, &data[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(siphash24(key, &data[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(key, &data[..15]), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn minted_ids_verify_and_others_do_not() {
        let ids = SessionIds::open(None);
        let id = ids.mint("");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert!(ids.verify(&id, ""));
        let mut forged = id.clone().into_bytes();
        forged[31] = if forged[31] == b'0' { b'1' } else { b'0' };
        assert!(!ids.verify(&String::from_utf8(forged).unwrap(), ""));
        assert!(!ids.verify("not-an-id", ""));
        let lettered = std::iter::repeat_with(|| ids.mint(""))
            .find(|id| id.bytes().any(|b| b.is_ascii_alphabetic()))
            .unwrap();
        let upper = lettered.to_ascii_uppercase();
        assert!(!ids.verify(&upper, ""), "only the spelling minted verifies");
        assert!(
            !SessionIds::open(None).verify(&id, ""),
            "another key rejects it"
        );
        let alice = ids.mint("agent alice");
        assert!(ids.verify(&alice, "agent alice"));
        assert!(
            !ids.verify(&alice, "agent bob"),
            "another credential rejects it"
        );
        assert!(!ids.verify(&alice, ""));
    }

    #[test]
    fn the_key_on_disk_keeps_ids_valid_across_restarts() {
        let dir = std::env::temp_dir().join(format!("relay-session-key-{}", std::process::id()));
        let first = SessionIds::open(Some(&dir));
        let id = first.mint("");
        let second = SessionIds::open(Some(&dir));
        assert!(second.verify(&id, ""));
        let _ = fs::remove_dir_all(&dir);
    }
}
