//! Documents bestand hands to people: the loan agreement (Leihvertrag) now, procurement
//! reports later. Each takes plain data and gives bytes; none reads the database or the clock,
//! so the CLI and a server render the same document from the same data.

pub mod agreement;
