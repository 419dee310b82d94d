//! Themes: TOML files mapping semantic roles (ok, warn, leader, border, ...) to colours and
//! modifiers. Colours degrade to what the terminal can show (truecolor → 256 → 16), and
//! `NO_COLOR` or a dumb terminal strips them, keeping bold/reverse so the selected row and
//! banners stay visible. A bad file is refused with its line and reason.

use std::collections::BTreeMap;
use std::path::Path;

use color_eyre::eyre::{eyre, Result};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use toml::Spanned;

use crate::format::line_of;

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("mono", include_str!("../../themes/mono.toml")),
];

macro_rules! roles {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// What a piece of text means; themes give each a style.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Role { $(#[doc = $doc] $variant,)* }
        impl Role {
            pub const ALL: &'static [Role] = &[$(Role::$variant,)*];
            pub fn name(self) -> &'static str {
                match self { $(Role::$variant => $name,)* }
            }
        }
    };
}

roles! {
    Text = "text": "ordinary text",
    Dim = "dim": "secondary text, debug logs, hints",
    Border = "border": "pane borders",
    Title = "title": "pane titles and the active tab",
    Header = "header": "table headers",
    Highlight = "highlight": "the selected row or the current search match",
    Match = "match": "search matches",
    Ok = "ok": "healthy",
    Warn = "warn": "degraded, warnings",
    Critical = "critical": "no quorum, errors",
    Leader = "leader": "the leader",
    Follower = "follower": "followers",
    Learner = "learner": "learners",
    Candidate = "candidate": "candidates",
    Down = "down": "unreachable nodes",
}

/// What the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Ansi256,
    Ansi16,
    Mono,
}

