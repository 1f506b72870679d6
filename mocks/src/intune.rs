//! Placeholder for the intune mock server (issue 3); being written.
