//! DBSC proofs: the compact JWS a browser signs with its device key (ES256 only), parsed and
//! verified here, with no I/O.
//!
//! A proof is `base64url(header) . base64url(payload) . base64url(signature)`. The header is
//! `{"alg":"ES256","typ":"dbsc+jwt"}`, plus the public key as a JWK at registration; the payload
//! carries the server's challenge as `jti`; the signature is ECDSA P-256 over SHA-256 of the first
//! two parts, as the raw 64 bytes `r || s` (RFC 7518 section 3.4), not DER.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::EncodedPoint;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Longest proof considered: a real one is well under 1 KiB.
const MAX_PROOF_CHARS: usize = 4096;
/// Longest challenge echoed in `jti` that is looked up at all (ours are 43 characters).
const MAX_CHALLENGE_CHARS: usize = 128;
const TYPE: &str = "dbsc+jwt";
/// The only algorithm accepted. A proof naming another (`none`, `HS256`, `RS256`) is refused
/// before anything else is looked at: the algorithm is the server's choice, not the proof's.
const ALGORITHM: &str = "ES256";

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Not a well-formed DBSC proof (the reason, for the security log).
    Malformed(&'static str),
    /// Well-formed, but signed with an algorithm other than ES256.
    Algorithm,
    /// The signature does not verify with the key it must be made with.
    Signature,
}

impl ProofError {
    /// What the security log and the error body say.
    pub fn describe(&self) -> String {
        match self {
            ProofError::Malformed(why) => format!("malformed proof: {why}"),
            ProofError::Algorithm => "algorithm other than ES256".to_owned(),
            ProofError::Signature => "signature does not verify with the session's key".to_owned(),
        }
    }
}

/// A parsed proof whose signature is not yet checked: `verify` with the right key first.
#[derive(Debug)]
pub struct Proof {
    signing_input: String,
    signature: Signature,
    /// The challenge the proof claims to answer (`jti`).
    pub challenge: String,
    /// The public key in the header (registration only).
    pub jwk: Option<VerifyingKey>,
}

impl Proof {
    /// Parses a `Secure-Session-Response` value. Browsers send the JWT bare, the draft says as a
    /// structured-field string: both are accepted.
    pub fn parse(value: &str) -> Result<Proof, ProofError> {
        let value = value.trim();
        if value.len() > MAX_PROOF_CHARS {
            return Err(ProofError::Malformed("too long"));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let mut parts = value.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed("not a compact JWS"));
        };
        let header =
            json_object(header_b64).ok_or(ProofError::Malformed("header is not a JSON object"))?;
        match header.get("alg").and_then(Value::as_str) {
            Some(ALGORITHM) => {}
            Some(_) => return Err(ProofError::Algorithm),
            None => return Err(ProofError::Malformed("no alg")),
        }
        if header.get("typ").and_then(Value::as_str) != Some(TYPE) {
            return Err(ProofError::Malformed("typ is not dbsc+jwt"));
        }
        if header.contains_key("crit") {
            // RFC 7515 4.1.11: extensions we do not understand must not be ignored.
            return Err(ProofError::Malformed("crit"));
        }
        let jwk = match header.get("jwk") {
            None => None,
            Some(jwk) => {
                Some(parse_jwk(jwk).ok_or(ProofError::Malformed("jwk is not a P-256 public key"))?)
            }
        };
        let payload = json_object(payload_b64)
            .ok_or(ProofError::Malformed("payload is not a JSON object"))?;
        let challenge = match payload.get("jti").and_then(Value::as_str) {
            Some(jti) if !jti.is_empty() && jti.len() <= MAX_CHALLENGE_CHARS => jti.to_owned(),
            _ => return Err(ProofError::Malformed("no usable jti")),
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(ProofError::Malformed("signature is not 64 bytes r||s"))?;
        // (r, s) and (r, n - s) both verify: kept in the one low-s form, so no signature has a
        // second spelling. Not refused: ES256 does not ask signers for low s, and common ones
        // (OpenSSL, for one) make a high s about half the time.
        let signature = signature.normalize_s().unwrap_or(signature);
        Ok(Proof {
            signing_input: format!("{header_b64}.{payload_b64}"),
            signature,
            challenge,
            jwk,
        })
    }

