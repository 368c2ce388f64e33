//! Access control: who may read what, from a bearer token.
//!
//! The tokens file (`--tokens`) is a JSON list of entries, each holding the
//! SHA-256 of a token (never the token itself, so the file is not a secret
//! worth stealing) and a role:
//!
//! ```json
//! [{"sha256": "9f86d0…", "role": "operator"},
//!  {"sha256": "60303a…", "role": "seller", "shop_id": "S1"}]
//! ```
//!
//! An operator reads everything and may ingest. A seller reads only its own
//! shop, its orders and its notices; everything else answers 404 exactly as if
//! it did not exist, so a seller cannot even learn which shops exist.
//!
//! A presented token is hashed and compared with every entry in constant time
//! (`subtle`), and the loop does not stop at a match, so the time taken says
//! nothing about how much of a hash matched or which entry it was.

use std::path::Path;

use penalty_core::event::MAX_ID_BYTES;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The largest tokens file read, so a wrong path (a log file, a device) fails
/// fast instead of filling memory.
pub const MAX_TOKENS_FILE_BYTES: u64 = 1 << 20;
/// The most entries a tokens file may hold.
pub const MAX_TOKENS: usize = 10_000;
/// The longest bearer token accepted; longer ones are refused unhashed.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// What a request may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everything, and ingest.
    Operator,
    /// One shop's data, read only.
    Seller {
        /// The shop.
        shop_id: String,
    },
}

impl Access {
    /// True when this caller may read the shop's data.
    pub fn may_read_shop(&self, shop_id: &str) -> bool {
        match self {
            Access::Operator => true,
            Access::Seller { shop_id: own } => own == shop_id,
        }
    }

    /// The shop a seller is confined to; `None` for an operator.
    pub fn confined_to(&self) -> Option<&str> {
        match self {
            Access::Operator => None,
            Access::Seller { shop_id } => Some(shop_id),
        }
    }

    /// Refuses anyone but an operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Access::Operator => Ok(()),
            Access::Seller { .. } => Err(ApiError::Forbidden(
                "only an operator token may do this; a seller token reads its own shop only",
            )),
        }
    }
}

/// Why a tokens file was refused at start.
#[derive(Debug, thiserror::Error)]
#[error("the tokens file {path}: {detail}")]
pub struct TokensError {
    /// The file.
    pub path: String,
    /// What is wrong with it, and what to write instead.
    pub detail: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    sha256: String,
    role: String,
    #[serde(default)]
    shop_id: Option<String>,
}

/// The parsed tokens file.
#[derive(Clone, Debug)]
pub struct Tokens {
    entries: Vec<([u8; 32], Access)>,
}

impl Tokens {
    /// Reads and checks a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let fail = |detail: String| TokensError {
            path: path.display().to_string(),
            detail,
        };
        let metadata = std::fs::metadata(path)
            .map_err(|e| fail(format!("cannot be read ({e}); check the path")))?;
        if metadata.len() > MAX_TOKENS_FILE_BYTES {
            return Err(fail(format!(
                "is larger than {MAX_TOKENS_FILE_BYTES} bytes; is it the right file?"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot be read ({e}); check the path")))?;
        Tokens::parse(&text).map_err(fail)
    }

    /// Parses the JSON text of a tokens file.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        const SHAPE: &str = "write a JSON list of {\"sha256\": \"<64 hex digits: the SHA-256 of the token>\", \"role\": \"operator\"} or {\"sha256\": \"…\", \"role\": \"seller\", \"shop_id\": \"S1\"}";
        let raw: Vec<TokenEntry> =
            serde_json::from_str(text).map_err(|e| format!("is not valid ({e}); {SHAPE}"))?;
        if raw.is_empty() {
            return Err(format!(
                "lists no token, so nobody could use the server; {SHAPE}"
            ));
        }
        if raw.len() > MAX_TOKENS {
            return Err(format!("lists more than {MAX_TOKENS} tokens"));
        }
        let mut entries = Vec::with_capacity(raw.len());
        for (index, entry) in raw.into_iter().enumerate() {
            let number = index + 1;
            let hash = parse_hex_sha256(&entry.sha256).ok_or_else(|| {
                format!("entry {number}: `sha256` must be 64 hex digits (the SHA-256 of the token, e.g. from `printf %s TOKEN | sha256sum`)")
            })?;
            let access = match (entry.role.as_str(), entry.shop_id) {
                ("operator", None) => Access::Operator,
                ("operator", Some(_)) => {
                    return Err(format!(
                        "entry {number}: an operator reads every shop, so it takes no `shop_id`"
                    ))
                }
                ("seller", Some(shop_id))
                    if !shop_id.is_empty() && shop_id.len() <= MAX_ID_BYTES =>
                {
                    Access::Seller { shop_id }
                }
                ("seller", _) => {
                    return Err(format!(
                        "entry {number}: a seller needs a `shop_id` (1 to {MAX_ID_BYTES} bytes)"
                    ))
                }
                (role, _) => {
                    return Err(format!(
                        "entry {number}: unknown role `{role}`; use \"operator\" or \"seller\""
                    ))
                }
            };
            if entries.iter().any(|(known, _)| *known == hash) {
                return Err(format!(
                    "entry {number}: the same token hash is listed twice"
                ));
            }
            entries.push((hash, access));
        }
        Ok(Tokens { entries })
    }

    /// The access of a presented token, if it is listed. Every entry is
    /// compared, in constant time, whatever matches.
    pub fn lookup(&self, token: &[u8]) -> Option<Access> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found: Option<&Access> = None;
        for (hash, access) in &self.entries {
            let equal = bool::from(hash.ct_eq(&digest));
            if equal && found.is_none() {
                found = Some(access);
            }
        }
        found.cloned()
    }
}

