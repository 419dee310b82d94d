//! Every pane drawn at 80×24 from the fixed model (`model::fixture`), as insta snapshots of the
//! text, plus cell styles per theme, and keys driven through the real keymap.

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

use opsdeck_node::pb::watch_event::Kind;
use opsdeck_node::pb::{ApiKeyInfo, WatchEvent};

use super::action::PaneKind;
use super::app::App;
use super::keymap::Keymap;
use super::model::{fixture, KeyList, KeysError, Update};
use super::theme::{ColorDepth, Theme};
use super::ui;
use crate::alerts::State;

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

/// The fixture carried on for another minute: nodes 1 and 2 keep sending frames (node 1's
/// p99 jumps to 1.5 s at T0+60s), node 3 stays down, the rules are evaluated every second,
/// and a key list has arrived.
fn observed_app() -> App {
    observed(app())
}

/// `app` carried on as `observed_app` says.
fn observed(mut app: App) -> App {
    for step in 30..=95u64 {
        let t = fixture::T0 + step as i64 * 1000;
        for (node, id, role, last) in [(0, 1, "leader", 12_000), (1, 2, "follower", 11_997)] {
            let mut s = fixture::status(id, role, last + step, t);
            if id == 1 && step >= 60 {
                s.ops[0].p99_us = 1_500_000;
            }
            app.model.apply(Update::Event {
                node,
                at: t,
                event: Box::new(WatchEvent {
                    kind: Some(Kind::Status(s)),
                }),
            });
        }
        app.tick_alerts(t);
    }
    let key = |id: &str, role: &str, tenants: &[&str], state: &str| ApiKeyInfo {
        id: id.into(),
        role: role.into(),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        created_unix_ms: fixture::T0 - 3 * 86_400_000,
        expires_unix_ms: None,
        revoked_unix_ms: None,
        last_used_unix_ms: Some(fixture::T0 + 60_000),
        successor: None,
        state: state.into(),
    };
    app.model.keys = KeyList {
        keys: vec![
            key("k0a1b2c3d", "admin", &[], "valid"),
            ApiKeyInfo {
                expires_unix_ms: Some(fixture::T0 + 86_400_000),
                ..key("k11223344", "write", &["acme"], "valid")
            },
            ApiKeyInfo {
                last_used_unix_ms: None,
                revoked_unix_ms: Some(fixture::T0 - 3_600_000),
                ..key("kdeadbeef", "read", &["acme", "beta"], "revoked")
            },
        ],
        fetched_ms: Some(fixture::T0 + 92_000),
        error: None,
    };
    app
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
    super::on_event(app, Event::Key(KeyEvent::new(code, mods)));
}

fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

#[test]
fn below_80x24_says_the_terminal_is_too_small_and_keeps_the_verdict() {
    let app = app();
    let screen = text(&render(&app, 60, 20));
    assert!(
        screen.contains("terminal too small: 60×20, opsdeck needs 80×24"),
        "{screen}"
    );
    assert!(
        screen.contains("HEALTHY") || screen.contains("DEGRADED") || screen.contains("QUORUM"),
        "{screen}"
    );
    // At 80×24 the panes are drawn as usual.
    assert!(!text(&render(&app, 80, 24)).contains("too small"));
}

#[test]
fn every_pane_in_dark_and_mono_at_80x24_and_160x48() {
    for pane in PaneKind::ALL {
        for (w, h) in [(80, 24), (160, 48)] {
            let mut screens = Vec::new();
            for theme in ["dark", "mono"] {
                // The older panes from the plain fixture; the new ones need the rules evaluated.
                let mut app = match pane {
                    PaneKind::Alerts | PaneKind::Quotas | PaneKind::Keys => observed_app(),
                    _ => app(),
                };
                app.theme = Theme::load(theme, ColorDepth::TrueColor).unwrap();
                app.show(*pane);
                let buf = render(&app, w, h);
                insta::assert_snapshot!(
                    format!("pane_{}_{w}x{h}_{theme}_styles", pane.name()),
                    styles(&buf, 0..h)
                );
                screens.push(text(&buf));
            }
            // The theme changes colours only, never what is written (but its name at the end
            // of the status line).
            let body = |s: &str| {
                s.lines()
                    .take(h as usize - 1)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(
                body(&screens[0]),
                body(&screens[1]),
                "{} at {w}x{h}",
                pane.name()
            );
            insta::assert_snapshot!(format!("pane_{}_{w}x{h}", pane.name()), screens[0]);
        }
    }
}

#[test]
fn action_dialogs_show_progress_and_a_secret_once() {
    use super::ops::NewSecret;
    use super::state::Dialog;
    let mut app = app();
    app.dialog = Some(Dialog::Running {
        title: "backup to nightly.odb".into(),
        started: std::time::Instant::now(),
        ratio: Some(0.29),
        detail: "300 MiB of 1.00 GiB · 150 MiB/s · about 4s left".into(),
    });
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("29%"), "{screen}");
    assert!(
        screen.contains("300 MiB of 1.00 GiB · 150 MiB/s"),
        "{screen}"
    );
    assert!(screen.contains("about 4s left"), "{screen}");
    app.dialog = Some(Dialog::Finished {
        title: "rotate key k11223344".into(),
        ok: true,
        text: "key k11223344 rotated: its successor is k55667788".into(),
        secret: Some(NewSecret {
            id: "k55667788".into(),
            secret: "odk_0123".into(),
        }),
    });
    insta::assert_snapshot!("dialog_rotated_key", text(&render(&app, 80, 24)));
    // Esc closes it, and the secret is gone from the screen.
    press(&mut app, KeyCode::Esc);
    assert!(app.dialog.is_none());
    assert!(!text(&render(&app, 80, 24)).contains("odk_0123"));
}

