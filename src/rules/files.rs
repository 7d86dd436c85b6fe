//! Who may put which file where in Supabase Storage: the per-bucket rules of `[storage]`
//! (content types, size, the path template that decides the folder) and the path checks
//! every object name passes before any call to Storage.
//!
//! The database holds the same rules (supabase/migrations/..._storage.sql: the bucket's size
//! and type limits, and RLS on `storage.objects` keeping each user under their own folder),
//! so a signed URL used other than as declared is still refused by Storage.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ConfigError;

/// `[storage]`: the buckets supagate signs URLs for. A bucket not listed is refused.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Lifetime of a signed download URL (`expiresIn` sent to Storage), in seconds.
    #[serde(default = "default_download_ttl_secs")]
    pub download_ttl_secs: u64,
    #[serde(default)]
    pub buckets: Vec<BucketRule>,
}

fn default_download_ttl_secs() -> u64 {
    60
}

/// `[[storage.buckets]]`: one bucket and what may be uploaded into it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRule {
    /// The bucket's id in `storage.buckets`.
    pub name: String,
    /// Exact MIME types (`image/png`); anything else is 415 `content_type_not_allowed`.
    pub allowed_content_types: Vec<String>,
    /// Largest declared size, in bytes; more is 413 `file_too_large`.
    pub max_size_bytes: u64,
    /// Where an upload goes: `/`-separated segments of literal text and `{user_id}`,
    /// `{uuid}` (a new random UUID per upload), `{ext}` (the lowercased extension of the
    /// client's file name). The first segment must be `{user_id}`: the folder is the user's.
    pub path_template: String,
    /// Send `x-upsert: true`: an upload may replace the object at its path (a template
    /// without `{uuid}`, such as `{user_id}/avatar.{ext}`). Storage then also checks the
    /// `UPDATE` policy.
    #[serde(default)]
    pub upsert: bool,
}

impl StorageSettings {
    pub fn bucket(&self, name: &str) -> Option<&BucketRule> {
        self.buckets.iter().find(|b| b.name == name)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.download_ttl_secs == 0 {
            return Err(ConfigError::invalid(
                "storage.download_ttl_secs",
                "must be greater than 0",
            ));
        }
        for (i, bucket) in self.buckets.iter().enumerate() {
            let setting = |key: &str| format!("storage.buckets[{i}].{key}");
            // Storage's own rule for bucket names, narrowed to what needs no encoding in a URL.
            if bucket.name.is_empty()
                || bucket.name.len() > 100
                || !bucket.name.bytes().all(|b| is_safe_byte(b) && b != b'.')
            {
                return Err(ConfigError::invalid(
                    setting("name"),
                    "must be 1-100 characters of letters, digits, `-` and `_`",
                ));
            }
            if self.buckets[..i].iter().any(|b| b.name == bucket.name) {
                return Err(ConfigError::invalid(
                    setting("name"),
                    format!("`{}` is listed twice", bucket.name),
                ));
            }
            if bucket.allowed_content_types.is_empty() {
                return Err(ConfigError::invalid(
                    setting("allowed_content_types"),
                    "must list at least one MIME type",
                ));
            }
            if let Some(bad) = bucket
                .allowed_content_types
                .iter()
                .find(|t| !is_mime_type(t))
            {
                return Err(ConfigError::invalid(
                    setting("allowed_content_types"),
                    format!("`{bad}` is not a lowercase `type/subtype`"),
                ));
            }
            if bucket.max_size_bytes == 0 {
                return Err(ConfigError::invalid(
                    setting("max_size_bytes"),
                    "must be greater than 0",
                ));
            }
            PathTemplate::parse(&bucket.path_template)
                .map_err(|problem| ConfigError::invalid(setting("path_template"), problem))?;
        }
        Ok(())
    }
}

/// Letters, digits, `-`, `_` and `.`: the only bytes a segment supagate writes or reads may
/// hold. Nothing in such a path needs percent-encoding, and none of it means anything to a
/// URL, to Storage's routing or to `storage.foldername()`.
fn is_safe_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// `type/subtype` in lowercase letters, digits and `.+-` (no parameters).
fn is_mime_type(t: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    };
    matches!(t.split_once('/'), Some((a, b)) if ok(a) && ok(b))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    UserId,
    Uuid,
    Ext,
}

/// A parsed `path_template`: segments of pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Vec<Piece>>,
}

