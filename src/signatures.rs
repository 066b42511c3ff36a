//! How what watchbell POSTs to a user (callbacks, notifications) is signed, for a webhook with
//! `secret_env`: `X-Watchbell-Signature` (a hex HMAC-SHA256 of the body keyed by the variable's
//! whole value, as since the first release) and, for `whsec_` secrets, the Standard Webhooks
//! headers, which that specification's libraries verify as they are. Pure: the caller gives the
//! delivery's id and the attempt's time.

use std::fmt::Write as _;

use aws_lc_rs::{digest, hmac};
use data_encoding::BASE64;

/// What starts a Standard Webhooks secret.
const PREFIX: &str = "whsec_";

/// The shortest key a `whsec_` secret may decode to.
pub const MIN_KEY_BYTES: usize = 24;

/// A secret as its variable holds it: one value, or `whsec_` keys (several, space-separated,
/// while a secret is rotated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    /// Any other value: the hex signature only (deprecated).
    Plain(String),
    /// `whsec_<base64>` keys, decoded; `raw` keeps the whole value for the hex signature.
    Standard { raw: String, keys: Vec<Vec<u8>> },
}

impl Secret {
    /// Reads the variable's value; a `whsec_` value whose keys are empty, not base64, or shorter
    /// than [`MIN_KEY_BYTES`] is refused, saying which.
    pub fn parse(value: &str) -> Result<Secret, String> {
        if !value.trim_start().starts_with(PREFIX) {
            return Ok(Secret::Plain(value.to_string()));
        }
        let mut keys = Vec::new();
        for (i, part) in value.split_whitespace().enumerate() {
            let n = i + 1;
            let Some(encoded) = part.strip_prefix(PREFIX) else {
                return Err(format!("secret {n} does not start with {PREFIX}"));
            };
            let key = BASE64
                .decode(encoded.as_bytes())
                .map_err(|e| format!("secret {n} is not base64 after {PREFIX} ({e})"))?;
            if key.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "secret {n} is {} bytes; a {PREFIX} secret needs at least {MIN_KEY_BYTES}",
                    key.len()
                ));
            }
            keys.push(key);
        }
        Ok(Secret::Standard {
            raw: value.to_string(),
            keys,
        })
    }

    /// The headers that sign `body` for delivery `id` at `timestamp` (Unix seconds).
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
        match self {
            Secret::Plain(raw) => vec![("X-Watchbell-Signature", hex(raw.as_bytes(), body))],
            Secret::Standard { raw, keys } => vec![
                ("X-Watchbell-Signature", hex(raw.as_bytes(), body)),
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", standard(keys, id, timestamp, body)),
            ],
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn hex(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let mut out = String::from("sha256=");
    for b in tag.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each key, space-separated.
pub fn standard(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    keys.iter()
        .map(|k| {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k), &signed);
            format!("v1,{}", BASE64.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A delivery's `webhook-id`: the same on every attempt, different for every delivery (its
/// job, run, place in the run's queue and body, hashed).
pub fn delivery_id(job: &str, run_id: i64, seq: i64, body: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        job.as_bytes(),
        &run_id.to_le_bytes(),
        &seq.to_le_bytes(),
        body.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut out = String::from("msg_");
    for b in &ctx.finish().as_ref()[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_signature_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The Standard Webhooks specification's published vector.
    #[test]
    fn the_standard_signature_matches_the_specifications_vector() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let headers = secret.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(
            get("webhook-signature"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(get("webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(get("webhook-timestamp"), "1614265330");
        // The hex signature stays, keyed by the whole value as before.
        assert_eq!(
            get("X-Watchbell-Signature"),
            hex(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body)
        );
    }

    #[test]
    fn a_rotated_secret_signs_with_each_key() {
        let two = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
        let Secret::Standard { keys, .. } = Secret::parse(two).unwrap() else {
            panic!("a whsec_ value");
        };
        let sig = standard(
            &keys,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(parts[1].starts_with("v1,") && parts[1] != parts[0]);
    }

    #[test]
    fn short_empty_or_malformed_whsec_secrets_are_refused() {
        assert!(Secret::parse("whsec_").unwrap_err().contains("0 bytes"));
        assert!(
            Secret::parse("whsec_AAECAwQFBgcICQoL")
                .unwrap_err()
                .contains("12 bytes; a whsec_ secret needs at least 24")
        );
        assert!(
            Secret::parse("whsec_not*base64")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw other")
                .unwrap_err()
                .contains("secret 2 does not start with whsec_")
        );
        assert_eq!(
            Secret::parse("hunter2").unwrap(),
            Secret::Plain("hunter2".into())
        );
    }

    #[test]
    fn a_delivery_id_is_stable_and_apart_from_others() {
        let a = delivery_id("j", 1, 1, "{}");
        assert_eq!(a, delivery_id("j", 1, 1, "{}"));
        assert_ne!(a, delivery_id("j", 1, 2, "{}"));
        assert_ne!(a, delivery_id("k", 1, 1, "{}"));
        assert!(a.starts_with("msg_") && a.len() == 36);
    }
}
