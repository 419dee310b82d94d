//! The dialog of a running or finished action: a progress gauge with bytes and rate, then
//! the outcome (and a new key's secret, shown this once).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};
use ratatui::Frame;

use crate::console::action::Action;
use crate::console::app::App;
use crate::console::state::Dialog;
use crate::console::theme::Role;
use crate::format::duration_secs;

pub fn draw(app: &App, dialog: &Dialog, f: &mut Frame, body: Rect) {
    if let Dialog::Output {
        title,
        ok,
        summary,
        argv,
        output,
        scroll,
    } = dialog
    {
        let shown = Shown {
            title,
            ok: *ok,
            summary,
            argv,
            output,
        };
        return draw_output(app, &shown, *scroll, f, body);
    }
    let t = &app.theme;
    let key = |a: Action| {
        app.keymap
            .key_for("dialog", a)
            .map(|k| k.to_string())
            .unwrap_or_else(|| "?".into())
    };
    let width = body.width.min(76);
    let height = body.height.min(9);
    let area = Rect {
        x: body.x + (body.width - width) / 2,
        y: body.y + (body.height - height) / 2,
        width,
        height,
    };
    let (title, role) = match dialog {
        Dialog::Running { title, .. } => (format!(" {title} "), Role::Title),
        Dialog::Confirm {
            title, warn: true, ..
        } => (format!(" {title} "), Role::Critical),
        Dialog::Confirm { title, .. } => (format!(" {title} "), Role::Title),
        Dialog::Finished {
            title, ok: true, ..
        } => (format!(" {title}: done "), Role::Ok),
        Dialog::Finished { title, .. } | Dialog::Output { title, .. } => {
            (format!(" {title}: FAILED "), Role::Critical)
        }
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(role))
        .title(Span::styled(title, t.style(role)));
    let inner = block.inner(area);
    f.render_widget(Clear, area);
    f.render_widget(block, area);
    let [top, middle, hint] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let hint_text = match dialog {
        Dialog::Running { .. } => format!("{} hides this; the action goes on", key(Action::Cancel)),
        Dialog::Finished {
            secret: Some(s), ..
        } => format!(
            "{} saves it to opsdeck-key-{}.secret · {} closes (shown once)",
            key(Action::Submit),
            s.id,
            key(Action::Cancel)
        ),
        Dialog::Finished { .. } | Dialog::Output { .. } => {
            format!("{} closes", key(Action::Cancel))
        }
        Dialog::Confirm { .. } => {
            "answer on the command line below · esc there cancels, nothing is changed".into()
        }
    };
    f.render_widget(
        Paragraph::new(Span::styled(hint_text, t.style(Role::Dim))),
        hint,
    );
    match dialog {
        Dialog::Running {
            started,
            ratio,
            detail,
            ..
        } => {
            let elapsed = duration_secs(started.elapsed().as_secs());
            match ratio {
                Some(r) => f.render_widget(
                    Gauge::default()
                        .gauge_style(t.style(Role::Ok))
                        .ratio(r.clamp(0.0, 1.0))
                        .label(format!("{:.0}%", r.clamp(0.0, 1.0) * 100.0)),
                    top,
                ),
                None => f.render_widget(
                    Paragraph::new(format!("working… {elapsed}")).style(t.style(Role::Text)),
                    top,
                ),
            }
            f.render_widget(
                Paragraph::new(detail.as_str())
                    .style(t.style(Role::Text))
                    .wrap(Wrap { trim: true }),
                middle,
            );
        }
        Dialog::Confirm { lines, warn, .. } => {
            let lines: Vec<Line> = lines
                .iter()
                .map(|l| {
                    let role = if *warn && l.starts_with("ANOTHER") {
                        Role::Critical
                    } else {
                        Role::Text
                    };
                    Line::from(Span::styled(l.clone(), t.style(role)))
                })
                .collect();
            f.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: true }),
                Rect {
                    height: top.height + middle.height,
                    ..top
                },
            );
        }
        Dialog::Output { .. } => {}
        Dialog::Finished {
            ok, text, secret, ..
        } => {
            let mut lines = vec![Line::from(Span::styled(
                text.clone(),
                t.style(if *ok { Role::Text } else { Role::Warn }),
            ))];
            if let Some(s) = secret {
                lines.push(Line::from(Span::styled(
                    format!("new secret: {}", s.secret),
                    t.style(Role::Highlight),
                )));
            }
            f.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: true }),
                Rect {
                    height: top.height + middle.height,
                    ..top
                },
            );
        }
    }
}