/// Restoring another cluster's backup: both cluster ids on screen, a warning, and an answer
/// that differs from the usual key count (typing the count by habit restores nothing).
#[test]
fn a_foreign_restore_shows_both_clusters_and_needs_its_own_answer() {
    use super::state::{Dialog, InputKind, Pending};
    use crate::ops::backup::Plan;
    let mut app = app();
    let foreign = Plan {
        backup_cluster: Some("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2".into()),
        this_cluster: "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1".into(),
    };
    app.confirm_restore("/backups/nightly.odb".into(), 1200, 4711, &foreign);
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("dialog_foreign_restore", screen);
    assert!(
        screen.contains("c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"),
        "{screen}"
    );
    assert!(
        screen.contains("c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"),
        "{screen}"
    );
    let Some(InputKind::Ask(ask)) = app.input.as_ref().map(|i| i.kind.clone()) else {
        panic!("{:?}", app.input);
    };
    assert_eq!(ask.expect.as_deref(), Some("foreign 1200"));
    assert!(
        matches!(
            &ask.then,
            Pending::ConfirmRestore {
                allow_foreign: true,
                ..
            }
        ),
        "{ask:?}"
    );
    // The usual answer is refused; the distinct one goes on (here: to "no connection").
    let effect = app.answer(ask.clone(), "1200".into());
    assert!(
        matches!(&effect, super::effect::Effect::Message { text, error: true }
            if text.contains("not confirmed") && text.contains("nothing was changed")),
        "{effect:?}"
    );
    let effect = app.answer(ask, "foreign 1200".into());
    assert!(
        matches!(&effect, super::effect::Effect::Message { text, .. }
            if text == "no cluster connection to act on"),
        "{effect:?}"
    );
    // Esc on the question closes the explanation with it.
    press(&mut app, KeyCode::Esc);
    assert!(
        app.input.is_none() && app.dialog.is_none(),
        "{:?}",
        app.dialog
    );

    // The cluster's own backup: the usual count, both ids shown all the same.
    let own = Plan {
        backup_cluster: Some(foreign.this_cluster.clone()),
        this_cluster: foreign.this_cluster.clone(),
    };
    app.confirm_restore("/backups/nightly.odb".into(), 1200, 4711, &own);
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("own backup") && !screen.contains("FOREIGN"),
        "{screen}"
    );
    assert!(matches!(
        &app.dialog,
        Some(Dialog::Confirm { warn: false, .. })
    ));
    let Some(InputKind::Ask(ask)) = app.input.as_ref().map(|i| i.kind.clone()) else {
        panic!("{:?}", app.input);
    };
    assert_eq!(ask.expect.as_deref(), Some("1200"));
    assert!(matches!(
        &ask.then,
        Pending::ConfirmRestore {
            allow_foreign: false,
            ..
        }
    ));
}

#[test]
fn the_rolling_defrag_outside_a_dev_cluster_gives_the_steps_by_hand() {
    use super::action::Action;
    use super::effect::Effect;
    let mut app = observed_app();
    app.show(PaneKind::Overview);
    let effect = super::panes::handle(&mut app, Action::RollingDefrag);
    assert!(
        matches!(&effect, Effect::Message { text, error: true }
            if text.contains("only in a dev cluster")
                && text.contains("opsdeck defrag-data --data /var/lib/opsdeck")),
        "{effect:?}"
    );
}

#[test]
fn a_pane_returns_its_effect_and_only_the_app_applies_it() {
    use super::action::Action;
    use super::effect::Effect;
    use super::state::{InputKind, Pending};
    let mut app = observed_app();
    app.show(PaneKind::Keys);
    let effect = super::panes::handle(&mut app, Action::RotateKey);
    assert!(
        matches!(&effect, Effect::Ask { text, then: Pending::RotateGrace { id }, .. }
            if text == "24h" && id == "k0a1b2c3d"),
        "{effect:?}"
    );
    assert!(app.input.is_none(), "the pane asked nothing itself");
    app.apply(effect);
    let Some(InputKind::Ask(ask)) = app.input.as_ref().map(|i| i.kind.clone()) else {
        panic!("{:?}", app.input);
    };
    // Answered in a console without a cluster connection: nothing starts.
    let effect = app.answer(ask, "24h".into());
    assert!(
        matches!(&effect, Effect::Message { text, error: true }
            if text == "no cluster connection to act on"),
        "{effect:?}"
    );
    // An action the shown pane has nothing to do with says so.
    let effect = super::panes::handle(&mut app, Action::CycleNode);
    assert!(
        matches!(&effect, Effect::Message { text, error: true }
            if text == "cycle_node does nothing in Keys"),
        "{effect:?}"
    );
}