impl ColorDepth {
    /// From `NO_COLOR`, `COLORTERM` and `TERM`, as most terminal programs decide.
    pub fn detect() -> ColorDepth {
        let var = |k| std::env::var(k).unwrap_or_default();
        if !var("NO_COLOR").is_empty() || var("TERM") == "dumb" {
            ColorDepth::Mono
        } else if matches!(var("COLORTERM").as_str(), "truecolor" | "24bit") {
            ColorDepth::TrueColor
        } else if var("TERM").contains("256color") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: Vec<Style>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    roles: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

impl Theme {
    /// `--theme NAME|PATH`, degraded to `depth`.
    pub fn load(choice: &str, depth: ColorDepth) -> Result<Theme> {
        let theme = if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == choice) {
            Theme::parse(name, &format!("built-in theme {name}"), text)?
        } else if choice.contains('/') || choice.ends_with(".toml") {
            let path = Path::new(choice);
            let text = std::fs::read_to_string(path)
                .map_err(|e| eyre!("cannot read theme {}: {e}", path.display()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| choice.to_string());
            Theme::parse(&name, &path.display().to_string(), &text)?
        } else {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(eyre!(
                "unknown theme {choice:?}: the built-in themes are {}; or pass a path to a .toml file",
                names.join(", ")
            ));
        };
        Ok(theme.degrade(depth))
    }

    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Theme> {
        let raw: RawTheme = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            eyre!("theme {origin}:{line}: {}", e.message().trim_end())
        })?;
        let mut styles: Vec<Option<Style>> = vec![None; Role::ALL.len()];
        let mut errors = Vec::new();
        for (role_name, value) in &raw.roles {
            let line = line_of(text, role_name.span().start);
            let Some(i) = Role::ALL
                .iter()
                .position(|r| r.name() == role_name.get_ref())
            else {
                errors.push(format!(
                    "theme {origin}:{line}: unknown role {:?}; roles are: {}",
                    role_name.get_ref(),
                    Role::ALL
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            };
            match parse_style(value.get_ref()) {
                Ok(style) => styles[i] = Some(style),
                Err(reason) => errors.push(format!(
                    "theme {origin}:{line}: role {:?}: {reason}",
                    role_name.get_ref()
                )),
            }
        }
        if !errors.is_empty() {
            return Err(eyre!("{}", errors.join("\n")));
        }
        // A role a theme leaves out looks like ordinary text.
        let text_style = styles[0].unwrap_or_default();
        Ok(Theme {
            name: name.to_string(),
            styles: styles
                .into_iter()
                .map(|s| s.unwrap_or(text_style))
                .collect(),
        })
    }

    pub fn style(&self, role: Role) -> Style {
        self.styles[role as usize]
    }

    pub fn degrade(mut self, depth: ColorDepth) -> Theme {
        for s in &mut self.styles {
            *s = degrade_style(*s, depth);
        }
        self
    }
}

fn degrade_style(mut s: Style, depth: ColorDepth) -> Style {
    if depth == ColorDepth::Mono {
        // Without colour a background is what marks a selection or a banner: show it as
        // reverse video instead.
        if s.bg.is_some_and(|c| c != Color::Reset) {
            s = s.add_modifier(Modifier::REVERSED);
        }
        s.fg = None;
        s.bg = None;
        return s;
    }
    s.fg = s.fg.map(|c| degrade_color(c, depth));
    s.bg = s.bg.map(|c| degrade_color(c, depth));
    s
}

const ANSI16: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

fn rgb_of_index(i: u8) -> (u8, u8, u8) {
    match i {
        0..=15 => ANSI16[i as usize].1,
        16..=231 => {
            let i = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            (level(i / 36), level(i / 6 % 6), level(i % 6))
        }
        _ => {
            let g = 8 + (i - 232) * 10;
            (g, g, g)
        }
    }
}

fn nearest16(rgb: (u8, u8, u8)) -> Color {
    let dist = |c: (u8, u8, u8)| {
        let d = |a: u8, b: u8| (a as i32 - b as i32).pow(2);
        d(c.0, rgb.0) + d(c.1, rgb.1) + d(c.2, rgb.2)
    };
    ANSI16
        .iter()
        .min_by_key(|(_, c)| dist(*c))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let cube = |v: u8| {
        if v < 48 {
            0
        } else if v < 115 {
            1
        } else {
            (v - 35) / 40
        }
    };
    let (cr, cg, cb) = (cube(r), cube(g), cube(b));
    let cube_index = 16 + 36 * cr + 6 * cg + cb;
    // A grey may be closer on the 24-step grey ramp.
    let avg = (r as u16 + g as u16 + b as u16) / 3;
    let grey_index = if avg < 8 {
        16
    } else if avg > 238 {
        231
    } else {
        232 + ((avg - 8) / 10) as u8
    };
    let dist = |i: u8| {
        let c = rgb_of_index(i);
        let d = |a: u8, b: u8| (a as i32 - b as i32).pow(2);
        d(c.0, r) + d(c.1, g) + d(c.2, b)
    };
    if dist(grey_index) < dist(cube_index) {
        grey_index
    } else {
        cube_index
    }
}

fn degrade_color(c: Color, depth: ColorDepth) -> Color {
    match (c, depth) {
        (Color::Rgb(r, g, b), ColorDepth::Ansi256) => Color::Indexed(rgb_to_256(r, g, b)),
        (Color::Rgb(r, g, b), ColorDepth::Ansi16) => nearest16((r, g, b)),
        (Color::Indexed(i), ColorDepth::Ansi16) => nearest16(rgb_of_index(i)),
        (c, _) => c,
    }
}

fn parse_color(text: &str) -> Result<Color, String> {
    let named = match text.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "reset" | "default" => Some(Color::Reset),
        "black" => Some(Color::Black),
        "red" => Some(Color::Red),
        "green" => Some(Color::Green),
        "yellow" => Some(Color::Yellow),
        "blue" => Some(Color::Blue),
        "magenta" => Some(Color::Magenta),
        "cyan" => Some(Color::Cyan),
        "gray" | "grey" => Some(Color::Gray),
        "dark-gray" | "dark-grey" | "bright-black" => Some(Color::DarkGray),
        "bright-red" | "light-red" => Some(Color::LightRed),
        "bright-green" | "light-green" => Some(Color::LightGreen),
        "bright-yellow" | "light-yellow" => Some(Color::LightYellow),
        "bright-blue" | "light-blue" => Some(Color::LightBlue),
        "bright-magenta" | "light-magenta" => Some(Color::LightMagenta),
        "bright-cyan" | "light-cyan" => Some(Color::LightCyan),
        "white" | "bright-white" => Some(Color::White),
        _ => None,
    };
    if let Some(c) = named {
        return Ok(c);
    }
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let v = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
            return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
    }
    if let Ok(i) = text.parse::<u8>() {
        return Ok(Color::Indexed(i));
    }
    Err(format!(
        "unknown colour {text:?}: use a name (red, bright-blue, gray, ...), \"#rrggbb\" or a 256-colour index \"0\"..\"255\""
    ))
}

