//! Validation of user-chosen names and relative paths, so that nothing a client sends can
//! name a file outside the data directory or smuggle separators into a download header.

use crate::error::AppError;

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 128;

/// Accepts `[A-Za-z0-9._-]{1,128}` not starting with `.` or `-` (so no `..`, `/`, `\`, NUL,
/// hidden files or option-like names). `what` names the field in the message.
pub fn check_name(what: &str, name: &str) -> Result<(), AppError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name.chars().all(ok_char);
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_name",
            format!(
                "{what} `{}` is not allowed: use 1-{MAX_NAME_LEN} letters, digits, `.`, `_` or `-`, \
                 not starting with `.` or `-`",
                name.escape_default()
            ),
        ))
    }
}

/// Accepts a relative path of `/`-separated [`check_name`] components (for files inside a
/// checkpoint directory).
pub fn check_rel_path(path: &str) -> Result<(), AppError> {
    if path.is_empty() || path.len() > 1024 {
        return Err(AppError::bad_request(
            "invalid_name",
            "empty or over-long path",
        ));
    }
    path.split('/')
        .try_for_each(|c| check_name("path component", c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["wu2020", "a.h5ad", "team_A-1", "x"] {
            assert!(check_name("n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "..", "../etc", "a/b", "a\\b", ".hidden", "-rf", "a b", "é", "a\0b",
        ] {
            assert!(check_name("n", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("n", &"a".repeat(129)).is_err());
        assert!(check_rel_path("classifier/config.json").is_ok());
        assert!(check_rel_path("classifier/../x").is_err());
        assert!(check_rel_path("/abs").is_err());
    }
}
