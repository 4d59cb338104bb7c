//! The one check of a user id, wherever it enters the crate (binding, login, queries).

use crate::error::CartError;

/// The longest user id the schema stores (`VARCHAR(255)`; SQLite checks `length()`), in
/// characters.
pub(crate) const MAX_USER_ID_LEN: usize = 255;

/// Checks a user id: 1 to [`MAX_USER_ID_LEN`] characters, no control characters.
///
/// An id the database could not store would otherwise fail there (a 500 over HTTP); this
/// refuses it first with [`CartError::InvalidPayload`], answered with 400.
pub(crate) fn check_user_id(user_id: &str) -> Result<(), CartError> {
    let bad = |m: String| Err(CartError::InvalidPayload(m));
    if user_id.is_empty() {
        return bad("User id cannot be empty.".into());
    }
    let len = user_id.chars().count();
    if len > MAX_USER_ID_LEN {
        return bad(format!(
            "User id must be at most {MAX_USER_ID_LEN} characters, got {len}."
        ));
    }
    if let Some(c) = user_id.chars().find(|c| c.is_control()) {
        return bad(format!(
            "User id cannot contain control characters, got U+{:04X}.",
            u32::from(c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        assert!(check_user_id("alice").is_ok());
        assert!(check_user_id(&"é".repeat(255)).is_ok());
        assert_eq!(
            check_user_id(&"a".repeat(256)).unwrap_err().to_string(),
            "User id must be at most 255 characters, got 256."
        );
        assert_eq!(
            check_user_id("").unwrap_err().to_string(),
            "User id cannot be empty."
        );
        assert_eq!(
            check_user_id("bob\n").unwrap_err().to_string(),
            "User id cannot contain control characters, got U+000A."
        );
        assert!(check_user_id("a").is_ok());
        assert!(matches!(
            check_user_id("").unwrap_err(),
            CartError::InvalidPayload(_)
        ));
    }
}