fn parse_hex_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

/// The hex SHA-256 of a token, as the tokens file wants it.
pub fn token_hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
pub(crate) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_token_is_found_and_others_are_not() {
        let text = format!(
            r#"[{{"sha256":"{}","role":"operator"}},{{"sha256":"{}","role":"seller","shop_id":"S1"}}]"#,
            token_hash_hex("op"),
            token_hash_hex("s1")
        );
        let tokens = Tokens::parse(&text).unwrap();
        assert_eq!(tokens.lookup(b"op"), Some(Access::Operator));
        assert_eq!(
            tokens.lookup(b"s1"),
            Some(Access::Seller {
                shop_id: "S1".into()
            })
        );
        assert_eq!(tokens.lookup(b"nope"), None);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(Tokens::parse("{}").unwrap_err().contains("JSON list"));
        assert!(Tokens::parse("[]").unwrap_err().contains("no token"));
        let short = r#"[{"sha256":"abc","role":"operator"}]"#;
        assert!(Tokens::parse(short).unwrap_err().contains("64 hex"));
        let hash = token_hash_hex("x");
        let seller = format!(r#"[{{"sha256":"{hash}","role":"seller"}}]"#);
        assert!(Tokens::parse(&seller).unwrap_err().contains("shop_id"));
        let role = format!(r#"[{{"sha256":"{hash}","role":"admin"}}]"#);
        assert!(Tokens::parse(&role).unwrap_err().contains("unknown role"));
        let extra = format!(r#"[{{"sha256":"{hash}","role":"operator","x":1}}]"#);
        assert!(Tokens::parse(&extra).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// The tokens-file parser's fuzz target: any text is refused with a
        /// message or accepted, never a panic.
        #[test]
        fn the_tokens_parser_takes_any_text(text in "\\PC{0,200}|\\[\\{.{0,200}") {
            if let Err(message) = Tokens::parse(&text) {
                proptest::prop_assert!(!message.is_empty());
            }
        }

        /// Near-valid files: whatever is accepted holds only well-formed
        /// entries; whatever is refused names its entry.
        #[test]
        fn near_valid_tokens_files(
            entries in proptest::collection::vec(
                ("[0-9a-fA-Fg]{60,66}", "operator|seller|admin|", proptest::option::of("[A-Z0-9]{0,130}")),
                0..4,
            )
        ) {
            let json: Vec<serde_json::Value> = entries
                .iter()
                .map(|(hash, role, shop)| {
                    let mut entry = serde_json::json!({"sha256": hash, "role": role});
                    if let Some(shop) = shop {
                        entry["shop_id"] = serde_json::json!(shop);
                    }
                    entry
                })
                .collect();
            match Tokens::parse(&serde_json::Value::Array(json).to_string()) {
                Ok(tokens) => {
                    proptest::prop_assert_eq!(tokens.entries.len(), entries.len());
                    for (hash, role, shop) in &entries {
                        proptest::prop_assert!(parse_hex_sha256(hash).is_some());
                        proptest::prop_assert!(role == "operator" || shop.as_ref().is_some_and(|s| !s.is_empty() && s.len() <= 128));
                    }
                }
                Err(message) => proptest::prop_assert!(
                    entries.is_empty() || message.contains("entry "),
                    "{}", message
                ),
            }
        }

        #[test]
        fn bearer_headers_of_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            if let Some(token) = bearer_token(&bytes) {
                proptest::prop_assert!(!token.is_empty() && token.len() < bytes.len());
            }
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
    }
}
