//! Placeholder for the intune connector (issue 3); being written.
