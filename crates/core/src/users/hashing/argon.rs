//! argon2id with the OWASP parameters (m = 19 MiB, t = 2, p = 1), one work area per thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// A hash of a random password nobody kept, with our parameters: an unknown username is verified
/// against it, so it costs the same work as a known one. A constant rather than made at start:
/// making it took one more 19 MiB work area, which the allocator kept. A test holds it to the
/// parameters `Worker::hash` uses.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cDlM3c7fhLfIUtYJnEdAlA$eWVGX/2wQ4qCaGYC8hIFHPnKo8F4xKbZpJr5fiGxep0";

/// The most memory (KiB) a stored hash may ask of a work area: far above any setting argon2id is
/// used with (RFC 9106's second choice is 64 MiB). A damaged row asking for terabytes is refused,
/// since failing to allocate its work area would abort the app.
const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;

/// One hashing thread's argon2id and the work area it reuses.
///
/// Each thread owns one 19 MiB work area and reuses it for every hash, so memory stays at
/// `threads` × 19 MiB. Allocating it per hash, as `argon2`'s `PasswordHasher` does, let glibc keep
/// far more per thread; telling glibc to return each area instead made every hash map, fault in
/// and unmap a fresh one, and a sign-in cost more CPU (docs/benchmarks.md, "Work areas").
pub struct Worker {
    argon2: Argon2<'static>,
    memory: Vec<Block>,
}

impl Worker {
    /// The work area is allocated at the first hash, not at start.
    pub fn new() -> Self {
        Worker {
            argon2: Argon2::default(),
            memory: Vec::new(),
        }
    }

    /// The work area for `params`, grown (once) when they need more than it holds.
    fn memory_for(&mut self, params: &Params) -> &mut [Block] {
        if params.block_count() > self.memory.len() {
            self.memory.resize(params.block_count(), Block::default());
        }
        &mut self.memory
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for a fresh random salt.
    pub fn hash(&mut self, password: &[u8]) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_buffer)
            .map_err(hash_error)?;
        let argon2 = self.argon2.clone();
        let memory = self.memory_for(argon2.params());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon2
                .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
                .map_err(password_hash::Error::from)
        })
        .map_err(hash_error)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).map_err(hash_error)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Recomputes a stored PHC hash with its own parameters and compares in constant time
    /// (`Output`'s equality is constant-time).
    pub fn verify(&mut self, password: &[u8], stored: &str) -> Result<bool, String> {
        let phc = PasswordHash::new(stored).map_err(hash_error)?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Err("a stored hash lacks its salt or output".into());
        };
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(hash_error)?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(hash_error)?
            .unwrap_or_default();
        let params = Params::try_from(&phc).map_err(hash_error)?;
        if params.m_cost() > MAX_STORED_MEMORY_KIB {
            return Err(format!(
                "a stored hash asks for {} KiB, more than {MAX_STORED_MEMORY_KIB}",
                params.m_cost()
            ));
        }
        // A hash made with more memory than ours (an older, stronger setting) grows the area once.
        let memory = self.memory_for(&params);
        let argon2 = Argon2::new(algorithm, version, params);
        let mut salt_buffer = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(hash_error)?;
        let computed = Output::init_with(expected.len(), |out| {
            argon2
                .hash_password_into_with_memory(password, salt_bytes, out, &mut *memory)
                .map_err(password_hash::Error::from)
        })
        .map_err(hash_error)?;
        Ok(computed == expected)
    }
}

fn hash_error(error: impl std::fmt::Display) -> String {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_interoperate_with_the_argon2_crates_own_hasher() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let mut worker = Worker::new();
        let ours = worker.hash(b"violet tractor mango").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"violet tractor mango", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"violet tractor mangos", &parsed)
                .is_err()
        );

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"violet tractor mango", &salt)
            .unwrap()
            .to_string();
        assert!(worker.verify(b"violet tractor mango", &theirs).unwrap());
        assert!(!worker.verify(b"violet tractor mangos", &theirs).unwrap());
        // A hash with more memory than ours still verifies (the work area grows).
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 2, 1, None).unwrap(),
        );
        let strong = stronger
            .hash_password(b"violet tractor mango", &salt)
            .unwrap()
            .to_string();
        assert!(worker.verify(b"violet tractor mango", &strong).unwrap());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let real = Worker::new().hash(b"violet tractor mango").unwrap();
        let (real, dummy) = (
            PasswordHash::new(&real).unwrap(),
            PasswordHash::new(DUMMY_HASH).unwrap(),
        );
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.salt.unwrap().len(), real.salt.unwrap().len());
        assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
        assert!(
            !Worker::new()
                .verify(b"violet tractor mango", DUMMY_HASH)
                .unwrap()
        );
    }

    #[test]
    fn a_malformed_stored_hash_is_an_error_not_a_match() {
        assert!(
            Worker::new()
                .verify(b"violet tractor mango", "not a phc string")
                .is_err()
        );
    }

    /// A row asking for a 4 TiB work area is an error, not an allocation that aborts the app.
    #[test]
    fn a_stored_hash_asking_for_terabytes_is_an_error_not_an_abort() {
        let damaged = DUMMY_HASH.replace("m=19456", "m=4294967295");
        let error = Worker::new()
            .verify(b"violet tractor mango", &damaged)
            .unwrap_err();
        assert!(error.contains("4294967295 KiB"), "{error}");
    }
}
