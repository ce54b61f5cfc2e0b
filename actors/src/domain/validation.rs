//! Field-level validation: every input type reports all its problems at once, each naming the
//! offending field, so a client can fix a request in one round trip.

use serde::Serialize;

/// One offending field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name as it appears in the request body (`sans[2]` for list items).
    pub field: String,
    /// What is wrong, in a sentence a client can show.
    pub message: String,
}

/// Characters no free text of this API may hold: control characters (NUL among them, which
/// PostgreSQL cannot store) and the invisible formatting characters that reorder or hide text on
/// screen (bidirectional overrides and isolates, zero-width characters, the byte-order mark), so
/// a name can never display as something it is not.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// The message for a field holding an [`is_unsafe_char`].
pub const UNSAFE_TEXT: &str =
    "must not contain control characters or invisible formatting characters (such as bidirectional overrides)";

/// Collects field errors while an input is checked.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// Records that `field` is invalid because of `message`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    /// `Ok(())` when nothing was recorded, else every recorded error.
    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }

    /// Checks a required free-text field: non-blank, at most `max` characters, no control chars.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if value.chars().any(is_unsafe_char) {
            self.add(field, UNSAFE_TEXT);
        }
    }

    /// Checks an optional free-text field: at most `max` characters, no control characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if value.chars().any(is_unsafe_char) {
            self.add(field, UNSAFE_TEXT);
        }
    }

    /// Checks an optional e-mail address (empty is allowed): one `@` with text on both sides and
    /// a dot in the domain, no whitespace.
    pub fn email(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let valid = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || is_unsafe_char(c))
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            });
        if !valid {
            self.add(field, "must be an e-mail address such as alice@example.com");
        }
    }

    /// Checks a reference to another resource by id.
    pub fn id(&mut self, field: &str, value: &str) {
        if !is_valid_id(value) {
            self.add(
                field,
                "must be an id of 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
            );
        }
    }
}

/// Whether `value` is a well-formed resource id (certctl's ids such as `mc-api-prod`, `t-platform`).
pub fn is_valid_id(value: &str) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && value.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_certctl_prefix_style() {
        assert!(is_valid_id("mc-api-prod"));
        assert!(is_valid_id("t-platform"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("-leading-dash"));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id(&"a".repeat(129)));
    }

    #[test]
    fn violations_collect_every_field() {
        let mut v = Violations::default();
        v.text("name", " ", 10);
        v.text("common_name", "way too long a name", 5);
        let errors = v.into_result().unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "name");
        assert_eq!(errors[1].field, "common_name");
    }
}
