//! Keys: the cluster's API keys (id, role, tenants, state, created, expires, last used; the
//! ledger holds no secrets and none are shown), polled every few seconds while this pane is
//! on screen. Listing keys needs an admin key; a refusal is shown as such.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{block, scroll};
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::Model;
use crate::console::state::Pending;
use crate::console::theme::Role;
use crate::console::watch::KEYS_EVERY;
use crate::format::{clock, cut, date_time};

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let list = &app.model.keys;
    let title = match list.fetched_ms {
        Some(at) => format!(
            "Keys · {} key{} · listed at {}",
            list.keys.len(),
            if list.keys.len() == 1 { "" } else { "s" },
            clock(at, app.utc_offset)
        ),
        None => "Keys".to_string(),
    };
    let block = block(app, title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let error_rows = if list.error.is_some() { 2 } else { 0 };
    let [error_area, table_area, note_area] = Layout::vertical([
        Constraint::Length(error_rows),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    if let Some(e) = &list.error {
        let text = if e.refused {
            format!("needs an admin key: {}", e.message)
        } else {
            format!("cannot list the keys: {}", e.message)
        };
        f.render_widget(
            Paragraph::new(Span::styled(text, t.style(Role::Warn))).wrap(Wrap { trim: true }),
            error_area,
        );
    }
    if list.fetched_ms.is_none() {
        if list.error.is_none() {
            f.render_widget(
                Paragraph::new(Span::styled("asking the cluster…", t.style(Role::Dim))),
                table_area,
            );
        }
        return;
    }
    let visible = table_area.height.saturating_sub(1) as usize;
    app.body_rows.set(visible as u16);
    // `keys_top` is the selected key (the one `rotate_key` acts on); keep it on screen.
    let selected = app.keys_top.min(list.keys.len().saturating_sub(1));
    let first = selected.saturating_sub(visible.saturating_sub(1));
    let header = Row::new([
        "ID",
        "ROLE",
        "STATE",
        "TENANTS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ])
    .style(t.style(Role::Header));
    let when = |ms: Option<i64>| {
        ms.map(|ms| date_time(ms, app.utc_offset))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Row> = list
        .keys
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, k)| {
            let role = match k.state.as_str() {
                "valid" => Role::Ok,
                "expired" => Role::Warn,
                _ => Role::Down,
            };
            let tenants = if k.tenants.is_empty() {
                "*".to_string()
            } else {
                k.tenants.join(",")
            };
            Row::new(vec![
                Span::raw(cut(&k.id, 10)),
                Span::raw(cut(&k.role, 6)),
                Span::styled(cut(&k.state, 7), t.style(role)),
                Span::raw(cut(&tenants, 10)),
                Span::raw(date_time(k.created_unix_ms, app.utc_offset)),
                Span::raw(when(k.expires_unix_ms)),
                Span::raw(when(k.last_used_unix_ms)),
            ])
            .style(super::row_style(app, i == selected))
        })
        .collect();
    let widths = [10, 6, 7, 10, 11, 11, 11].map(Constraint::Length);
    if list.keys.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled("the cluster has no keys", t.style(Role::Dim))),
            table_area,
        );
    } else {
        f.render_widget(
            Table::new(rows, widths).header(header).column_spacing(1),
            table_area,
        );
    }
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            format!(
                "Asked every {}s while shown · times MM-DD HH:MM · last used lags up to 1 min",
                KEYS_EVERY.as_secs()
            ),
            t.style(Role::Dim),
        ))),
        note_area,
    );
}

/// Selecting a key (`selected`), and rotating it.
pub fn handle(selected: &mut usize, model: &Model, rows: usize, action: Action) -> Option<Effect> {
    if action == Action::RotateKey {
        let Some(key) = model.keys.keys.get(*selected) else {
            return Some(Effect::error("no key selected: the key list is empty"));
        };
        let id = key.id.clone();
        return Some(Effect::Ask {
            question: format!(
                "rotate key {id} of {}: the old key stays valid for ",
                model.context
            ),
            text: "24h".into(),
            expect: None,
            then: Pending::RotateGrace { id },
        });
    }
    let len = model.keys.keys.len();
    scroll(selected, len, rows, action).then_some(Effect::Done)
}