impl PathTemplate {
    /// Checked at start-up: known placeholders only, no empty or dot-only segment, literal
    /// text of safe bytes, and `{user_id}` alone as the first segment.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        for segment in template.split('/') {
            let mut pieces = Vec::new();
            let mut rest = segment;
            while !rest.is_empty() {
                if let Some(after) = rest.strip_prefix('{') {
                    let (name, tail) = after
                        .split_once('}')
                        .ok_or_else(|| format!("`{segment}`: a `{{` without `}}`"))?;
                    pieces.push(match name {
                        "user_id" => Piece::UserId,
                        "uuid" => Piece::Uuid,
                        "ext" => Piece::Ext,
                        other => {
                            return Err(format!(
                                "unknown placeholder `{{{other}}}` (use {{user_id}}, {{uuid}}, {{ext}})"
                            ))
                        }
                    });
                    rest = tail;
                } else {
                    let end = rest.find('{').unwrap_or(rest.len());
                    let text = &rest[..end];
                    if !text.bytes().all(is_safe_byte) {
                        return Err(format!(
                            "`{text}`: literal text may hold letters, digits, `-`, `_` and `.` only"
                        ));
                    }
                    pieces.push(Piece::Text(text.to_owned()));
                    rest = &rest[end..];
                }
            }
            let dots_only =
                matches!(pieces.as_slice(), [Piece::Text(t)] if t.bytes().all(|b| b == b'.'));
            if pieces.is_empty() || dots_only {
                return Err("no segment may be empty, `.` or `..`".to_owned());
            }
            segments.push(pieces);
        }
        if segments.len() < 2 || segments[0] != [Piece::UserId] {
            return Err(
                "must start with the folder `{user_id}/` (the user's own prefix) and name a file under it"
                    .to_owned(),
            );
        }
        Ok(Self { segments })
    }

    pub fn uses_ext(&self) -> bool {
        self.segments.iter().flatten().any(|p| *p == Piece::Ext)
    }

    /// The object name for one upload. `ext` is already checked ([`extension`]).
    pub fn render(&self, user: Uuid, fresh: Uuid, ext: &str) -> String {
        let mut out = String::with_capacity(96);
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for piece in segment {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::UserId => out.push_str(&user.to_string()),
                    Piece::Uuid => out.push_str(&fresh.to_string()),
                    Piece::Ext => out.push_str(ext),
                }
            }
        }
        out
    }
}

/// Why a name or path is refused; each is a 4xx before any call to Storage.
#[derive(Debug, PartialEq, Eq)]
pub enum PathProblem {
    /// Traversal, an encoded or back slash, an empty segment, a control character or
    /// anything outside the safe bytes.
    Unsafe(&'static str),
    /// A well-formed path outside the caller's own folder.
    NotYours,
}

/// Where a path cannot be used, for the client's message.
fn unsafe_reason(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        return Some("is empty");
    }
    if text.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if text.contains('\\') {
        return Some("contains a backslash");
    }
    if text.contains('%') {
        return Some("contains `%` (an encoded character such as `%2F`)");
    }
    None
}

/// The extension of a client's file name, lowercased: 1-16 letters or digits after the last
/// `.`. The name itself is never used as a path, but one that tries traversal, encoding or
/// control characters is refused outright rather than quietly cleaned.
pub fn extension(name: &str) -> Result<String, PathProblem> {
    if let Some(reason) = unsafe_reason(name) {
        return Err(PathProblem::Unsafe(reason));
    }
    if name.contains('/') {
        return Err(PathProblem::Unsafe(
            "must be a file name, not a path (contains `/`)",
        ));
    }
    if name == "." || name == ".." {
        return Err(PathProblem::Unsafe("is `.` or `..`"));
    }
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && (1..=16).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(ext.to_ascii_lowercase())
        }
        _ => Err(PathProblem::Unsafe(
            "needs an extension of 1-16 letters or digits (`photo.png`)",
        )),
    }
}

/// A path a caller asks to read: `/`-separated segments of safe bytes, none empty, `.` or
/// `..`, at most 1024 bytes, whose first segment is the caller's id (the folder the path
/// template gives every user). Returned as it is: it needs no encoding.
pub fn own_path(path: &str, user: Uuid) -> Result<&str, PathProblem> {
    if let Some(reason) = unsafe_reason(path) {
        return Err(PathProblem::Unsafe(reason));
    }
    if path.len() > 1024 {
        return Err(PathProblem::Unsafe("is longer than 1024 bytes"));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(PathProblem::Unsafe(
                "has an empty segment (`//`, or a leading or trailing `/`)",
            ));
        }
        if segment == "." || segment == ".." {
            return Err(PathProblem::Unsafe("has a `.` or `..` segment"));
        }
        if !segment.bytes().all(is_safe_byte) {
            return Err(PathProblem::Unsafe(
                "may hold letters, digits, `-`, `_`, `.` and `/` only",
            ));
        }
    }
    let folder = path.split('/').next().unwrap_or_default();
    let mut id = Uuid::encode_buffer();
    if !path.contains('/') || folder != &*user.hyphenated().encode_lower(&mut id) {
        return Err(PathProblem::NotYours);
    }
    Ok(path)
}

