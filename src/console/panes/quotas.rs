//! Quotas: per tenant the keys and bytes used against its limits as gauges, its tier, and
//! the writes its quota refused, from the freshest status frame (usage is counted at apply
//! time, so every node that has applied as far reports the same).

use opsdeck_node::pb::{NodeStatus, TenantUsage};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};
use ratatui::Frame;

use super::{block, scroll};
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::{Link, Model};
use crate::console::theme::{Role, Theme};
use crate::format::{bytes, clock, cut};

/// The newest frame of a node that is up (the highest applied index among equals).
pub fn freshest(model: &Model) -> Option<&NodeStatus> {
    model
        .nodes
        .iter()
        .filter(|n| n.link == Link::Up)
        .filter_map(|n| n.status.as_ref())
        .max_by_key(|s| (s.unix_ms, s.applied.unwrap_or(0)))
}

const COLUMNS: [u16; 5] = [10, 6, 24, 26, 8];

fn gauge<'a>(t: &Theme, used: u64, max: u64, show: fn(u64) -> String) -> Gauge<'a> {
    let pct = used as f64 * 100.0 / max as f64;
    let role = if pct >= 90.0 {
        Role::Critical
    } else if pct >= 80.0 {
        Role::Warn
    } else {
        Role::Ok
    };
    Gauge::default()
        .ratio((pct / 100.0).clamp(0.0, 1.0))
        .label(format!("{}/{} {pct:.0}%", show(used), show(max)))
        .gauge_style(t.style(role))
        .use_unicode(true)
}

fn count(n: u64) -> String {
    n.to_string()
}

fn usage_row(app: &App, f: &mut Frame, row: Rect, q: &TenantUsage) {
    let t = &app.theme;
    let [name, tier, keys, size, refused] = Layout::horizontal(COLUMNS.map(Constraint::Length))
        .spacing(1)
        .areas(row);
    f.render_widget(
        Paragraph::new(cut(&q.tenant, name.width as usize)).style(t.style(Role::Text)),
        name,
    );
    let tier_text = if q.tier.is_empty() { "-" } else { &q.tier };
    f.render_widget(
        Paragraph::new(cut(tier_text, tier.width as usize)).style(t.style(Role::Text)),
        tier,
    );
    for (area, used, max, show) in [
        (keys, q.keys, q.max_keys, count as fn(u64) -> String),
        (size, q.bytes, q.max_bytes, bytes),
    ] {
        let note = match max {
            Some(max) if max > 0 => {
                f.render_widget(gauge(t, used, max, show), area);
                continue;
            }
            Some(_) => " (limit 0: no writes)",
            None => " (no limit)",
        };
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(show(used), t.style(Role::Text)),
                Span::styled(note, t.style(Role::Dim)),
            ])),
            area,
        );
    }
    let role = if q.violations > 0 {
        Role::Warn
    } else {
        Role::Text
    };
    f.render_widget(
        Paragraph::new(q.violations.to_string()).style(t.style(role)),
        refused,
    );
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let source = freshest(&app.model);
    let tenants: &[TenantUsage] = source.map(|s| s.quotas.as_slice()).unwrap_or(&[]);
    let block = block(
        app,
        format!(
            "Quotas · {} tenant{}",
            tenants.len(),
            if tenants.len() == 1 { "" } else { "s" }
        ),
    );
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(source) = source else {
        f.render_widget(
            Paragraph::new(Span::styled(
                "no node is reachable: no usage to show",
                t.style(Role::Dim),
            )),
            inner,
        );
        return;
    };
    let from = format!(
        "node {}'s status frame at {}",
        source.id,
        clock(source.unix_ms, app.utc_offset)
    );
    if tenants.is_empty() {
        f.render_widget(
            Paragraph::new(vec![
                Line::from(Span::styled("no tenants", t.style(Role::Text))),
                Line::from(Span::styled(
                    format!("{from} lists no tenant usage."),
                    t.style(Role::Dim),
                )),
            ]),
            inner,
        );
        return;
    }
    let [header_area, list_area, note_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(inner);
    let titles = ["TENANT", "TIER", "KEYS", "BYTES", "REFUSED"];
    let cells = Layout::horizontal(COLUMNS.map(Constraint::Length))
        .spacing(1)
        .split(header_area);
    for (title, cell) in titles.iter().zip(cells.iter()) {
        f.render_widget(Paragraph::new(*title).style(t.style(Role::Header)), *cell);
    }
    let visible = list_area.height as usize;
    app.body_rows.set(list_area.height);
    let first = app.quotas_top.min(tenants.len().saturating_sub(visible));
    for (i, q) in tenants.iter().skip(first).take(visible).enumerate() {
        let row = Rect {
            y: list_area.y + i as u16,
            height: 1,
            ..list_area
        };
        usage_row(app, f, row, q);
    }
    f.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(format!("From {from}."), t.style(Role::Dim))),
            Line::from(Span::styled(
                "REFUSED: writes refused by the quota since it was last reset.",
                t.style(Role::Dim),
            )),
        ]),
        note_area,
    );
}

/// Scrolling the tenants (`top` is the first one shown).
pub fn handle(top: &mut usize, model: &Model, rows: usize, action: Action) -> Option<Effect> {
    let len = freshest(model).map_or(0, |s| s.quotas.len());
    let page = rows;
    // The top row goes no further than where the last tenant is on screen.
    let tops = len.saturating_sub(page) + 1;
    scroll(top, tops, page, action).then_some(Effect::Done)
}
