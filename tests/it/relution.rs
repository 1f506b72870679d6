//! Placeholder for the relution tests (issue 3); being written.
