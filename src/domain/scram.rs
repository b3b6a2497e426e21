//! The SCRAM-SHA-256 verifier of a password, computed here so that PostgreSQL is given the
//! verifier and never the password (what `psql`'s `\password` and libpq's
//! `PQencryptPasswordConn` do).
//!
//! `CREATE ROLE ... PASSWORD 'SCRAM-SHA-256$...'` stores a verifier as it is. The cleartext
//! would otherwise reach the server in a statement or a bound parameter, where `log_statement`,
//! an error's context or `pg_stat_statements` can keep it. The verifier alone does not let
//! anyone log in (RFC 5802: the server keeps StoredKey, a hash of the ClientKey the client
//! proves it knows), and guessing a 256-bit random password from it is hopeless.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default (`scram_iterations`, PostgreSQL 16) and libpq's.
const ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802's Hi(): PBKDF2 with HMAC-SHA-256, one 32-byte block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &block);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// The verifier PostgreSQL stores for `password` with this salt: `SCRAM-SHA-256$<iterations>:
/// <salt>$<StoredKey>:<ServerKey>` (base64). `password` must need no SASLprep (ASCII without
/// control characters, as the generated passwords are).
pub(crate) fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// What to put after `PASSWORD` for `password`: its verifier with a fresh random 16-byte salt
/// when `password` is printable ASCII (which SASLprep leaves as it is), else the password itself,
/// for PostgreSQL to normalise and hash the way every client will (a hand-typed `db roles`
/// password with other characters).
pub(crate) fn password_for_server(password: &str) -> anyhow::Result<String> {
    if !password.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Ok(password.to_string());
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| anyhow::anyhow!("cannot read random bytes for a password salt: {e}"))?;
    Ok(verifier_with_salt(password, &salt, ITERATIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python's hashlib.pbkdf2_hmac and hmac, for RFC 7677's
    /// example password and salt.
    #[test]
    fn matches_an_independent_computation() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        assert_eq!(
            verifier_with_salt("pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
             WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
             wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn a_fresh_salt_each_time_and_only_for_ascii() {
        let a = password_for_server("same password").unwrap();
        let b = password_for_server("same password").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert!(!a.contains("same password"));
        // SASLprep would change it (the ligature becomes "fi"): PostgreSQL hashes it itself.
        assert_eq!(password_for_server("ﬁsh").unwrap(), "ﬁsh");
    }
}