/// Whether `content_type` (parameters such as `; charset=` ignored, case-insensitive) is one
/// the bucket allows; the allowed form is returned, to be sent on.
pub fn allowed_content_type<'a>(bucket: &'a BucketRule, content_type: &str) -> Option<&'a str> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    bucket
        .allowed_content_types
        .iter()
        .find(|t| t.eq_ignore_ascii_case(essence))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: Uuid = Uuid::from_u128(0x4b8e5d0c_6f1a_4c7e_9a3b_2d5f8e1c7a90);
    const FRESH: Uuid = Uuid::from_u128(0x0b6f1c2e_4a5d_4e8f_9b1a_2c3d4e5f6a7b);

    #[test]
    fn the_template_puts_the_file_under_the_users_folder() {
        let t = PathTemplate::parse("{user_id}/{uuid}.{ext}").unwrap();
        assert_eq!(t.render(USER, FRESH, "png"), format!("{USER}/{FRESH}.png"));
        let t = PathTemplate::parse("{user_id}/avatars/avatar.{ext}").unwrap();
        assert_eq!(
            t.render(USER, FRESH, "jpg"),
            format!("{USER}/avatars/avatar.jpg")
        );
        assert!(t.uses_ext());
    }

    #[test]
    fn templates_that_would_not_keep_users_apart_or_are_malformed_are_refused() {
        for bad in [
            "{uuid}.{ext}",
            "{user_id}",
            "shared/{user_id}/{uuid}",
            "{user_id}x/{uuid}",
            "{user_id}//{uuid}",
            "{user_id}/../{uuid}",
            "{user_id}/{name}",
            "{user_id}/{uuid",
            "{user_id}/a b",
            "{user_id}/%2e%2e",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_extension_is_the_lowercased_tail_of_a_plain_file_name() {
        assert_eq!(extension("Photo.PNG").unwrap(), "png");
        assert_eq!(extension("archive.tar.gz").unwrap(), "gz");
        for bad in [
            "../x.png",
            "a/b.png",
            "..",
            "x%2F..%2Fy.png",
            "a\\b.png",
            "a\u{0}.png",
            "noext",
            ".png",
            "x.p_g",
            "x.abcdefghijklmnopq",
            "",
        ] {
            assert!(
                matches!(extension(bad), Err(PathProblem::Unsafe(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_read_path_must_be_safe_and_under_the_callers_folder() {
        let mine = format!("{USER}/{FRESH}.png");
        assert_eq!(own_path(&mine, USER), Ok(mine.as_str()));
        let theirs = format!("{FRESH}/{USER}.png");
        assert_eq!(own_path(&theirs, USER), Err(PathProblem::NotYours));
        assert_eq!(
            own_path(&USER.to_string(), USER),
            Err(PathProblem::NotYours)
        );
        let upper = format!("{}/x.png", USER.to_string().to_uppercase());
        assert_eq!(own_path(&upper, USER), Err(PathProblem::NotYours));
        for bad in [
            format!("{USER}/../{FRESH}/x.png"),
            format!("{USER}/./x.png"),
            format!("{USER}//x.png"),
            format!("{USER}/x.png/"),
            format!("/{USER}/x.png"),
            format!("{USER}%2F..%2F{FRESH}/x.png"),
            format!("{USER}/a\\..\\b.png"),
            format!("{USER}/a\nb.png"),
            format!("{USER}/a b.png"),
            format!("{USER}/é.png"),
            String::new(),
        ] {
            assert!(
                matches!(own_path(&bad, USER), Err(PathProblem::Unsafe(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn content_types_match_exactly_ignoring_case_and_parameters() {
        let bucket = BucketRule {
            name: "avatars".into(),
            allowed_content_types: vec!["image/png".into()],
            max_size_bytes: 1,
            path_template: "{user_id}/{uuid}.{ext}".into(),
            upsert: false,
        };
        assert_eq!(
            allowed_content_type(&bucket, "IMAGE/PNG"),
            Some("image/png")
        );
        assert_eq!(
            allowed_content_type(&bucket, "image/png; charset=binary"),
            Some("image/png")
        );
        assert_eq!(allowed_content_type(&bucket, "image/pngx"), None);
        assert_eq!(allowed_content_type(&bucket, "image/*"), None);
    }

    #[test]
    fn bucket_settings_are_checked_naming_the_setting() {
        let mut settings = StorageSettings {
            download_ttl_secs: 60,
            buckets: vec![BucketRule {
                name: "avatars".into(),
                allowed_content_types: vec!["image/png".into()],
                max_size_bytes: 10,
                path_template: "{user_id}/{uuid}.{ext}".into(),
                upsert: false,
            }],
        };
        assert!(settings.validate().is_ok());
        settings.buckets[0].path_template = "{uuid}".into();
        let e = settings.validate().unwrap_err();
        assert_eq!(e.setting, "storage.buckets[0].path_template");
        settings.buckets[0].path_template = "{user_id}/{uuid}".into();
        settings.buckets[0].allowed_content_types = vec!["image/*".into()];
        let e = settings.validate().unwrap_err();
        assert_eq!(e.setting, "storage.buckets[0].allowed_content_types");
        settings.buckets[0].allowed_content_types = vec!["image/png".into()];
        settings.buckets.push(settings.buckets[0].clone());
        let e = settings.validate().unwrap_err();
        assert_eq!(e.setting, "storage.buckets[1].name");
    }
}
