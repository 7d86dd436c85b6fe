//! Usernames: trimmed and lowercased, then 3..=30 characters of `[a-z0-9_]` (the database's
//! `profiles_username_format` check), so `" Ann_Smith "` and `ann_smith` are the same name.

/// A normalised, valid username.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 30;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernameError {
    Length,
    Characters,
}

impl UsernameError {
    pub fn message(self) -> &'static str {
        match self {
            Self::Length => "must be 3 to 30 characters long",
            Self::Characters => "may contain only lowercase letters, digits and underscores",
        }
    }
}

/// Lowercasing is ASCII-only on purpose: Unicode case mapping could turn a non-ASCII
/// character into an ASCII one (`K`, the Kelvin sign, lowercases to `k`), which would make
/// two visually different inputs the same name.
pub fn normalize(raw: &str) -> Result<Username, UsernameError> {
    let name = raw.trim().to_ascii_lowercase();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(UsernameError::Characters);
    }
    if !(Username::MIN_LEN..=Username::MAX_LEN).contains(&name.len()) {
        return Err(UsernameError::Length);
    }
    Ok(Username(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(normalize("  Ann_Smith ").unwrap().as_str(), "ann_smith");
    }

    #[test]
    fn accepts_the_boundaries() {
        assert!(normalize("abc").is_ok());
        assert!(normalize(&"a".repeat(30)).is_ok());
        assert!(normalize("a_1").is_ok());
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert_eq!(normalize("ab"), Err(UsernameError::Length));
        assert_eq!(normalize(&"a".repeat(31)), Err(UsernameError::Length));
        assert_eq!(normalize("   "), Err(UsernameError::Length));
    }

    #[test]
    fn rejects_other_characters() {
        for raw in [
            "ann-smith",
            "ann smith",
            "ann.s",
            "änn",
            "ann\u{212a}",
            "a%b",
            "a*b",
        ] {
            assert_eq!(normalize(raw), Err(UsernameError::Characters), "{raw}");
        }
    }
}
