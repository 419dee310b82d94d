//! Logs: every node's records merged by time, coloured by level. Follow mode keeps the newest
//! line in view; pause freezes the view while lines keep arriving; filters by node and
//! minimum level; `/` searches (matches highlighted, `n`/`N` jump); the filtered buffer can be
//! saved to a file; `dropped N` marks records a node could not send us.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{block, next_node};
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::{Level, Model};
use crate::console::state::logs::{contains, line_text, LogsView};
use crate::console::theme::{Role, Theme};
use crate::format::clock;

fn level_role(level: Level) -> Role {
    match level {
        Level::Error => Role::Critical,
        Level::Warn => Role::Warn,
        Level::Info => Role::Text,
        Level::Debug | Level::Trace => Role::Dim,
    }
}

/// `text` as spans with every case-insensitive occurrence of `needle` in the match style.
fn highlighted(
    text: &str,
    needle: Option<&str>,
    base: ratatui::style::Style,
    theme: &Theme,
) -> Vec<Span<'static>> {
    let Some(needle) = needle.filter(|n| !n.is_empty()) else {
        return vec![Span::styled(text.to_string(), base)];
    };
    let lower = text.to_lowercase();
    let nl = needle.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; fall back to no highlight then.
    if lower.len() != text.len() {
        return vec![Span::styled(text.to_string(), base)];
    }
    let mut spans = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(&nl) {
        let start = pos + found;
        if start > pos {
            spans.push(Span::styled(text[pos..start].to_string(), base));
        }
        spans.push(Span::styled(
            text[start..start + nl.len()].to_string(),
            theme.style(Role::Match),
        ));
        pos = start + nl.len();
    }
    if pos < text.len() {
        spans.push(Span::styled(text[pos..].to_string(), base));
    }
    spans
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let v = &app.logs;
    let t = &app.theme;
    let lines = v.filtered(&app.model);
    let mut title = format!("Logs · {} lines", lines.len());
    title.push_str(&format!(
        " · node {}",
        v.node
            .map(|n| n.to_string())
            .unwrap_or_else(|| "all".into())
    ));
    title.push_str(&format!(
        " · ≥{}",
        v.min_level.map(|l| l.name()).unwrap_or("TRACE")
    ));
    if let Some(s) = &v.search {
        let n = lines
            .iter()
            .filter(|(_, l)| contains(&line_text(l), s))
            .count();
        title.push_str(&format!(" · /{s} ({n})"));
    }
    if let Some(p) = v.paused_at {
        let total = app.model.logs_evicted + app.model.logs.len() as u64;
        title.push_str(&format!(" · PAUSED +{}", total.saturating_sub(p)));
    } else if v.anchor.is_some() {
        title.push_str(" · scrolled");
    } else {
        title.push_str(" · follow");
    }
    let block = block(app, title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    app.body_rows.set(inner.height);
    let height = inner.height as usize;
    let end = match v.anchor {
        None => lines.len(),
        Some(a) => lines.partition_point(|(abs, _)| *abs <= a),
    };
    let start = end.saturating_sub(height);
    let mut out: Vec<Line> = Vec::new();
    if lines.is_empty() {
        out.push(Line::from(Span::styled(
            if app.model.logs.is_empty() {
                "no log records yet"
            } else {
                "no line passes the filters (x clears them)"
            },
            t.style(Role::Dim),
        )));
    }
    for (abs, l) in &lines[start..end] {
        let time = clock(l.unix_ms, app.utc_offset);
        if let Some(n) = l.dropped {
            out.push(Line::from(Span::styled(
                format!(
                    "{time} n{} ─── dropped {n} records (the console fell behind) ───",
                    l.node_id
                ),
                t.style(Role::Warn),
            )));
            continue;
        }
        let base = if Some(*abs) == v.current {
            t.style(Role::Highlight)
        } else {
            t.style(level_role(l.level))
        };
        let mut spans = vec![
            Span::styled(format!("{time} n{} ", l.node_id), t.style(Role::Dim)),
            Span::styled(
                format!("{:<5} ", l.level.name()),
                t.style(level_role(l.level)),
            ),
        ];
        spans.extend(highlighted(&line_text(l), v.search.as_deref(), base, t));
        out.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(out), inner);
}

/// Moving through the log, following and pausing it, its filters and search, and saving it.
pub fn handle(v: &mut LogsView, model: &Model, rows: usize, action: Action) -> Option<Effect> {
    let page = rows.saturating_sub(2).max(1);
    let lines: Vec<u64> = v.filtered(model).iter().map(|(a, _)| *a).collect();
    let pos = match v.anchor {
        None => lines.len().saturating_sub(1),
        Some(a) => lines.partition_point(|abs| *abs <= a).saturating_sub(1),
    };
    let jump = |v: &mut LogsView, to: usize| {
        if lines.is_empty() {
            return;
        }
        let to = to.min(lines.len() - 1);
        v.anchor = if to + 1 >= lines.len() && v.paused_at.is_none() {
            None
        } else {
            Some(lines[to])
        };
    };
    match action {
        Action::Up => jump(v, pos.saturating_sub(1)),
        Action::Down => jump(v, pos + 1),
        Action::PageUp => jump(v, pos.saturating_sub(page)),
        Action::PageDown => jump(v, pos + page),
        Action::Top => jump(v, page.saturating_sub(1)),
        Action::Bottom => {
            v.anchor = None;
            v.paused_at = None;
        }
        Action::ToggleFollow => {
            v.paused_at = None;
            v.anchor = match v.anchor {
                Some(_) => None,
                None => lines.last().copied(),
            };
        }
        Action::TogglePause => {
            if v.paused_at.is_some() {
                v.paused_at = None;
                v.anchor = None;
            } else {
                v.paused_at = Some(model.logs_evicted + model.logs.len() as u64);
            }
        }
        Action::CycleLevel => {
            v.min_level = match v.min_level {
                None => Some(Level::Debug),
                Some(Level::Trace) => Some(Level::Debug),
                Some(Level::Debug) => Some(Level::Info),
                Some(Level::Info) => Some(Level::Warn),
                Some(Level::Warn) => Some(Level::Error),
                Some(Level::Error) => None,
            };
            v.anchor = None;
        }
        Action::CycleNode => {
            v.node = next_node(model, v.node);
            v.anchor = None;
        }
        Action::ClearFilters => {
            v.node = None;
            v.min_level = None;
            v.search = None;
            v.current = None;
        }
        Action::SearchNext | Action::SearchPrev => {
            let Some(needle) = v.search.clone() else {
                return Some(Effect::error("no search: press / first"));
            };
            let filtered = v.filtered(model);
            let from = v.current.or(v.anchor).unwrap_or(u64::MAX);
            let hit = if action == Action::SearchNext {
                filtered.iter().find(|(a, l)| {
                    *a > from && from != u64::MAX && contains(&line_text(l), &needle)
                })
            } else {
                filtered
                    .iter()
                    .rev()
                    .find(|(a, l)| *a < from && contains(&line_text(l), &needle))
            };
            match hit.map(|(a, _)| *a) {
                Some(abs) => {
                    v.current = Some(abs);
                    v.anchor = Some(abs);
                }
                None => return Some(Effect::error(format!("no more matches for {needle:?}"))),
            }
        }
        Action::SaveLogs => return Some(Effect::SaveLogs { path: None }),
        _ => return None,
    }
    Some(Effect::Done)
}