#[test]
fn read_only_refuses_and_hides_every_mutating_action() {
    let mut app = observed_app();
    app.read_only = true;
    for (pane, key, name) in [
        (PaneKind::Overview, 'b', "backup"),
        (PaneKind::Logs, 'R', "restore"),
        (PaneKind::Overview, 'C', "compact"),
        (PaneKind::Overview, 'D', "rolling_defrag"),
        (PaneKind::Keys, 'r', "rotate_key"),
    ] {
        app.show(pane);
        press(&mut app, KeyCode::Char(key));
        assert!(
            app.input.is_none() && app.dialog.is_none(),
            "{name} started"
        );
        let screen = text(&render(&app, 80, 24));
        assert!(
            screen.contains(&format!("{name} is not allowed: the console is read-only")),
            "{screen}"
        );
    }
    app.show(PaneKind::Keys);
    press(&mut app, KeyCode::Char('?'));
    let help = text(&render(&app, 80, 24));
    assert!(
        !help.contains("rotate_key") && !help.contains("backup"),
        "{help}"
    );
    // Without --read-only the same key asks its question.
    app.read_only = false;
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('r'));
    assert!(text(&render(&app, 80, 24))
        .contains("rotate key k0a1b2c3d of prod-eu: the old key stays valid for 24h"));
}

#[test]
fn every_question_before_a_change_names_the_context_and_ctx_lists_and_refuses() {
    let mut app = observed_app();
    app.config = crate::config::Config::parse(
        "c.toml",
        "[contexts.prod-eu]\nendpoints = [\"127.0.0.1:7101\"]\n[contexts.staging]\nendpoints = [\"127.0.0.1:7201\"]\n",
    )
    .unwrap();
    for (pane, key, words) in [
        (PaneKind::Overview, 'b', "backup prod-eu to file: "),
        (PaneKind::Logs, 'R', "restore prod-eu from backup file: "),
        (PaneKind::Overview, 'C', "compact all 3 nodes of prod-eu"),
        (PaneKind::Overview, 'a', "add node to prod-eu: "),
        (
            PaneKind::Overview,
            'x',
            "Remove node 1 (127.0.0.1:7101) from prod-eu? type 1",
        ),
        (
            PaneKind::Overview,
            't',
            "Move prod-eu's leadership to node 1",
        ),
        (PaneKind::Keys, 'r', "rotate key k0a1b2c3d of prod-eu: "),
        (
            PaneKind::Metrics,
            'W',
            "pause all writes on prod-eu: reason",
        ),
    ] {
        app.show(pane);
        press(&mut app, KeyCode::Char(key));
        let screen = text(&render(&app, 120, 30));
        assert!(screen.contains(words.trim_end()), "{key}: {screen}");
        press(&mut app, KeyCode::Esc);
    }
    // Restarting a node needs a dev cluster or the context's `restart` command: what to
    // add is said at once.
    app.show(PaneKind::Overview);
    press(&mut app, KeyCode::Char('r'));
    let screen = text(&render(&app, 160, 30));
    assert!(
        screen.contains("is not a dev cluster and its config defines no `restart` command"),
        "{screen}"
    );
    app.command("ctx");
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains("[prod-eu] contexts: dev, *prod-eu, staging (:ctx NAME switches)"),
        "{screen}"
    );
    app.command("ctx nope");
    assert!(app.switch_to.is_none());
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains("no context \"nope\" in the config; known contexts: dev, prod-eu, staging"),
        "{screen}"
    );
    app.command("ctx staging");
    let target = app.switch_to.take().expect("a switch");
    assert_eq!(target.label(), "staging");
    assert_eq!(target.endpoints, vec!["127.0.0.1:7201".to_string()]);
    app.reset_for(target, &["127.0.0.1:7201".to_string()]);
    assert_eq!(app.model.nodes.len(), 1);
    let screen = text(&render(&app, 120, 30));
    assert!(screen.contains("[staging] "), "{screen}");
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
    super::on_event(
        &mut app,
        Event::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL)),
    );
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
fn report_needs_a_file_and_a_window_it_can_read() {
    let mut app = app();
    app.command("report");
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.1 && m.0.contains("usage: :report FILE [SINCE]")));
    app.command("report incident.md soon");
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.1 && m.0.contains("bad window \"soon\"")));
    assert!(app.dialog.is_none(), "nothing started");
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

