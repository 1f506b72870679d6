//! Placeholder for the intune tests (issue 3); being written.
