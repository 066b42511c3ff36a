//! Identifiers in the UUID v4 text form, from the process's randomly keyed hasher (no extra crate).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use chrono::{DateTime, Utc};

/// A fresh run uid in the UUID v4 text form, from the process's random hasher keys and the time.
pub fn new_uid(now: DateTime<Utc>) -> String {
    let mix = |salt: u64| RandomState::new().hash_one((salt, now.timestamp_nanos_opt()));
    let (a, b) = (mix(1), mix(2));
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000; // version 4
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}
