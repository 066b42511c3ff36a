//! Callback tokens: 32 random bytes, sent once in the create's callback headers and kept only
//! as their SHA-256, so a copy of the database cannot forge a callback.
//!
//! Self-probes: before a replay is asked, the sweep reaches the receiver through `public_url`
//! with a nonce that names the run and is signed with the run's stored token hash. Any node on
//! the same database can check it (behind a load balancer the probe may reach the other node,
//! which stores the vendor's callbacks just as well); a receiver elsewhere cannot.

use std::fmt::Write as _;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac};

/// A new token, as hex.
pub fn new() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    hex(&bytes)
}

/// What is stored of a token: its SHA-256, as hex.
pub fn hash(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// The token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A probe nonce for run `run`: `RUN.RANDOM.MAC`, the MAC keyed by the run's token hash.
pub fn probe(run: &str, token_hash: &str) -> String {
    let random = &new()[..32];
    format!("{run}.{random}.{}", probe_mac(token_hash, random))
}

/// The run a probe nonce names (`None`: not a nonce).
pub fn probe_run(nonce: &str) -> Option<&str> {
    probe_parts(nonce).map(|(run, _, _)| run)
}

/// Whether `nonce` was made with `token_hash`.
pub fn probe_signed(nonce: &str, token_hash: &str) -> bool {
    probe_parts(nonce).is_some_and(|(_, random, mac)| same(mac, &probe_mac(token_hash, random)))
}

/// A nonce's run, random part and MAC.
fn probe_parts(nonce: &str) -> Option<(&str, &str, &str)> {
    let mut parts = nonce.splitn(3, '.');
    let run = parts.next().filter(|r| !r.is_empty())?;
    Some((run, parts.next()?, parts.next()?))
}

fn probe_mac(token_hash: &str, random: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token_hash.as_bytes());
    let msg = format!("watchbell-probe.{random}");
    hex(hmac::sign(&key, msg.as_bytes()).as_ref())
}

/// Compares two hashes in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_matches() {
        let (a, b) = (new(), new());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(same(&hash(&a), &hash(&a)));
        assert!(!same(&hash(&a), &hash(&b)));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_probe_is_checked_by_the_runs_token_hash_only() {
        let (h, other) = (hash(&new()), hash(&new()));
        let n = probe("run-1", &h);
        assert_eq!(probe_run(&n), Some("run-1"));
        assert!(probe_signed(&n, &h));
        assert!(!probe_signed(&n, &other));
        assert_ne!(n, probe("run-1", &h));
        let last = if n.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &n[..n.len() - 1]);
        assert!(!probe_signed(&forged, &h));
        assert_eq!(probe_run("plain"), None);
        assert!(!probe_signed("run-1.abc", &h));
    }

    #[test]
    fn a_bearer_header_gives_its_token() {
        assert_eq!(bearer("Bearer xyz"), Some("xyz"));
        assert_eq!(bearer("bearer  xyz "), Some("xyz"));
        assert_eq!(bearer("Basic xyz"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
