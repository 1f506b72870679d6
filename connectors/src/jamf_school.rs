//! Placeholder for the jamf_school connector (issue 3); being written.
