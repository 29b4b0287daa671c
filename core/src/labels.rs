//! A model's class names: how many there may be, what a name may hold, and the seven
//! emotions every tool uses unless a model says otherwise.
//!
//! The names travel inside the model (the blob, the ONNX metadata, the trainer's config), so
//! every runtime prints what the model was trained on without being told. They are kept to
//! a small safe alphabet because they end up in JSON keys, CSV columns, UART lines and the
//! live page: a name never needs quoting anywhere.

use crate::emotion::Emotion;

/// Fewest classes a model may have: a classifier needs two.
pub const MIN_CLASSES: usize = 2;
/// Most classes a model may have; fixed-size buffers (the smoother, the firmware's report)
/// hold this many scores.
pub const MAX_CLASSES: usize = 16;
/// Longest class name, in bytes.
pub const MAX_LABEL_LEN: usize = 24;

/// The seven emotion names, in output order: the labels of every model that does not name
/// its own.
pub const EMOTIONS: [&str; 7] = [
    Emotion::Angry.name(),
    Emotion::Disgusted.name(),
    Emotion::Fearful.name(),
    Emotion::Happy.name(),
    Emotion::Neutral.name(),
    Emotion::Sad.name(),
    Emotion::Surprised.name(),
];

/// Why a list of class names was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelError {
    /// Fewer than [`MIN_CLASSES`] or more than [`MAX_CLASSES`] names.
    Count(usize),
    /// Name `index` is empty, longer than [`MAX_LABEL_LEN`], or holds a character outside
    /// `a-z 0-9 _ - + .`.
    BadName {
        /// Position in the list.
        index: usize,
    },
    /// Names `first` and `second` are the same.
    Duplicate {
        /// Position of the first.
        first: usize,
        /// Position of the second.
        second: usize,
    },
}

impl core::fmt::Display for LabelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Count(n) => write!(
                f,
                "{n} class names; a model has {MIN_CLASSES} to {MAX_CLASSES}"
            ),
            Self::BadName { index } => write!(
                f,
                "class name {index} is empty, longer than {MAX_LABEL_LEN} bytes, or holds a \
                 character other than a-z, 0-9, '_', '-', '+' and '.'"
            ),
            Self::Duplicate { first, second } => {
                write!(f, "class names {first} and {second} are the same")
            }
        }
    }
}

#[cfg(any(test, feature = "std"))]
impl std::error::Error for LabelError {}

/// Whether `name` may be a class name: 1 to [`MAX_LABEL_LEN`] bytes of `a-z 0-9 _ - + .`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_LABEL_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-+.".contains(&b))
}

/// Checks a model's class names: their count, each name, and that no two are equal.
pub fn check<S: AsRef<str>>(names: &[S]) -> Result<(), LabelError> {
    if !(MIN_CLASSES..=MAX_CLASSES).contains(&names.len()) {
        return Err(LabelError::Count(names.len()));
    }
    for (index, name) in names.iter().enumerate() {
        if !is_valid_name(name.as_ref()) {
            return Err(LabelError::BadName { index });
        }
        if let Some(first) = names[..index]
            .iter()
            .position(|n| n.as_ref() == name.as_ref())
        {
            return Err(LabelError::Duplicate {
                first,
                second: index,
            });
        }
    }
    Ok(())
}

/// The name of class `index` in `labels`, or `"?"` past the end (a report line never
/// fails for want of a name).
pub fn name_of<S: AsRef<str>>(labels: &[S], index: usize) -> &str {
    labels.get(index).map_or("?", AsRef::as_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emotions_are_valid_labels() {
        assert_eq!(check(&EMOTIONS), Ok(()));
        assert_eq!(EMOTIONS[Emotion::Sad.index()], "sad");
    }

    #[test]
    fn refuses_counts_names_and_duplicates() {
        assert_eq!(check(&["happy"]), Err(LabelError::Count(1)));
        assert_eq!(check(&["a"; 17]), Err(LabelError::Count(17)));
        assert_eq!(check(&["yes", "No"]), Err(LabelError::BadName { index: 1 }));
        assert_eq!(check(&["yes", ""]), Err(LabelError::BadName { index: 1 }));
        assert_eq!(check(&["a b", "c"]), Err(LabelError::BadName { index: 0 }));
        assert_eq!(
            check(&["x", &"y".repeat(MAX_LABEL_LEN + 1)]),
            Err(LabelError::BadName { index: 1 })
        );
        assert_eq!(
            check(&["smile", "no_smile", "smile"]),
            Err(LabelError::Duplicate {
                first: 0,
                second: 2
            })
        );
        assert_eq!(check(&["smile", "no_smile", "v1.2", "a+b-c"]), Ok(()));
    }

    #[test]
    fn names_past_the_end_print_as_a_question_mark() {
        assert_eq!(name_of(&EMOTIONS, 3), "happy");
        assert_eq!(name_of(&EMOTIONS, 7), "?");
    }
}