    /// Checks the signature with `key`: the stored key at refresh, the proof's own at registration.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ProofError> {
        key.verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| ProofError::Signature)
    }
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// An EC P-256 public key as a JWK (RFC 7518 section 6.2.1). One carrying a private part (`d`)
/// is refused: a browser never sends its private key, so such a proof did not come from one.
fn parse_jwk(jwk: &Value) -> Option<VerifyingKey> {
    let jwk = jwk.as_object()?;
    if jwk.get("kty")?.as_str()? != "EC"
        || jwk.get("crv")?.as_str()? != "P-256"
        || jwk.contains_key("d")
    {
        return None;
    }
    let coordinate = |name: &str| -> Option<[u8; 32]> {
        URL_SAFE_NO_PAD
            .decode(jwk.get(name)?.as_str()?)
            .ok()?
            .try_into()
            .ok()
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    // Rejects points that are not on the curve.
    VerifyingKey::from_encoded_point(&EncodedPoint::from_affine_coordinates(
        &x.into(),
        &y.into(),
        false,
    ))
    .ok()
}

/// The key as stored: SEC1, uncompressed (65 bytes).
pub fn key_bytes(key: &VerifyingKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

pub fn key_from_bytes(bytes: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_sec1_bytes(bytes).ok()
}

/// The key's RFC 7638 thumbprint (base64url SHA-256 of its canonical JWK): a short, stable
/// name for it in the security log.
pub fn thumbprint(key: &VerifyingKey) -> String {
    // SEC1 uncompressed: 0x04, then x and y, 32 bytes each.
    let point = key_bytes(key);
    let (x, y) = point[1..].split_at(32);
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use serde_json::json;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar")
    }

    fn jwk_of(key: &VerifyingKey) -> Value {
        let point = key.to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
    }

    fn sign(key: &SigningKey, header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    #[test]
    fn a_registration_proof_parses_and_verifies_with_its_own_key() {
        let key = key();
        let header = json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk_of(key.verifying_key())});
        let jwt = sign(&key, &header, &json!({"jti": "c1"}));
        for presented in [jwt.clone(), format!("\"{jwt}\""), format!("  {jwt} ")] {
            let proof = Proof::parse(&presented).expect("parses");
            assert_eq!(proof.challenge, "c1");
            let embedded = proof.jwk.expect("the header's key");
            assert_eq!(&embedded, key.verifying_key());
            assert_eq!(proof.verify(&embedded), Ok(()));
        }
    }

    #[test]
    fn a_proof_signed_by_another_key_or_altered_is_refused() {
        let key = key();
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let jwt = sign(
            &other,
            &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            &json!({"jti": "c1"}),
        );
        assert_eq!(
            Proof::parse(&jwt).unwrap().verify(key.verifying_key()),
            Err(ProofError::Signature)
        );

        let jwt = sign(
            &key,
            &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            &json!({"jti": "c1"}),
        );
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let altered = format!(
            "{}.{signature}",
            input.replace(
                &URL_SAFE_NO_PAD.encode(r#"{"jti":"c1"}"#),
                &URL_SAFE_NO_PAD.encode(r#"{"jti":"c2"}"#)
            )
        );
        assert_eq!(
            Proof::parse(&altered).unwrap().verify(key.verifying_key()),
            Err(ProofError::Signature)
        );
    }

    #[test]
    fn other_algorithms_and_malformed_proofs_are_refused() {
        let key = key();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"dbsc+jwt"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"jti":"c1"}"#)
        );
        assert_eq!(Proof::parse(&none).unwrap_err(), ProofError::Algorithm);
        for alg in ["HS256", "RS256", "es256", "ES384"] {
            let jwt = sign(
                &key,
                &json!({"alg": alg, "typ": "dbsc+jwt"}),
                &json!({"jti": "c1"}),
            );
            assert_eq!(
                Proof::parse(&jwt).unwrap_err(),
                ProofError::Algorithm,
                "{alg}"
            );
        }
        let private_jwk = {
            let mut jwk = jwk_of(key.verifying_key());
            jwk["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
            jwk
        };
        let malformed = [
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "!!.??.**".to_owned(),
            sign(&key, &json!({"typ": "dbsc+jwt"}), &json!({"jti": "c1"})),
            sign(&key, &json!({"alg": "ES256"}), &json!({"jti": "c1"})),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "JWT"}),
                &json!({"jti": "c1"}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "crit": ["x"]}),
                &json!({"jti": "c1"}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!({}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!({"jti": 5}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!({"jti": ""}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!({"jti": "x".repeat(129)}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!(["jti"]),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": {"kty": "RSA"}}),
                &json!({"jti": "c1"}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": private_jwk}),
                &json!({"jti": "c1"}),
            ),
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
                &json!({"jti": "c1"}),
            ),
            format!(
                "{}.AAAA",
                sign(
                    &key,
                    &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                    &json!({"jti": "c1"})
                )
                .rsplit_once('.')
                .unwrap()
                .0
            ),
            "x".repeat(5000),
        ];
        for jwt in malformed {
            assert!(
                matches!(Proof::parse(&jwt), Err(ProofError::Malformed(_))),
                "{jwt:?} must be malformed"
            );
        }
    }

    #[test]
    fn only_an_ec_p256_public_key_is_taken_from_the_header() {
        let key = key();
        let with_jwk = |jwk: Value| {
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk}),
                &json!({"jti": "c1"}),
            )
        };
        assert!(Proof::parse(&with_jwk(jwk_of(key.verifying_key()))).is_ok());
        // The P-256 coordinates themselves, under another key type or curve name: each field
        // must be right on its own.
        for (field, value) in [
            ("kty", "RSA"),
            ("kty", "OKP"),
            ("crv", "P-384"),
            ("crv", ""),
        ] {
            let mut jwk = jwk_of(key.verifying_key());
            jwk[field] = json!(value);
            assert!(
                matches!(Proof::parse(&with_jwk(jwk)), Err(ProofError::Malformed(_))),
                "{field} = {value:?} must be refused"
            );
        }
    }

    #[test]
    fn a_proof_may_be_as_long_as_the_limit_and_no_longer() {
        let key = key();
        // A header field nobody reads pads the proof, and the challenge's length trims it to
        // exactly the length wanted (base64 skips some lengths); only the final one is signed.
        let parts = |padding: usize, challenge: usize| {
            (
                json!({"alg": "ES256", "typ": "dbsc+jwt", "pad": "x".repeat(padding)}),
                json!({"jti": "c".repeat(challenge)}),
            )
        };
        let signature_chars = URL_SAFE_NO_PAD.encode([0u8; 64]).len();
        let proof_of_length = |length: usize| {
            for padding in 0..length {
                for challenge in 1..=3 {
                    let (header, payload) = parts(padding, challenge);
                    let total = URL_SAFE_NO_PAD.encode(header.to_string()).len()
                        + URL_SAFE_NO_PAD.encode(payload.to_string()).len()
                        + signature_chars
                        + 2;
                    if total == length {
                        return sign(&key, &header, &payload);
                    }
                }
            }
            unreachable!("some padding gives {length} characters")
        };
        let at_limit = proof_of_length(MAX_PROOF_CHARS);
        let over_limit = proof_of_length(MAX_PROOF_CHARS + 1);
        assert_eq!(at_limit.len(), MAX_PROOF_CHARS);
        assert_eq!(over_limit.len(), MAX_PROOF_CHARS + 1);
        assert!(
            Proof::parse(&at_limit).is_ok(),
            "a proof at the limit is read"
        );
        assert_eq!(
            Proof::parse(&over_limit).unwrap_err(),
            ProofError::Malformed("too long")
        );
    }

    #[test]
    fn a_refusal_says_what_was_wrong() {
        assert_eq!(
            ProofError::Malformed("not a compact JWS").describe(),
            "malformed proof: not a compact JWS"
        );
        assert_eq!(
            ProofError::Algorithm.describe(),
            "algorithm other than ES256"
        );
        assert_eq!(
            ProofError::Signature.describe(),
            "signature does not verify with the session's key"
        );
    }

    #[test]
    fn a_high_s_signature_is_kept_in_its_low_s_form() {
        let key = key();
        let jwt = sign(
            &key,
            &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            &json!({"jti": "c1"}),
        );
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let low = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        let low = low.normalize_s().unwrap_or(low);
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r, -s).unwrap();
        assert!(high.normalize_s().is_some(), "s is high");
        for presented in [low, high] {
            let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(presented.to_bytes()));
            let proof = Proof::parse(&jwt).expect("parses");
            assert_eq!(proof.signature, low, "one spelling");
            assert_eq!(proof.verify(key.verifying_key()), Ok(()));
        }
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 has no P-256 example; RFC 9449 (DPoP) section 4.1 does: its key and thumbprint.
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        });
        let key = parse_jwk(&jwk).expect("a P-256 key");
        assert_eq!(
            thumbprint(&key),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(key_from_bytes(&key_bytes(&key)), Some(key));
    }
}
