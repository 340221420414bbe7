//! A DBSC client, as a browser would be one: a P-256 key of its own, and proofs signed with it
//! (compact JWS, ES256, signature as the raw 64 bytes r||s).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

pub struct DbscKey {
    key: SigningKey,
}

impl DbscKey {
    pub fn generate() -> DbscKey {
        loop {
            // Almost every 32 random bytes are a valid scalar; retry on the rare one that is not.
            if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                return DbscKey { key };
            }
        }
    }

    /// The public key as a JWK, as the registration proof's header carries it.
    pub fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed")),
        })
    }

    /// The public key as the server stores it (SEC1, uncompressed).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    /// A registration proof: the header names the public key.
    pub fn registration_proof(&self, challenge: &str) -> String {
        self.sign(
            &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": self.jwk()}),
            &json!({"jti": challenge}),
        )
    }

    /// A refresh proof: no key in the header, the server has it.
    pub fn refresh_proof(&self, challenge: &str) -> String {
        self.sign(
            &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            &json!({"jti": challenge}),
        )
    }

    /// A refresh proof with the high-s signature `(r, n - s)` where `s` is at most `n / 2`: as
    /// valid as its low-s twin, and what common signers (OpenSSL, for one) make about half the
    /// time, as this one does.
    pub fn refresh_proof_high_s(&self, challenge: &str) -> String {
        self.refresh_proof_with_s(challenge, true)
    }

    /// The low-s twin of `refresh_proof_high_s`.
    pub fn refresh_proof_low_s(&self, challenge: &str) -> String {
        self.refresh_proof_with_s(challenge, false)
    }

    fn refresh_proof_with_s(&self, challenge: &str, high: bool) -> String {
        let proof = self.refresh_proof(challenge);
        let (input, signature) = proof.rsplit_once('.').expect("a compact JWS");
        let signature =
            Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("base64url"))
                .expect("r || s");
        let low = signature.normalize_s().unwrap_or(signature);
        let chosen = if high {
            let (r, s) = low.split_scalars();
            Signature::from_scalars(r, -s).expect("n - s is a valid s")
        } else {
            low
        };
        assert_eq!(chosen.normalize_s().is_some(), high, "s is as asked");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(chosen.to_bytes()))
    }

    /// Any header and payload, signed with this key.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let input = format!("{}.{}", b64(&header.to_string()), b64(&payload.to_string()));
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

pub fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// The `path` and `challenge` of a `Secure-Session-Registration` offer.
pub fn parse_offer(header: &str) -> (String, String) {
    let (algorithms, params) = header
        .split_once(';')
        .unwrap_or_else(|| panic!("offer without parameters: {header}"));
    assert_eq!(algorithms, "(ES256)", "only ES256 is offered");
    (param(params, "path"), param(params, "challenge"))
}

/// The challenge and session id of a `Secure-Session-Challenge` header: `"<c>";id="<id>"`.
pub fn parse_challenge(header: &str) -> (String, String) {
    let rest = header
        .strip_prefix('"')
        .unwrap_or_else(|| panic!("challenge is not a string: {header}"));
    let (challenge, params) = rest.split_once('"').expect("closing quote");
    (challenge.to_owned(), param(params, "id"))
}

fn param(params: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let start = params
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {params}"))
        + marker.len();
    let end = start + params[start..].find('"').expect("closing quote");
    params[start..end].to_owned()
}
