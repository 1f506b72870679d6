//! Placeholder for the relution connector (issue 3); being written.
