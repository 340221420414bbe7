//! A software authenticator: makes passkeys and signs assertions as a phone or laptop would
//! (ES256, `none` attestation, user present and verified), so the tests can answer the app's
//! passkey ceremonies with real signatures and alter exactly one thing at a time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Flags of authenticator data: user present, user verified, attested credential data.
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED: u8 = 0x40;

pub struct SoftAuthenticator {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The signature counter the next assertion carries (then it goes up by one).
    pub counter: u32,
    user_handle: Vec<u8>,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url from the app")
}

impl SoftAuthenticator {
    pub fn new() -> SoftAuthenticator {
        let key = loop {
            if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                break key;
            }
        };
        SoftAuthenticator {
            key,
            credential_id: rand::random::<[u8; 16]>().to_vec(),
            counter: 1,
            user_handle: Vec::new(),
        }
    }

    /// The answer to `navigator.credentials.create(options)` (the app's JSON) from `origin`.
    pub fn register(&mut self, options: &Value, origin: &str) -> String {
        let options = &options["publicKey"];
        let rp_id = options["rp"]["id"].as_str().expect("rp.id");
        self.user_handle = unb64(options["user"]["id"].as_str().expect("user.id"));
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": options["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let point = self.key.verifying_key().to_encoded_point(false);
        // COSE_Key, CBOR: {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        cose.extend_from_slice(point.x().expect("x"));
        cose.extend_from_slice(&[0x22, 0x58, 0x20]);
        cose.extend_from_slice(point.y().expect("y"));
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(USER_PRESENT | USER_VERIFIED | ATTESTED);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0; 16]); // AAGUID
        let id_len = u16::try_from(self.credential_id.len()).expect("short id");
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&cose);
        // Attestation object, CBOR: {"fmt": "none", "attStmt": {}, "authData": bytes}.
        let mut attestation = vec![0xa3, 0x63];
        attestation.extend_from_slice(b"fmt");
        attestation.push(0x64);
        attestation.extend_from_slice(b"none");
        attestation.push(0x67);
        attestation.extend_from_slice(b"attStmt");
        attestation.extend_from_slice(&[0xa0, 0x68]);
        attestation.extend_from_slice(b"authData");
        let data_len = u8::try_from(auth_data.len()).expect("under 256 bytes");
        attestation.extend_from_slice(&[0x58, data_len]);
        attestation.extend_from_slice(&auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(client_data.as_bytes()),
                "transports": ["internal"],
            },
        })
        .to_string()
    }

    /// The answer to `navigator.credentials.get(options)` from `origin`, for the RP id the
    /// options name; the counter goes up.
    pub fn sign_in(&mut self, options: &Value, origin: &str) -> String {
        let rp_id = options["publicKey"]["rpId"]
            .as_str()
            .expect("rpId")
            .to_owned();
        let counter = self.counter;
        self.counter += 1;
        self.assertion(options, origin, &rp_id, counter)
    }

    /// An assertion with every part chosen: `rp_id` is the one whose hash it carries.
    pub fn assertion(&self, options: &Value, origin: &str, rp_id: &str, counter: u32) -> String {
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": options["publicKey"]["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(USER_PRESENT | USER_VERIFIED);
        auth_data.extend_from_slice(&counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(client_data.as_bytes()),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
        })
        .to_string()
    }
}