/// Maintenance mode: the banner is above every pane (and the war room), in words.
#[test]
fn writes_paused_banner_on_every_pane() {
    let mut app = app_with("high-contrast", ColorDepth::Ansi16);
    for node in app.model.nodes.iter_mut() {
        if let Some(s) = node.status.as_mut() {
            s.writes_paused = Some(opsdeck_node::pb::WritesPaused {
                by: "k0a1b2c3d".into(),
                since_unix_ms: fixture::T0,
                reason: "disk swap on node 2".into(),
                until_unix_ms: Some(fixture::T0 + 30 * 60_000),
            });
        }
    }
    for pane in PaneKind::ALL {
        app.pane = *pane;
        let screen = text(&render(&app, 80, 24));
        let banner = screen.lines().nth(1).unwrap_or_default().to_string();
        assert!(
            banner.starts_with(" ⏸ WRITES PAUSED  since ")
                && banner.contains("by k0a1b2c3d: disk swap"),
            "{}: {screen}",
            pane.name()
        );
        if *pane == PaneKind::Overview {
            insta::assert_snapshot!("writes_paused_overview_80x24", screen);
            insta::assert_snapshot!(
                "writes_paused_styles_high_contrast",
                styles(&render(&app, 80, 24), 0..3)
            );
        }
    }
    app.pane = PaneKind::Overview;
    insta::assert_snapshot!(
        "writes_paused_overview_160x48",
        text(&render(&app, 160, 48))
    );
    // While paused, the same key asks to resume, naming who paused and why.
    press(&mut app, KeyCode::Char('W'));
    let screen = text(&render(&app, 160, 48));
    assert!(
        screen.contains("resume writes on prod-eu (paused by k0a1b2c3d: disk swap on node 2)?"),
        "{screen}"
    );
    press(&mut app, KeyCode::Esc);
    app.read_only = true;
    press(&mut app, KeyCode::Char('W'));
    let screen = text(&render(&app, 160, 48));
    assert!(!screen.contains("resume writes on"), "{screen}");
    app.war_room = Some(super::app::WarRoom { cycle_secs: 10 });
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("WRITES PAUSED"), "{screen}");
}

#[test]
fn the_overview_marks_a_follower_that_refused_the_snapshot_for_lack_of_room() {
    let mut app = app();
    let t = fixture::T0 + 40_000;
    let why = "snapshot install refused, nothing changed: node 3 received snapshot T1-N1-10001-1 \
               (1.8 MiB, up to index 10001); loading it needs 72.0 MiB free on the filesystem \
               of its data dir (4x the snapshot plus the 64.0 MiB reserve), 20.0 MiB free; free \
               space or grow the volume, and the leader retries the install by itself";
    for (node, id, role) in [(0, 1, "leader"), (1, 2, "follower"), (2, 3, "follower")] {
        let mut s = fixture::status(id, role, 12_300, t);
        for f in &mut s.followers {
            if f.id == 3 {
                f.snapshot_sent_bytes = Some(1_900_000);
                f.snapshot_bytes = Some(1_900_000);
                f.snapshot_refused = why.into();
            }
        }
        app.model.apply(Update::Event {
            node,
            at: t,
            event: Box::new(WatchEvent {
                kind: Some(Kind::Status(s)),
            }),
        });
    }
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("overview_snapshot_refused_80x24", screen);
    let row = screen
        .lines()
        .find(|l| l.contains("127.0.0.1:7103"))
        .unwrap_or_default();
    assert!(row.contains("▲ no room"), "{screen}");
    assert!(
        screen.contains("▲ node 3: snapshot install refused"),
        "{screen}"
    );
    assert!(screen.contains("20.0 MiB free;"), "{screen}");
}

#[test]
fn the_overview_says_whether_the_replicas_agree_and_names_a_diverged_node() {
    use opsdeck_node::pb::StateDigest;
    let mut app = app();
    let frame = |app: &mut App, node: usize, id: u64, role: &str, at: i64, digest: u8| {
        let mut s = fixture::status(id, role, 12_300, at);
        s.digest = Some(StateDigest {
            index: 12_300,
            digest: vec![digest; 32],
        });
        app.model.apply(Update::Event {
            node,
            at,
            event: Box::new(WatchEvent {
                kind: Some(Kind::Status(s)),
            }),
        });
    };
    let t = fixture::T0 + 40_000;
    for (node, id, role) in [(0, 1, "leader"), (1, 2, "follower"), (2, 3, "follower")] {
        frame(&mut app, node, id, role, t, 7);
    }
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("≡ replicas agree at index 12300 (checked 22:14:00)"),
        "{screen}"
    );
    assert!(!app
        .model
        .timeline
        .iter()
        .any(|e| e.kind.starts_with("replicas_")));

    // Node 2 applied something else: named in red, and on the timeline once.
    frame(&mut app, 1, 2, "follower", t + 1_000, 9);
    frame(&mut app, 0, 1, "leader", t + 1_500, 7);
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("overview_replica_diverged_80x24", screen);
    assert!(screen.contains("✖ node 2 diverged"), "{screen}");
    let critical = format!(
        "{:?}",
        app.theme
            .style(super::theme::Role::Critical)
            .fg
            .unwrap_or_default()
    );
    assert!(
        styles(&render(&app, 80, 24), 3..4).contains(&critical),
        "{critical}"
    );
    let events: Vec<_> = app
        .model
        .timeline
        .iter()
        .filter(|e| e.kind.starts_with("replicas_"))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].detail.starts_with("node 2: state digest differs"),
        "{events:?}"
    );

    // Repaired: agreement again is an event too.
    frame(&mut app, 1, 2, "follower", t + 2_000, 7);
    let kinds: Vec<_> = app
        .model
        .timeline
        .iter()
        .filter(|e| e.kind.starts_with("replicas_"))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds, ["replicas_diverged", "replicas_agree"]);
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

