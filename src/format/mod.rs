//! Text for tables, sizes, durations and times: one formatter of each, shared by the
//! console's panes and the CLI verbs.

pub mod table;
mod time;
mod units;

pub use table::{cut, opt};
pub use time::*;
pub use units::*;

/// 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_and_finds_lines() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