/// An operator command's outcome, as [`Dialog::Output`] holds it.
struct Shown<'a> {
    title: &'a str,
    ok: bool,
    summary: &'a str,
    argv: &'a str,
    output: &'a str,
}

/// An operator command's outcome (exit code or timeout, duration), its arguments and its
/// output, wrapped to the dialog's width and scrolled; nearly the whole body, so 80×24 shows
/// 14 lines of output.
fn draw_output(app: &App, shown: &Shown, scroll: usize, f: &mut Frame, body: Rect) {
    let t = &app.theme;
    let width = body.width.saturating_sub(2).min(120);
    let height = body.height.saturating_sub(2).clamp(body.height.min(9), 40);
    let area = Rect {
        x: body.x + (body.width - width) / 2,
        y: body.y + (body.height - height) / 2,
        width,
        height,
    };
    let role = if shown.ok { Role::Ok } else { Role::Critical };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(role))
        .title(Span::styled(
            format!(
                " {}{} ",
                shown.title,
                if shown.ok { "" } else { ": FAILED" }
            ),
            t.style(role),
        ));
    let inner = block.inner(area);
    f.render_widget(Clear, area);
    f.render_widget(block, area);
    let [head, text, hint] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let rows = wrap(shown.output, inner.width as usize);
    let page = text.height as usize;
    let max = rows.len().saturating_sub(page);
    app.output_rows.set((max, page));
    let scroll = scroll.min(max);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(
                shown.summary.to_string(),
                t.style(if shown.ok { Role::Text } else { Role::Warn }),
            )),
            Line::from(Span::styled(
                crate::format::cut(&format!("$ {}", shown.argv), inner.width as usize),
                t.style(Role::Dim),
            )),
            Line::from(Span::styled(
                "─".repeat(inner.width as usize),
                t.style(Role::Dim),
            )),
        ]),
        head,
    );
    let lines: Vec<Line> = if rows.is_empty() {
        vec![Line::from(Span::styled("(no output)", t.style(Role::Dim)))]
    } else {
        rows.iter()
            .skip(scroll)
            .take(page)
            .map(|r| Line::from(Span::styled(r.clone(), t.style(Role::Text))))
            .collect()
    };
    f.render_widget(Paragraph::new(lines), text);
    let key = |a: Action| {
        app.keymap
            .key_for("dialog", a)
            .map(|k| k.to_string())
            .unwrap_or_else(|| "?".into())
    };
    let position = if rows.len() > page {
        format!(
            " · lines {}-{} of {}",
            scroll + 1,
            (scroll + page).min(rows.len()),
            rows.len()
        )
    } else {
        String::new()
    };
    f.render_widget(
        Paragraph::new(Span::styled(
            format!(
                "{}/{} {}/{} scroll · {} closes{position}",
                key(Action::Down),
                key(Action::Up),
                key(Action::PageDown),
                key(Action::PageUp),
                key(Action::Cancel)
            ),
            t.style(Role::Dim),
        )),
        hint,
    );
}

/// `text` as rows of at most `width` characters: lines wrapped, tabs expanded, and control
/// characters (a terminal would act on them) shown as `�`.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut rows = Vec::new();
    for line in text.lines() {
        let clean: Vec<char> = line
            .replace('\t', "    ")
            .chars()
            .filter(|c| *c != '\r')
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        if clean.is_empty() {
            rows.push(String::new());
        }
        for chunk in clean.chunks(width) {
            rows.push(chunk.iter().collect());
        }
    }
    rows
}