#[test]
fn a_read_only_console_acks_here_but_writes_no_audit_record() {
    let mut app = observed_app();
    app.read_only = true;
    press(&mut app, KeyCode::Char('7'));
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("acknowledged node_down (node 3); read-only: not recorded in the audit trail")
    );
    assert!(app.alerts.evaluator.alerts()[0].acked);
}

#[test]
fn alerts_fire_and_are_acknowledged_and_silenced_by_key() {
    let mut app = observed_app();
    let states: Vec<(String, State)> = app
        .alerts
        .evaluator
        .alerts()
        .iter()
        .map(|a| (a.id.to_string(), a.state))
        .collect();
    assert!(
        states.contains(&("node_down (node 3)".into(), State::Firing)),
        "{states:?}"
    );
    assert!(
        states.contains(&("p99_latency_high (node 1)".into(), State::Pending)),
        "{states:?}"
    );
    let firing = app.alerts.firing();
    assert!(firing >= 2, "{states:?}");

    // The count is on the Overview and in the tab bar.
    let t = text(&render(&app, 80, 24));
    assert!(
        t.contains(&format!("◉ {firing} alerts firing (7: Alerts)")),
        "{t}"
    );
    assert!(
        t.lines()
            .next()
            .unwrap_or("")
            .contains(&format!("{firing} FIRING")),
        "{t}"
    );

    press(&mut app, KeyCode::Char('7'));
    assert_eq!(app.pane, PaneKind::Alerts);
    // The first alert is selected: the critical node_down.
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("acknowledged node_down (node 3)")
    );
    assert!(app.alerts.evaluator.alerts()[0].acked);

    // The pending alert is last: it cannot be acknowledged, but it can be silenced.
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Char('a'));
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.1 && m.0.contains("is not firing")),
        "{:?}",
        app.message
    );
    press(&mut app, KeyCode::Char('s'));
    assert_eq!(
        app.input.as_ref().map(|i| i.text.as_str()),
        Some("silence 1h")
    );
    press(&mut app, KeyCode::Enter);
    let last_tick = app.alerts.last_tick_ms.unwrap_or(0);
    let pending = app
        .alerts
        .evaluator
        .alerts()
        .iter()
        .find(|a| a.state == State::Pending)
        .map(|a| (a.id.to_string(), a.silenced_until));
    assert_eq!(
        pending,
        Some((
            "p99_latency_high (node 1)".to_string(),
            Some(last_tick + 3_600_000)
        ))
    );
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("silenced p99_latency_high (node 1) until 23:14:55")
    );
    insta::assert_snapshot!("alerts_acked_and_silenced", text(&render(&app, 80, 24)));

    // Bad durations are refused; 0 lifts the silence at the next tick.
    app.command("silence soon");
    assert!(app
        .message
        .as_ref()
        .is_some_and(|m| m.1 && m.0.contains("bad duration \"soon\"")));
    app.command("silence 30d");
    assert!(app.message.as_ref().is_some_and(|m| m.1));
    app.command("silence 0");
    app.tick_alerts(last_tick + 1000);
    assert!(app
        .alerts
        .evaluator
        .alerts()
        .iter()
        .all(|a| a.silenced_until.is_none()));

    // Not mutating the cluster: allowed read-only.
    app.read_only = true;
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Char('s'));
    assert!(app.input.is_some());
}

#[test]
fn new_panes_by_tab_and_command_and_their_empty_states() {
    let mut app = app();
    app.show(PaneKind::Timeline);
    for want in [
        PaneKind::Alerts,
        PaneKind::Quotas,
        PaneKind::Keys,
        PaneKind::Overview,
    ] {
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.pane, want);
    }
    for name in ["alerts", "quotas", "keys"] {
        app.command(&format!("pane {name}"));
        assert_eq!(app.pane.name(), name);
    }
    for keymap in ["default", "vim"] {
        let k = Keymap::load(keymap).unwrap();
        for (key, pane) in [
            ("7", PaneKind::Alerts),
            ("8", PaneKind::Quotas),
            ("9", PaneKind::Keys),
        ] {
            assert_eq!(
                k.resolve("overview", super::keymap::Key::parse(key).unwrap()),
                Some(super::action::Action::ShowPane(pane)),
                "{keymap}"
            );
        }
    }

    // Before the first evaluation, before the first key list, and a refused key list.
    app.show(PaneKind::Alerts);
    assert!(text(&render(&app, 80, 24)).contains("evaluating the rules"));
    let mut connecting = App::new(
        super::model::Model::new(&["127.0.0.1:1".to_string()]),
        Keymap::load("default").unwrap(),
        Theme::load("dark", ColorDepth::Mono).unwrap(),
        ColorDepth::Mono,
    );
    connecting.tick_alerts(fixture::T0);
    assert!(
        connecting.alerts.last_tick_ms.is_none(),
        "no evaluation before any stream answered or failed"
    );
    app.show(PaneKind::Keys);
    assert!(text(&render(&app, 80, 24)).contains("asking the cluster"));
    app.model.apply(Update::Keys {
        at: fixture::T0,
        result: Err(KeysError {
            message: "keys list: PermissionDenied: this needs an admin key".into(),
            refused: true,
        }),
    });
    let t = text(&render(&app, 80, 24));
    assert!(t.contains("needs an admin key: keys list"), "{t}");

    // Frames without tenant usage say so.
    for n in &mut app.model.nodes {
        if let Some(s) = &mut n.status {
            s.quotas.clear();
        }
    }
    app.show(PaneKind::Quotas);
    let t = text(&render(&app, 80, 24));
    assert!(t.contains("no tenants"), "{t}");
    assert!(
        t.contains("node 1's status frame at 22:13:49 lists no tenant usage"),
        "{t}"
    );
}

