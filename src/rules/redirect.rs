//! Where a sign-in may send the browser afterwards (`next`): a path on this site only, never
//! an open redirect. Browsers are generous readers of `Location` (`//host` and `/\host` are
//! other hosts; tabs and newlines are dropped before parsing; `\` counts as `/`), so anything
//! a browser, or a framework that decodes the path once more, could read as another origin
//! is refused rather than repaired.

/// The longest `next` accepted (a path, not a payload).
const MAX_LEN: usize = 2048;

/// `next` when it is a same-origin path (`/`, `/account?tab=mfa#top`), else `None`.
pub fn same_origin_path(next: &str) -> Option<&str> {
    if next.len() > MAX_LEN || !is_plain_path(next, false) {
        return None;
    }
    // Refuse what turns into another origin after percent-decoding too (`/%2F%2Fhost`,
    // `/%5Chost`, `%0d%0a`): decode until nothing changes, at most a few rounds.
    let mut text = next.to_owned();
    for _ in 0..4 {
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8()
            .ok()?
            .into_owned();
        if decoded == text {
            break;
        }
        // An encoded space (`?q=a%20b`) is a path's business; everything else is not.
        if !is_plain_path(&decoded, true) {
            return None;
        }
        text = decoded;
    }
    // Belt and braces: resolved against a base, it must stay on that base's origin.
    let base = url::Url::parse("https://origin.invalid/").ok()?;
    let joined = base.join(next).ok()?;
    (joined.origin() == base.origin()).then_some(next)
}

/// Starts with one `/`, and holds no `\`, control character or whitespace (but a plain space
/// when `space_ok`) anywhere.
fn is_plain_path(text: &str, space_ok: bool) -> bool {
    let mut chars = text.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !text
            .chars()
            .any(|c| c == '\\' || c.is_control() || (c.is_whitespace() && !(space_ok && c == ' ')))
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn paths_on_this_site_pass_unchanged() {
        for next in [
            "/",
            "/account",
            "/account/settings?tab=mfa&x=1#top",
            "/a/b/../c",
            "/%E2%9C%93",
            "/@handle",
            "/search?q=a%20b",
        ] {
            assert_eq!(same_origin_path(next), Some(next), "{next}");
        }
    }

    #[test]
    fn absolute_and_protocol_relative_urls_are_refused() {
        for next in [
            "https://evil.example",
            "http://evil.example/path",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "javascript:alert(1)",
            "data:text/html,hi",
            "evil.example",
            "account",
            "",
            " /account",
            "https:/evil.example",
        ] {
            assert_eq!(same_origin_path(next), None, "{next:?}");
        }
    }

    #[test]
    fn encoded_slashes_backslashes_and_line_breaks_are_refused() {
        for next in [
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "%2F%2Fevil.example",
            "/%252F%252Fevil.example",
            "/account%0d%0aSet-Cookie:x=1",
            "/account%0ALocation:%20//evil.example",
            "/%09/evil.example",
            "/%E2%80%A8evil",
            "/%ff",
        ] {
            assert_eq!(same_origin_path(next), None, "{next:?}");
        }
    }

    #[test]
    fn raw_control_characters_and_whitespace_are_refused() {
        for next in [
            "/\t/evil.example",
            "/\r\nLocation: //evil.example",
            "/\n/evil.example",
            "/a\u{0}b",
            "/a b",
            "/\u{2028}evil",
        ] {
            assert_eq!(same_origin_path(next), None, "{next:?}");
        }
        assert_eq!(same_origin_path(&format!("/{}", "a".repeat(2048))), None);
    }
}
