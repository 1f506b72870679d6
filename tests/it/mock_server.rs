//! Placeholder, owned by its module author.
