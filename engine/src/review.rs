//! What a review must look like: a rating of 1 to 5 stars, a title, an optional body.
//! Who may write one (a customer who received the product, once) is the shop's rule.

use crate::product::Invalid;

pub const REVIEW_TITLE_CHARS_MAX: usize = 200;
pub const REVIEW_BODY_CHARS_MAX: usize = 5_000;

/// A review as a customer sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDraft {
    /// Any integer the client sent: checked here, so a 0 or a 6 gets a clear answer.
    pub rating: i64,
    pub title: String,
    pub body: String,
}

/// A review that follows the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidReview {
    pub rating: u8,
    /// Trimmed, never empty.
    pub title: String,
    pub body: String,
}

impl ReviewDraft {
    pub fn validate(self) -> Result<ValidReview, Invalid> {
        let rating = u8::try_from(self.rating)
            .ok()
            .filter(|rating| (1..=5).contains(rating))
            .ok_or_else(|| Invalid::new("rating", "must be a whole number from 1 to 5"))?;
        let title = self.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > REVIEW_TITLE_CHARS_MAX {
            return Err(Invalid::new(
                "title",
                format!("must be 1 to {REVIEW_TITLE_CHARS_MAX} characters"),
            ));
        }
        if self.body.chars().count() > REVIEW_BODY_CHARS_MAX {
            return Err(Invalid::new(
                "body",
                format!("at most {REVIEW_BODY_CHARS_MAX} characters"),
            ));
        }
        Ok(ValidReview {
            rating,
            title,
            body: self.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(rating: i64, title: &str, body_chars: usize) -> ReviewDraft {
        ReviewDraft {
            rating,
            title: title.into(),
            body: "x".repeat(body_chars),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let field = |draft: ReviewDraft| draft.validate().map_err(|invalid| invalid.field);
        assert_eq!(field(draft(0, "ok", 0)), Err("rating"));
        assert_eq!(field(draft(6, "ok", 0)), Err("rating"));
        assert_eq!(field(draft(-1, "ok", 0)), Err("rating"));
        assert_eq!(field(draft(3, "   ", 0)), Err("title"));
        assert_eq!(field(draft(3, &"t".repeat(201), 0)), Err("title"));
        assert_eq!(field(draft(3, "ok", 5_001)), Err("body"));
        let valid = draft(5, "  Great phone ", 5_000).validate().expect("valid");
        assert_eq!((valid.rating, valid.title.as_str()), (5, "Great phone"));
    }
}