#[test]
fn the_rules_file_comes_from_the_flag_and_a_bad_one_is_refused_before_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &config,
        format!("rules = {:?}\n", rules.display().to_string()),
    )
    .unwrap();
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nexpr = \"no_such_figure > 1\"\nseverity = \"warning\"\n",
    )
    .unwrap();
    let mut args = crate::cli::ConsoleArgs::default();
    args.cluster.config.config = Some(config);
    let e = super::resolve(&args).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:3:", rules.display())), "{e}");
    std::fs::write(&rules, crate::alerts::DEFAULT_RULES).unwrap();
    let settings = super::resolve(&args).unwrap();
    assert_eq!(settings.rules.origin(), rules.display().to_string());
}

#[test]
fn the_gc_pane_shows_a_snapshot_being_built_or_received() {
    let mut app = app();
    let mut gc = |node: usize, kind: &str, done: u64, expected: u64| {
        let status = app.model.nodes[node]
            .status
            .as_mut()
            .expect("fixture status");
        let g = status.gc.get_or_insert_with(Default::default);
        g.snapshot_in_progress = kind.into();
        g.snapshot_progress_bytes = done;
        g.snapshot_progress_expected = expected;
    };
    gc(0, "building", 120 << 20, 256 << 20);
    gc(1, "receiving", 34 << 20, 0);
    app.show(PaneKind::Gc);
    let t = text(&render(&app, 80, 24));
    assert!(
        t.contains("n1 building a snapshot: 120 MiB written of about 256 MiB"),
        "{t}"
    );
    assert!(
        t.contains("n2 receiving a snapshot: 34.0 MiB written"),
        "{t}"
    );
    insta::assert_snapshot!("pane_gc_snapshot_in_progress", t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_shows_its_failed_delivery_and_an_ack_asks_it_for_a_silence() {
    use crate::alerts::notify::{config::alertmanager_flag, Notifier, Source};
    // Port 9 (discard) on loopback: nothing listens there, so every connection is refused.
    let dead = alertmanager_flag("http://127.0.0.1:9").unwrap();
    let mut app = app();
    app.notifier = Some(Notifier::start(vec![dead], Source::default()).unwrap());
    let mut app = observed(app);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let failed = loop {
        let d = app.notifier.as_ref().unwrap().deliveries();
        if d[0].last.as_ref().is_some_and(|o| !o.ok) {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed delivery: {d:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let why = &failed[0].last.as_ref().unwrap().text;
    assert_eq!(why, "connect: connection refused (4 tries)");
    // The delivery's time is the real clock: shown at the fixture's instead.
    app.alerts.deliveries = failed;
    if let Some(o) = app.alerts.deliveries[0].last.as_mut() {
        o.at_ms = fixture::T0 + 95_000;
    }
    press(&mut app, KeyCode::Char('7'));
    let t = text(&render(&app, 80, 24));
    assert!(
        t.contains(
            "alertmanager@127.0.0.1:9 FAILED 22:14:55 connect: connection refused (4 tries)"
        ),
        "{t}"
    );
    for line in t.lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
    insta::assert_snapshot!("alerts_dead_receiver", t);
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("acknowledged node_down (node 3); Alertmanager silence until 23:14:55 asked")
    );
}

/// A config with two operator commands: `logs` (key L, not mutating) and `restart-svc` (key
/// X, mutating, a description), and one without a key.
fn with_commands(mut app: App) -> App {
    app.config = crate::config::Config::parse(
        "c.toml",
        "[commands.logs]\nrun = \"ssh {grpc_host} journalctl -u opsdeck-node -n 200\"\nkey = \"L\"\nmutating = false\n\
         [commands.restart-svc]\nrun = \"ssh {grpc_host} sudo systemctl restart opsdeck-node\"\nkey = \"X\"\ndescription = \"restart the node's service\"\n\
         [commands.df]\nrun = [\"df\", \"-h\", \"{data}\"]\nmutating = false\n",
    )
    .unwrap();
    app
}

#[test]
fn operator_commands_are_listed_in_help_with_their_key_and_a_mutating_marker() {
    let mut app = with_commands(app());
    app.show(PaneKind::Overview);
    press(&mut app, KeyCode::Char('?'));
    // Scrolled to the end, where the operator commands are.
    app.help = Some(usize::MAX);
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("help_operator_commands", screen);
    assert!(
        screen.contains("L          :cmd logs          ssh '{grpc_host}' journalctl"),
        "{screen}"
    );
    assert!(
        screen.contains("X          :cmd restart-svc   mutating · restart the node's service"),
        "{screen}"
    );
    assert!(
        screen.contains("           :cmd df            df -h"),
        "{screen}"
    );
    // Read-only: the mutating one is not offered.
    app.read_only = true;
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains(":cmd logs") && !screen.contains(":cmd restart-svc"),
        "{screen}"
    );
}

#[test]
fn command_keys_run_on_the_selected_node_mutating_ones_ask_and_read_only_refuses() {
    use super::state::{Dialog, InputKind, Pending};
    let mut app = with_commands(observed_app());
    app.show(PaneKind::Overview);
    // Read-only: the mutating command's key and :cmd are refused, nothing asked or run.
    app.read_only = true;
    for how in ["key", ":cmd"] {
        if how == "key" {
            press(&mut app, KeyCode::Char('X'));
        } else {
            app.command("cmd restart-svc");
        }
        assert!(app.input.is_none() && app.dialog.is_none(), "{how}");
        let screen = text(&render(&app, 80, 24));
        assert!(
            screen.contains("cmd restart-svc is not allowed: the console is read-only"),
            "{how}: {screen}"
        );
    }
    // A non-mutating one runs at once (here: to "no connection", there is no cluster).
    press(&mut app, KeyCode::Char('L'));
    assert!(app.input.is_none(), "{:?}", app.input);
    assert_eq!(
        app.message.as_ref().map(|m| m.0.as_str()),
        Some("no cluster connection to act on")
    );
    // The same key elsewhere than the Overview is not a command key.
    app.show(PaneKind::Logs);
    press(&mut app, KeyCode::Char('L'));
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.0.starts_with("L does nothing here")),
        "{:?}",
        app.message
    );

    // Not read-only: the mutating one explains itself and asks y/N naming node and context.
    app.read_only = false;
    app.show(PaneKind::Overview);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('X'));
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("command_mutating_confirm", screen);
    assert!(
        screen.contains("Run restart-svc on node 2 of prod-eu? y/N"),
        "{screen}"
    );
    assert!(matches!(app.dialog, Some(Dialog::Confirm { .. })));
    let Some(InputKind::Ask(ask)) = app.input.as_ref().map(|i| i.kind.clone()) else {
        panic!("{:?}", app.input);
    };
    assert_eq!(
        ask.then,
        Pending::ConfirmCommand {
            name: "restart-svc".into(),
            node: 2
        }
    );
    // Anything but y runs nothing; y goes on to run it.
    press(&mut app, KeyCode::Enter);
    assert!(app.dialog.is_none() && app.input.is_none());
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.1 && m.0.contains("restart-svc was not run")),
        "{:?}",
        app.message
    );
    let effect = app.answer(ask, "y".into());
    assert!(
        matches!(&effect, super::effect::Effect::Message { text, .. }
            if text == "no cluster connection to act on"),
        "{effect:?}"
    );
}