fn parse_style(value: &toml::Value) -> Result<Style, String> {
    match value {
        toml::Value::String(s) => Ok(Style::new().fg(parse_color(s)?)),
        toml::Value::Table(t) => {
            let mut style = Style::new();
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("fg", toml::Value::String(s)) => style = style.fg(parse_color(s)?),
                    ("bg", toml::Value::String(s)) => style = style.bg(parse_color(s)?),
                    (
                        m @ ("bold" | "dim" | "italic" | "underline" | "reverse"),
                        toml::Value::Boolean(on),
                    ) => {
                        let modifier = match m {
                            "bold" => Modifier::BOLD,
                            "dim" => Modifier::DIM,
                            "italic" => Modifier::ITALIC,
                            "underline" => Modifier::UNDERLINED,
                            _ => Modifier::REVERSED,
                        };
                        if *on {
                            style = style.add_modifier(modifier);
                        }
                    }
                    (k @ ("fg" | "bg"), _) => return Err(format!("{k} must be a colour string")),
                    (k @ ("bold" | "dim" | "italic" | "underline" | "reverse"), _) => {
                        return Err(format!("{k} must be true or false"))
                    }
                    (k, _) => {
                        return Err(format!(
                        "unknown setting {k:?}; use fg, bg, bold, dim, italic, underline, reverse"
                    ))
                    }
                }
            }
            Ok(style)
        }
        _ => Err("expected a colour string or a table like { fg = \"red\", bold = true }".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_loads_at_every_depth_and_mono_has_no_colour() {
        for (name, _) in BUILTIN {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
                ColorDepth::Mono,
            ] {
                let t = Theme::load(name, depth).unwrap();
                for role in Role::ALL {
                    let s = t.style(*role);
                    if depth == ColorDepth::Mono || *name == "mono" {
                        assert!(matches!(s.fg, None | Some(Color::Reset)), "{name} {role:?}");
                        assert!(matches!(s.bg, None | Some(Color::Reset)), "{name} {role:?}");
                    }
                    if depth == ColorDepth::Ansi16 {
                        assert!(!matches!(
                            s.fg,
                            Some(Color::Rgb(..)) | Some(Color::Indexed(_))
                        ));
                    }
                }
            }
        }
        // Mono still marks the selection.
        let mono = Theme::load("mono", ColorDepth::TrueColor).unwrap();
        assert!(mono
            .style(Role::Highlight)
            .add_modifier
            .contains(Modifier::REVERSED));
        let dark = Theme::load("dark", ColorDepth::Mono).unwrap();
        assert!(dark
            .style(Role::Highlight)
            .add_modifier
            .contains(Modifier::REVERSED));
    }

    #[test]
    fn colours_degrade() {
        assert_eq!(
            degrade_color(Color::Rgb(255, 0, 0), ColorDepth::Ansi256),
            Color::Indexed(196)
        );
        assert_eq!(
            degrade_color(Color::Rgb(250, 10, 10), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(
            degrade_color(Color::Rgb(128, 128, 128), ColorDepth::Ansi256),
            Color::Indexed(244)
        );
        assert_eq!(
            degrade_color(Color::Indexed(196), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(
            degrade_color(Color::Green, ColorDepth::Ansi16),
            Color::Green
        );
    }

    #[test]
    fn bad_files_name_the_line_and_the_reason() {
        let err = |t: &str| Theme::parse("t", "t.toml", t).unwrap_err().to_string();
        let e = err("[roles]\ntext = \"white\"\nok = \"grean\"\n");
        assert!(
            e.contains("theme t.toml:3: role \"ok\": unknown colour \"grean\""),
            "{e}"
        );
        let e = err("[roles]\nleeder = \"red\"\n");
        assert!(e.contains("theme t.toml:2: unknown role \"leeder\""), "{e}");
        let e = err("[roles]\nok = { fg = \"green\", blink = true }\n");
        assert!(
            e.contains("t.toml:2: role \"ok\": unknown setting \"blink\""),
            "{e}"
        );
        let e = err("[roles]\nok = \"#12345\"\n");
        assert!(e.contains("t.toml:2"), "{e}");
        let e = err("[roles]\nok = green\n");
        assert!(e.contains("t.toml:2:"), "{e}");
        let e = err("[rolez]\n");
        assert!(e.contains("t.toml:1:"), "{e}");
        let e = Theme::load("solarized", ColorDepth::Ansi16)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("built-in themes are dark, light, high-contrast, mono"),
            "{e}"
        );
    }

    mod props {
        use super::*;
        use crate::test_text::{any_text, mutated};
        use proptest::prelude::*;

        const ORIGIN: &str = "my-theme.toml";

        fn check(text: &str) -> Result<(), TestCaseError> {
            match Theme::parse("t", ORIGIN, text) {
                Ok(t) => {
                    for depth in [ColorDepth::Ansi256, ColorDepth::Ansi16, ColorDepth::Mono] {
                        let _ = t.clone().degrade(depth).style(Role::Down);
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(e.starts_with(&format!("theme {ORIGIN}")), "{e}");
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_parses_or_is_refused_naming_the_file(text in any_text()) {
                check(&text)?;
            }

            #[test]
            fn edited_builtin_themes_parse_or_are_refused_naming_the_file(
                text in mutated(BUILTIN.iter().map(|(_, t)| *t).collect())
            ) {
                check(&text)?;
            }
        }
    }
}
