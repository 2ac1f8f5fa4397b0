//! JSON Web Tokens signed the way Distribution's `auth: token:` verifies them: RS256 with an
//! `x5c` certificate chain that ends at a CA in the registry's `rootcertbundle`, or ES256 with
//! a `kid` that is the libtrust key id of a certificate in the bundle.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};

use crate::openssl::{openssl_line, read};
use crate::registry::RegistryStartError;

/// How the token server signs and how the registry finds the signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signing {
    /// RS256; the header carries the signing certificate in `x5c`, issued by a CA that is
    /// the registry's `rootcertbundle` (as the Docker Hub and Harbor token servers do).
    #[default]
    Rs256CertChain,
    /// ES256; the header carries `kid`, the libtrust key id of the self-signed signing
    /// certificate that is the registry's `rootcertbundle` (as `docker_auth` does).
    Es256KeyId,
}

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key, its JWS header, and the certificate bundle the registry trusts.
pub(crate) struct Signer {
    key: Key,
    header: String,
    bundle: PathBuf,
    rng: SystemRandom,
}

impl Signer {
    /// Makes a fresh key (and CA) with openssl in `dir`.
    pub(crate) fn generate(dir: &Path, signing: Signing) -> Result<Self, RegistryStartError> {
        let err = |what: &str| {
            let what = what.to_string();
            move |e: ring::error::KeyRejected| RegistryStartError(format!("{what}: {e}"))
        };
        let rng = SystemRandom::new();
        match signing {
            Signing::Rs256CertChain => {
                std::fs::write(
                    dir.join("signer.cnf"),
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
                )
                .map_err(|e| RegistryStartError(format!("writing signer.cnf: {e}")))?;
                for line in [
                    "req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=ossb-test-token-ca -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
                    "req -newkey rsa:2048 -nodes -sha256 -subj /CN=ossb-test-token-signer -keyout signer.key -out signer.csr",
                    "x509 -req -in signer.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -sha256 -extfile signer.cnf -outform DER -out signer.der",
                    "pkcs8 -topk8 -nocrypt -in signer.key -outform DER -out signer.p8",
                ] {
                    openssl_line(dir, line)?;
                }
                let key = RsaKeyPair::from_pkcs8(&read(dir, "signer.p8")?)
                    .map_err(err("loading the RSA signing key"))?;
                let x5c = STANDARD.encode(read(dir, "signer.der")?);
                let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                Ok(Self {
                    key: Key::Rsa(key),
                    header: URL_SAFE_NO_PAD.encode(header.to_string()),
                    bundle: dir.join("ca.crt"),
                    rng,
                })
            }
            Signing::Es256KeyId => {
                for line in [
                    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 2 -subj /CN=ossb-test-token-signer -keyout signer.key -out signer.crt",
                    "pkcs8 -topk8 -nocrypt -in signer.key -outform DER -out signer.p8",
                    "pkey -in signer.key -pubout -outform DER -out signer.pub",
                ] {
                    openssl_line(dir, line)?;
                }
                let key = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &read(dir, "signer.p8")?,
                    &rng,
                )
                .map_err(err("loading the EC signing key"))?;
                let kid = libtrust_key_id(&read(dir, "signer.pub")?);
                let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": kid});
                Ok(Self {
                    key: Key::Ec(key),
                    header: URL_SAFE_NO_PAD.encode(header.to_string()),
                    bundle: dir.join("signer.crt"),
                    rng,
                })
            }
        }
    }

    /// The PEM bundle to configure as the registry's `rootcertbundle`.
    pub(crate) fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// A compact JWS of `claims`.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|e| format!("RS256 signing failed: {e}"))?;
                sig
            }
            Key::Ec(k) => k
                .sign(&self.rng, input.as_bytes())
                .map_err(|e| format!("ES256 signing failed: {e}"))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// libtrust's key id: the first 240 bits of the SHA-256 of the DER SubjectPublicKeyInfo, in
/// base32, as twelve groups of four characters joined by `:`.
pub(crate) fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let b32 = base32(&hash.as_ref()[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding (the input here is always a multiple of 5 bytes).
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u64, 0u32);
    for &b in data {
        buf = (buf << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b""), "");
    }

    #[test]
    fn key_id_has_twelve_groups() {
        let id = libtrust_key_id(b"any der");
        assert_eq!(id.len(), 48 + 11);
        assert_eq!(id.split(':').count(), 12);
    }
}
