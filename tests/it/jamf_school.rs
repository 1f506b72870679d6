//! Placeholder for the jamf_school tests (issue 3); being written.
