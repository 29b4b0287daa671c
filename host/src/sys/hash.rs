//! Hex digests: how the host names weights in records and messages.

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex_string(&sha2::Sha256::digest(bytes))
}

/// Lower-case hex of `h`.
pub fn hex_string(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