#[test]
fn cmd_names_an_unknown_command_and_lists_the_defined_ones() {
    let mut app = with_commands(app());
    app.command("cmd nope");
    let screen = text(&render(&app, 120, 30));
    assert!(
        screen.contains(
            "no operator command \"nope\" in prod-eu; defined: df, logs (L), restart-svc (X)"
        ),
        "{screen}"
    );
    app.command("cmd");
    let screen = text(&render(&app, 160, 30));
    assert!(
        screen.contains("operator commands: df, logs (L), restart-svc (X) (:cmd NAME runs"),
        "{screen}"
    );
    let mut bare = app_with("dark", ColorDepth::TrueColor);
    bare.command("cmd logs");
    let screen = text(&render(&bare, 160, 30));
    assert!(
        screen.contains("no operator command \"logs\": prod-eu defines none"),
        "{screen}"
    );
}

/// A finished command's outcome and output (snapshot), scrolled by j/k, pgdn/pgup and the
/// arrows, and closed by esc; it is on the timeline.
#[test]
fn a_command_s_output_dialog_scrolls_and_a_timed_out_one_says_so() {
    use super::ops::{OpEvent, RunOutput};
    use crate::ops::commands::{End, Outcome};
    use std::time::Duration;
    let mut app = app();
    let output: String = (1..=200)
        .map(|i| {
            format!(
                "Dec 03 07:{:02}:00 n2 opsdeck-node[411]: line {i}\n",
                i % 60
            )
        })
        .collect();
    let finished = Outcome {
        argv: vec!["ssh".into(), "127.0.0.1".into(), "journalctl".into()],
        end: End::Exited(0),
        output: output.clone(),
        dropped_bytes: 0,
        duration: Duration::from_millis(420),
    };
    let summary = finished.summary("logs", 2, Duration::from_secs(30));
    assert_eq!(summary, "logs on node 2: exit 0 in 0.4s");
    app.dialog = Some(super::state::Dialog::Running {
        title: "cmd logs on node 2".into(),
        started: std::time::Instant::now(),
        ratio: None,
        detail: String::new(),
    });
    app.on_op_event(OpEvent::Ran {
        title: "cmd logs on node 2".into(),
        summary,
        ok: true,
        ran: Ok(RunOutput {
            argv: "ssh 127.0.0.1 journalctl -u opsdeck-node -n 200".into(),
            output: finished.output_text(),
        }),
    });
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("dialog_command_output", screen);
    assert!(
        screen.contains("line 1\n") || screen.contains("line 1 "),
        "{screen}"
    );
    assert!(screen.contains("lines 1-14 of 200"), "{screen}");
    assert!(
        app.model
            .timeline
            .iter()
            .any(|e| e.detail == "cmd logs on node 2: exit 0 in 0.4s" && e.kind == "action_ok"),
        "{:?}",
        app.model.timeline
    );
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Down);
    assert!(text(&render(&app, 80, 24)).contains("lines 3-16 of 200"));
    press(&mut app, KeyCode::PageDown);
    assert!(text(&render(&app, 80, 24)).contains("lines 17-30 of 200"));
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::PageUp);
    assert!(text(&render(&app, 80, 24)).contains("lines 2-15 of 200"));
    press(&mut app, KeyCode::End);
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("lines 187-200 of 200") && screen.contains("line 200"),
        "{screen}"
    );
    // Past the end it stays at the end.
    press(&mut app, KeyCode::PageDown);
    assert!(text(&render(&app, 80, 24)).contains("lines 187-200 of 200"));
    press(&mut app, KeyCode::Esc);
    assert!(app.dialog.is_none());

    // A command that hung: killed at its timeout, and said so.
    let hung = Outcome {
        argv: vec!["sh".into(), "-c".into(), "sleep 600".into()],
        end: End::TimedOut,
        output: "waiting for the lock\n".into(),
        dropped_bytes: 0,
        duration: Duration::from_millis(5_010),
    };
    app.on_op_event(OpEvent::Ran {
        title: "cmd hang on node 2".into(),
        summary: hung.summary("hang", 2, Duration::from_secs(5)),
        ok: hung.end.ok(),
        ran: Ok(RunOutput {
            argv: "sh -c 'sleep 600'".into(),
            output: hung.output_text(),
        }),
    });
    let screen = text(&render(&app, 80, 24));
    insta::assert_snapshot!("dialog_command_timed_out", screen);
    assert!(
        screen.contains("hang on node 2: timed out after 5s; its processes were killed"),
        "{screen}"
    );
    assert!(
        app.model.timeline.iter().any(|e| e.kind == "action_failed"
            && e.detail == "cmd hang on node 2: timed out after 5s; its processes were killed"),
        "{:?}",
        app.model.timeline
    );
}

