//! Every pane drawn at 80×24 from the fixed model (`model::fixture`), as insta snapshots of the
//! text, plus cell styles per theme, and keys driven through the real keymap.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use super::app::App;
use super::keymap::Keymap;
use super::model::fixture;
use super::panes::PaneKind;
use super::theme::{ColorDepth, Theme};
use super::ui;

fn app_with(theme: &str, depth: ColorDepth) -> App {
    App::new(
        fixture::model(),
        Keymap::load("default").unwrap(),
        Theme::load(theme, depth).unwrap(),
        depth,
    )
}

fn app() -> App {
    app_with("dark", ColorDepth::TrueColor)
}

fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| ui::draw(app, f)).unwrap();
    terminal.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Runs of equal style per row: `row: col..col fg bg modifiers "text"`.
fn styles(buf: &Buffer, rows: std::ops::Range<u16>) -> String {
    let mut out = String::new();
    for y in rows {
        let mut x = 0;
        while x < buf.area.width {
            let c = &buf[(x, y)];
            let key = (c.fg, c.bg, c.modifier);
            let start = x;
            let mut s = String::new();
            while x < buf.area.width
                && (buf[(x, y)].fg, buf[(x, y)].bg, buf[(x, y)].modifier) == key
            {
                s.push_str(buf[(x, y)].symbol());
                x += 1;
            }
            if !s.trim().is_empty() {
                out.push_str(&format!(
                    "{y}: {start}..{x} {:?} {:?} {:?} {:?}\n",
                    key.0,
                    key.1,
                    key.2,
                    s.trim()
                ));
            }
        }
    }
    out
}

fn press(app: &mut App, code: KeyCode) {
    let mods = match code {
        KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
        _ => KeyModifiers::NONE,
    };
    app.on_event(Event::Key(KeyEvent::new(code, mods)));
}

fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

#[test]
fn every_pane_at_80x24() {
    for pane in PaneKind::ALL {
        let mut app = app();
        app.show(*pane);
        insta::assert_snapshot!(format!("pane_{}", pane.name()), text(&render(&app, 80, 24)));
    }
}

#[test]
fn panes_grow_with_the_window() {
    let mut app = app();
    let buf = render(&app, 120, 30);
    assert!(text(&buf).contains("COMMIT"), "wide overview shows COMMIT");
    app.show(PaneKind::Logs);
    let t = text(&render(&app, 120, 40));
    assert_eq!(
        t.lines().filter(|l| l.contains("applied batch")).count(),
        35,
        "{t}"
    );
    assert!(t.contains("dropped 17 records"), "{t}");
}

#[test]
fn logs_search_filters_and_help() {
    let mut app = app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "batch 3");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("11 lines match \"batch 3\"")
    );
    press(&mut app, KeyCode::Char('N'));
    insta::assert_snapshot!("logs_search", text(&render(&app, 80, 24)));
    let styled = styles(&render(&app, 80, 24), 0..24);
    assert!(
        styled.contains("\"batch 3\""),
        "matches are styled apart:\n{styled}"
    );

    press(&mut app, KeyCode::Char('x'));
    press(&mut app, KeyCode::Char('l'));
    press(&mut app, KeyCode::Char('l'));
    press(&mut app, KeyCode::Char('l')); // ≥WARN
    press(&mut app, KeyCode::Char('o')); // node 1
    let t = text(&render(&app, 80, 24));
    assert!(t.contains("node 1 · ≥WARN"), "{t}");
    assert!(
        t.lines()
            .filter(|l| l.contains("applied batch"))
            .all(|l| l.contains(" n1 ") && (l.contains("WARN") || l.contains("ERROR"))),
        "{t}"
    );

    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_logs", text(&render(&app, 80, 24)));
    for _ in 0..30 {
        press(&mut app, KeyCode::Down);
    }
    let t = text(&render(&app, 80, 24));
    assert!(
        t.contains(":theme NAME|PATH") && t.contains("switch theme"),
        "{t}"
    );
    press(&mut app, KeyCode::Up);
    let up = text(&render(&app, 80, 24));
    assert_ne!(
        up, t,
        "one step up moves at once, however far down was pressed"
    );
    press(&mut app, KeyCode::Esc);
    assert!(app.help.is_none());
}

#[test]
fn command_line_switches_panes_themes_and_refuses_nonsense() {
    let mut app = app();
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "pane gc");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.pane, PaneKind::Gc);
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "theme mono");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.theme.name, "mono");
    press(&mut app, KeyCode::Char(':'));
    type_text(&mut app, "theme nope");
    press(&mut app, KeyCode::Enter);
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.1 && m.0.contains("unknown theme")));
    press(&mut app, KeyCode::Char('z'));
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.0.contains("z does nothing here")));
    press(&mut app, KeyCode::Char(':'));
    app.on_event(Event::Key(KeyEvent::new(
        KeyCode::Char('x'),
        KeyModifiers::CONTROL,
    )));
    assert_eq!(
        app.input.as_ref().map(|i| i.text.as_str()),
        Some(""),
        "a ctrl chord is not text"
    );
    type_text(&mut app, "q");
    press(&mut app, KeyCode::Enter);
    assert!(app.quit);
}

#[test]
fn saving_the_logs_writes_the_filtered_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let mut app = app();
    app.show(PaneKind::Logs);
    app.command(&format!("save {}", path.display()));
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        saved.lines().count(),
        41,
        "40 records and one dropped marker"
    );
    assert!(saved.contains("dropped 17 records"));
    app.command("save /nonexistent-dir/x.txt");
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.1 && m.0.contains("cannot save")));
}

#[test]
fn themes_style_cells_and_mono_has_no_colour() {
    let dark = render(&app_with("dark", ColorDepth::TrueColor), 80, 24);
    let mono = render(&app_with("dark", ColorDepth::Mono), 80, 24);
    let hc16 = render(&app_with("high-contrast", ColorDepth::Ansi16), 80, 24);
    assert_eq!(text(&dark), text(&mono), "themes change styles, never text");
    insta::assert_snapshot!("styles_dark_truecolor", styles(&dark, 0..9));
    insta::assert_snapshot!("styles_dark_no_color", styles(&mono, 0..9));
    insta::assert_snapshot!("styles_high_contrast_16", styles(&hc16, 0..9));
    for cell in mono.content() {
        assert!(matches!(cell.fg, ratatui::style::Color::Reset), "{cell:?}");
        assert!(matches!(cell.bg, ratatui::style::Color::Reset), "{cell:?}");
    }
}

#[test]
fn war_room_at_80x24() {
    let mut app = app_with("high-contrast", ColorDepth::Ansi16);
    app.read_only = true;
    app.war_room = Some(super::app::WarRoom { cycle_secs: 10 });
    app.pane = PaneKind::Logs;
    insta::assert_snapshot!("war_room", text(&render(&app, 80, 24)));
    app.cycle_war_room();
    assert_eq!(app.pane, PaneKind::Metrics);
    for _ in 0..4 {
        app.cycle_war_room();
        assert_ne!(
            app.pane,
            PaneKind::Overview,
            "the overview is always on screen already"
        );
    }
}
