//! Placeholder for the jamf_school mock server (issue 3); being written.