#[test]
fn a_command_key_the_keymap_already_has_is_refused_before_the_console_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[commands.snap]\nrun = \"ls\"\nkey = \"b\"\n[commands.drop]\nrun = \"ls\"\nkey = \"x\"\n[commands.ok]\nrun = \"ls\"\nkey = \"L\"\n",
    )
    .unwrap();
    let mut args = crate::cli::ConsoleArgs::default();
    args.cluster.config.config = Some(config.clone());
    let e = super::resolve(&args).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        e,
        "operator command \"drop\" has key = \"x\", which keymap default binds to remove_node in [overview]: pick another key for drop in config.toml (one the keymap leaves free on the Overview), or remove its key and run it with :cmd drop\n\
         operator command \"snap\" has key = \"b\", which keymap default binds to backup in [global]: pick another key for snap in config.toml (one the keymap leaves free on the Overview), or remove its key and run it with :cmd snap\n\
         the console did not start"
    );
    // Free keys start; a keymap switch that would take them is refused, the keymap kept.
    std::fs::write(&config, "[commands.ok]\nrun = \"ls\"\nkey = \"j\"\n").unwrap();
    let settings = super::resolve(&args).unwrap();
    let mut app = app();
    app.config = settings.config;
    app.command("keymap vim");
    assert_eq!(app.keymap.name, "default");
    let (message, error) = app.message.clone().unwrap();
    assert!(error, "{message}");
    assert!(
        message.starts_with("keymap vim not loaded: operator command \"ok\" has key = \"j\", which keymap vim binds to down in [overview]"),
        "{message}"
    );
}

/// `d` asks where to write the diagnostics bundle (a name with the time filled in), also
/// read-only (it only reads the cluster), and the bundle records this console's alerts.
#[test]
fn d_asks_for_the_bundle_file_even_read_only_and_the_bundle_has_the_consoles_alerts() {
    let mut app = app();
    app.read_only = true;
    press(&mut app, KeyCode::Char('d'));
    let Some(input) = app.input.as_ref() else {
        panic!("no question: {:?}", app.message);
    };
    let crate::console::state::InputKind::Ask(ask) = &input.kind else {
        panic!("{:?}", input.kind);
    };
    assert_eq!(ask.then, crate::console::state::Pending::BundleTo);
    assert!(
        input.text.starts_with("opsdeck-bundle-") && input.text.ends_with(".tar.gz"),
        "{}",
        input.text
    );
    let alerts = app.alert_states_json();
    assert_eq!(alerts["source"], "the console's alert states");
    let listed = alerts["alerts"].as_array().expect("alerts").len();
    assert_eq!(listed, app.alerts.evaluator.alerts().len());
}
