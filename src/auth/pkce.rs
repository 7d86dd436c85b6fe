//! PKCE for OAuth sign-in, as auth-js makes and keeps it: a verifier of 112 lowercase hex
//! characters (56 random bytes), its S256 challenge (unpadded base64url of SHA-256), and the
//! cookies auth-js (2.111+) keeps pending flows in through ssr: a slot per flow
//! (`<key>-flow-<id>-code-verifier`), an index of pending flow ids (`<key>-flows-code-verifier`,
//! oldest first, at most five) and the single `<key>-code-verifier` older clients read.
//! Checked against vectors the pinned auth-js produced (`tests/fixtures/pkce.json`).

use actix_web::cookie::Cookie;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cookie::{decode_item, encode_item, SessionCookie};

/// The callback query parameter auth-js's `appendPkceFlowIdToRedirects` adds.
pub const FLOW_ID_PARAM: &str = "sb_flow_id";
/// auth-js's `PKCE_MAX_CONCURRENT_FLOWS`: a sixth flow evicts the oldest.
const MAX_CONCURRENT_FLOWS: usize = 5;

/// auth-js's verifier length in random values (each written as two hex digits).
const VERIFIER_BYTES: usize = 56;

/// A fresh code verifier from the operating system's CSPRNG; `None` if it cannot give one.
pub fn new_verifier() -> Option<String> {
    let mut bytes = [0u8; VERIFIER_BYTES];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// The S256 challenge of `verifier` (`code_challenge_method=s256`).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// auth-js's `validatePKCEFlowId`: ids arrive in URLs and cookies, so anything else is none.
pub fn valid_flow_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh flow id as auth-js makes one: 16 random bytes as 32 lowercase hex digits.
pub fn new_flow_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

impl SessionCookie {
    /// `<key>-code-verifier`: the most recent flow's verifier, which clients without flow
    /// ids (auth-js before 2.111, redirects without `sb_flow_id`) read.
    pub fn code_verifier_name(&self) -> String {
        format!("{}-code-verifier", self.name)
    }

    fn flow_slot_name(&self, flow_id: &str) -> String {
        format!("{}-flow-{flow_id}-code-verifier", self.name)
    }

    fn flow_index_name(&self) -> String {
        format!("{}-flows-code-verifier", self.name)
    }

    /// The JSON a storage cookie holds, if the request carries it.
    fn item(present: &[(String, String)], name: &str) -> Option<Value> {
        let raw = present
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v)?;
        serde_json::from_str(&decode_item(raw)?).ok()
    }

    /// The pending flow ids, oldest first; ids of the wrong shape are dropped (the index is
    /// no more trustworthy than a URL parameter).
    fn flow_index(&self, present: &[(String, String)]) -> Vec<String> {
        match Self::item(present, &self.flow_index_name()) {
            Some(Value::Array(ids)) => ids
                .into_iter()
                .filter_map(|id| id.as_str().filter(|i| valid_flow_id(i)).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn verifier_cookie(&self, name: String, json: &str, max_age_secs: i64) -> Cookie<'static> {
        // Only supagate reads a verifier it wrote: HttpOnly whatever the session's setting.
        let mut cookie = self.build(name, encode_item(json), max_age_secs, true);
        cookie.set_http_only(true);
        cookie
    }

    /// The cookies that start flow `flow_id` (auth-js `storePKCEVerifier`): deletions of the
    /// slots a sixth pending flow evicts, the slot, the index with the id appended, and the
    /// single verifier.
    pub fn start_flow_cookies(
        &self,
        present: &[(String, String)],
        flow_id: &str,
        verifier: &str,
        max_age_secs: i64,
    ) -> Vec<Cookie<'static>> {
        let mut index = self.flow_index(present);
        index.retain(|id| id != flow_id);
        index.push(flow_id.to_owned());
        let evicted = index.len().saturating_sub(MAX_CONCURRENT_FLOWS);
        let evicted: Vec<String> = index
            .drain(..evicted)
            .map(|id| self.flow_slot_name(&id))
            .collect();
        let evicted: Vec<&str> = evicted.iter().map(String::as_str).collect();
        let json = Value::String(verifier.to_owned()).to_string();
        let mut out = self.deletions(&evicted);
        out.push(self.verifier_cookie(self.flow_slot_name(flow_id), &json, max_age_secs));
        out.push(self.verifier_cookie(
            self.flow_index_name(),
            &Value::from(index).to_string(),
            max_age_secs,
        ));
        out.push(self.verifier_cookie(self.code_verifier_name(), &json, max_age_secs));
        out
    }

    /// The stored verifier for a callback (auth-js `retrievePKCEVerifier`): with a flow id
    /// only that flow's slot (never another flow's verifier, which would burn the code),
    /// without one the single verifier. A `/recovery` suffix is dropped as auth-js drops it.
    pub fn code_verifier(
        &self,
        present: &[(String, String)],
        flow_id: Option<&str>,
    ) -> Option<String> {
        let name = match flow_id {
            Some(id) => self.flow_slot_name(id),
            None => self.code_verifier_name(),
        };
        let stored = Self::item(present, &name)?;
        let verifier = stored.as_str()?.split('/').next().unwrap_or_default();
        (!verifier.is_empty()).then(|| verifier.to_owned())
    }

    /// What an exchange leaves behind, success or not (auth-js `removePKCEVerifier`): with a
    /// flow id its slot, its entry in the index (the index itself once empty), and the single
    /// verifier when it holds the same value; without one the single verifier. Only cookies
    /// the browser holds are touched, as ssr does.
    pub fn exchange_cleanup(
        &self,
        present: &[(String, String)],
        flow_id: Option<&str>,
        max_age_secs: i64,
    ) -> Vec<Cookie<'static>> {
        let holds = |name: &str| present.iter().any(|(n, _)| n == name);
        let single = self.code_verifier_name();
        let Some(id) = flow_id else {
            return if holds(&single) {
                self.deletions(&[single.as_str()])
            } else {
                Vec::new()
            };
        };
        let slot = self.flow_slot_name(id);
        let mut gone: Vec<&str> = Vec::new();
        if holds(&slot) {
            gone.push(&slot);
        }
        let index = self.flow_index(present);
        let remaining: Vec<String> = index.iter().filter(|i| *i != id).cloned().collect();
        let index_name = self.flow_index_name();
        let mut rewritten = None;
        if remaining.len() != index.len() {
            if remaining.is_empty() {
                gone.push(&index_name);
            } else {
                rewritten = Some(self.verifier_cookie(
                    index_name.clone(),
                    &Value::from(remaining).to_string(),
                    max_age_secs,
                ));
            }
        }
        let slot_value = Self::item(present, &slot);
        if slot_value.is_some() && slot_value == Self::item(present, &single) {
            gone.push(&single);
        }
        let mut out = self.deletions(&gone);
        out.extend(rewritten);
        out
    }

    /// Every pending verifier the browser holds (auth-js `removeAllPKCEVerifiers`, run
    /// wherever it removes the session): the indexed slots, the index, the single verifier.
    pub(super) fn all_verifier_names(&self, present: &[(String, String)]) -> Vec<String> {
        let mut names: Vec<String> = self
            .flow_index(present)
            .iter()
            .map(|id| self.flow_slot_name(id))
            .collect();
        names.push(self.flow_index_name());
        names.push(self.code_verifier_name());
        names.retain(|n| present.iter().any(|(p, _)| p == n));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pkce.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_challenge_is_the_one_auth_js_computes_for_the_same_verifier() {
        let vectors = fixture()["vectors"].as_array().unwrap().clone();
        assert!(vectors.len() >= 2);
        for v in vectors {
            let verifier = v["verifier"].as_str().unwrap();
            assert_eq!(challenge(verifier), v["challenge"].as_str().unwrap());
            assert_eq!(v["method"], "s256");
        }
    }

    #[test]
    fn a_verifier_has_auth_js_shape_and_is_never_repeated() {
        let auth_js = fixture()["sign_in_with_oauth"]["verifier"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = new_verifier().unwrap();
        let b = new_verifier().unwrap();
        for v in [&a, &b, &auth_js] {
            assert_eq!(v.len(), 112);
            assert!(v
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
        assert_ne!(a, b);
    }
}
