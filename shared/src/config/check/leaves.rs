//! The types of dbsafe.toml's settings ([`Leaf`]s): each says what it expects and reads its
//! value from what is written, with the messages dbsafe has always given.

use std::ops::Range;
use std::time::Duration;

use super::tolerant::{Leaf, Mistake, Raw};
use crate::config::{Canary, Choice, Expectation, parse_choice, parse_duration, with_article};

impl Leaf for String {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        match raw {
            Raw::String(text) => Ok(text),
            other => Err(Mistake::wrong_type("a string", &other, span)),
        }
    }
}

/// A string that must not be empty (a path, a name, a URL, ...).
#[derive(Debug)]
pub(super) struct NonEmpty(pub String);

impl Leaf for NonEmpty {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let text = String::read(raw, span)?;
        if text.is_empty() {
            return Err(Mistake::said(
                span,
                "must not be empty: give a value or remove the key",
            ));
        }
        Ok(NonEmpty(text))
    }
}

impl Leaf for bool {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        match raw {
            Raw::Boolean(value) => Ok(value),
            other => Err(Mistake::wrong_type(
                "a boolean (true or false)",
                &other,
                span,
            )),
        }
    }
}

/// A whole number from `MIN` to `u32::MAX`.
#[derive(Debug)]
pub(super) struct Count<const MIN: u32>(pub u32);

impl<const MIN: u32> Leaf for Count<MIN> {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let Raw::Integer(integer) = raw else {
            return Err(Mistake::wrong_type("an integer", &raw, span));
        };
        integer
            .and_then(|value| u32::try_from(value).ok())
            .filter(|&value| value >= MIN)
            .map(Count)
            .ok_or(Mistake::OutOfRange {
                span: span.clone(),
                min: MIN,
            })
    }
}

/// A duration string (`"5s"`, `"250ms"`, `"1m30s"`, `"0"`); zero is refused unless
/// `ALLOW_ZERO`.
#[derive(Debug)]
pub(super) struct DurationText<const ALLOW_ZERO: bool>(pub Duration);

impl<const ALLOW_ZERO: bool> Leaf for DurationText<ALLOW_ZERO> {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let Raw::String(text) = raw else {
            let expected = "a duration string like \"5s\", \"250ms\" or \"2m\"";
            return Err(Mistake::wrong_type(expected, &raw, span));
        };
        match parse_duration(&text) {
            Ok(duration) if duration.is_zero() && !ALLOW_ZERO => Err(Mistake::said(
                span,
                format!("\"{text}\" is not allowed: the duration must be above zero"),
            )),
            Ok(duration) => Ok(DurationText(duration)),
            Err(message) => Err(Mistake::said(span, message)),
        }
    }
}

/// One of the names of an enumerated setting ([`Choice`]).
#[derive(Debug)]
pub(super) struct OneOf<T>(pub T);

impl<T: Choice> Leaf for OneOf<T> {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let text = String::read(raw, span)?;
        parse_choice(&text)
            .map(OneOf)
            .map_err(|message| Mistake::said(span, message))
    }
}

/// An array of strings.
#[derive(Debug, Default)]
pub(super) struct Strings(pub Vec<String>);

impl Leaf for Strings {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let Raw::Array(items) = raw else {
            return Err(Mistake::wrong_type("an array of strings", &raw, span));
        };
        let mut strings = Vec::new();
        for item in items {
            let item_span = item.span();
            match item.into_inner() {
                Raw::String(text) => strings.push(text),
                other => {
                    let message = format!(
                        "expected an array of strings, found {} in it",
                        with_article(other.type_str())
                    );
                    return Err(Mistake::said(&item_span, message));
                }
            }
        }
        Ok(Strings(strings))
    }
}

/// A percentage string like `"1%"` or `"0.5%"`.
#[derive(Debug)]
pub(super) struct Percent(pub f64);

impl Leaf for Percent {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let parsed = match raw {
            Raw::String(text) => text
                .trim()
                .strip_suffix('%')
                .and_then(|number| number.trim().parse::<f64>().ok()),
            _ => None,
        };
        parsed.map(Percent).ok_or_else(|| {
            Mistake::said(span, "expected a percentage string like \"1%\" or \"0.5%\"")
        })
    }
}

/// The value of an invariant's session setting: always text.
#[derive(Debug)]
pub(super) struct SettingText(pub String);

impl Leaf for SettingText {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        match raw {
            Raw::String(text) => Ok(SettingText(text)),
            other => {
                let expected = "a string (settings are text, like \"42\")";
                Err(Mistake::wrong_type(expected, &other, span))
            }
        }
    }
}

impl Leaf for Expectation {
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        let text = String::read(raw, span)?;
        Expectation::parse(&text).map_err(|message| Mistake::said(span, message))
    }
}

impl Leaf for Canary {
    /// A number of members, or the members by name.
    fn read(raw: Raw, span: &Range<usize>) -> Result<Self, Mistake> {
        match raw {
            Raw::Array(_) => Strings::read(raw, span).map(|names| Canary::Members(names.0)),
            other => Count::<0>::read(other, span).map(|count| Canary::Count(count.0)),
        }
    }
}
