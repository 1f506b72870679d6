//! Placeholder for the relution mock server (issue 3); being written.
