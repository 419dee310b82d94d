//! Operations actions shared by the CLI verbs and the console: each is a library function
//! that reports progress through a callback and ends with an outcome or a precise error.

pub mod membership;
