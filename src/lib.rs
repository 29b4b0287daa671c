//! Cross-crate tests live in `tests/`; this package holds no code of its own.
