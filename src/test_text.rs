//! proptest strategies for the text files opsdeck reads (keymaps, themes, rules, config):
//! arbitrary strings, TOML-shaped token soup, and real files with random edits.

use proptest::prelude::*;

/// Bits of TOML and of the files' own vocabulary, to splice into text.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "=",
            "\"",
            "'",
            "[",
            "]",
            "[[",
            "]]",
            "{",
            "}",
            ",",
            ".",
            "#",
            "\n",
            " ",
            "\"\"\"",
            "'''",
            "\\",
            "\\u",
            "\r\n",
            "\t",
            "true",
            "1e999",
            "-1",
            "0x",
            "nan",
            "inf",
            "ctrl-",
            "alt-",
            "shift-",
            "f13",
            "space",
            "[global]",
            "[[rule]]",
            "[roles]",
            "expr",
            "for",
            "name",
            "severity",
            "and",
            ">=",
            "==",
            "_",
            "#ff00ff",
            "bright-",
            "fg",
            "bg",
            "bold",
            "é",
            "\u{0}",
            "\u{7f}",
            "\u{feff}",
            "\u{10ffff}",
        ])
        .prop_map(String::from),
        "[a-z_]{1,12}",
        "[0-9]{1,24}",
        any::<char>().prop_map(String::from),
    ]
}

/// Text made of tokens: mostly not TOML, sometimes nearly.
pub fn toml_like() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..64).prop_map(|t| t.concat())
}

/// Any string, or token soup.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), toml_like()]
}

/// One edit of a file, positions taken modulo its length.
#[derive(Debug, Clone)]
pub enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), token()).prop_map(|(p, t)| Edit::Insert(p, t)),
        (any::<usize>(), any::<char>()).prop_map(|(p, c)| Edit::Replace(p, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match e {
            Edit::Delete(p, n) => {
                let start = (p % len).min(chars.len());
                let end = (start + n).min(chars.len());
                chars.drain(start..end);
            }
            Edit::Insert(p, t) => {
                let at = p % (chars.len() + 1);
                chars.splice(at..at, t.chars());
            }
            Edit::Replace(p, c) => {
                if !chars.is_empty() {
                    chars[p % len] = *c;
                }
            }
            Edit::DuplicateLine(p) | Edit::SwapLines(p, _) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let i = p % lines.len();
                match e {
                    Edit::SwapLines(_, q) => {
                        let j = q % lines.len();
                        lines.swap(i, j);
                    }
                    _ => lines.insert(i, lines[i]),
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// One of `files`, with 1-8 random edits.
pub fn mutated(files: Vec<&'static str>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(files),
        prop::collection::vec(edit(), 1..8),
    )
        .prop_map(|(f, edits)| apply(f, &edits))
}
