//! GC: per node how much Raft log is on disk, where the last snapshot and purge are, how big
//! and slow the last snapshot was, sled's size before and after the last compaction, and a
//! snapshot being built or received right now.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use super::{block, node_label};
use crate::console::app::App;
use crate::console::model::Link;
use crate::console::theme::Role;
use crate::format::{bytes, clock, opt};

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let block = block(app, "GC · log compaction and space");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let n = app.model.nodes.len() as u16;
    let [log_area, sled_area, note_area] = Layout::vertical([
        Constraint::Length(n + 2),
        Constraint::Length(n + 2),
        Constraint::Min(0),
    ])
    .areas(inner);
    let header = Row::new([
        "NODE",
        "LOG ON DISK",
        "FIRST",
        "LAST",
        "SNAP IDX",
        "PURGED TO",
        "SNAP SIZE",
        "TOOK",
        "SNAP AT",
    ])
    .style(t.style(Role::Header));
    let header2 = Row::new([
        "NODE",
        "SLED NOW",
        "BEFORE COMPACT",
        "AFTER COMPACT",
        "RECLAIMED",
    ])
    .style(t.style(Role::Header));
    let mut rows = Vec::new();
    let mut rows2 = Vec::new();
    for view in &app.model.nodes {
        let label = node_label(view);
        let (Link::Up, Some(s)) = (&view.link, &view.status) else {
            rows.push(Row::new(vec![label.clone(), "down".into()]).style(t.style(Role::Down)));
            rows2.push(Row::new(vec![label, "down".into()]).style(t.style(Role::Down)));
            continue;
        };
        let gc = s.gc.clone().unwrap_or_default();
        // Until a node reports its GC figures, the log on disk is what lies between the purge
        // point and the last index.
        let on_disk = if gc.log_entries > 0 {
            gc.log_entries
        } else {
            s.last_log_index
                .unwrap_or(0)
                .saturating_sub(s.purged_index.unwrap_or(0))
        };
        let known = |v: u64| if v > 0 { bytes(v) } else { "-".into() };
        rows.push(
            Row::new(vec![
                label.clone(),
                on_disk.to_string(),
                opt(gc.first_log_index),
                opt(gc.last_log_index.or(s.last_log_index)),
                opt(gc.last_snapshot_index.or(s.snapshot_index)),
                opt(gc.last_purge_index.or(s.purged_index)),
                known(gc.last_snapshot_bytes),
                if gc.last_snapshot_millis > 0 {
                    format!("{}ms", gc.last_snapshot_millis)
                } else {
                    "-".into()
                },
                gc.last_snapshot_unix_ms
                    .map(|ms| clock(ms, app.utc_offset))
                    .unwrap_or_else(|| "-".into()),
            ])
            .style(t.style(Role::Text)),
        );
        let reclaimed = gc
            .sled_bytes_before_compact
            .checked_sub(gc.sled_bytes_after_compact)
            .filter(|_| gc.sled_bytes_before_compact > 0);
        rows2.push(
            Row::new(vec![
                label,
                known(s.sled_size_on_disk),
                known(gc.sled_bytes_before_compact),
                known(gc.sled_bytes_after_compact),
                reclaimed.map(bytes).unwrap_or_else(|| "-".into()),
            ])
            .style(t.style(Role::Text)),
        );
    }
    let widths = [4, 11, 7, 7, 8, 9, 9, 6, 8].map(Constraint::Length);
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        log_area,
    );
    let widths2 = [4, 10, 14, 13, 10].map(Constraint::Length);
    f.render_widget(
        Table::new(rows2, widths2).header(header2).column_spacing(1),
        sled_area,
    );
    let mut notes: Vec<Line> = app
        .model
        .nodes
        .iter()
        .filter_map(|view| {
            let gc = view.status.as_ref()?.gc.as_ref()?;
            (!gc.snapshot_in_progress.is_empty()).then(|| {
                let of = match gc.snapshot_progress_expected {
                    0 => String::new(),
                    n => format!(" of about {}", bytes(n)),
                };
                Line::from(Span::styled(
                    format!(
                        "▶ {} {} a snapshot: {} written{of}",
                        node_label(view),
                        gc.snapshot_in_progress,
                        bytes(gc.snapshot_progress_bytes)
                    ),
                    t.style(Role::Warn),
                ))
            })
        })
        .collect();
    notes.push(Line::from(Span::styled(
        "Snapshots and purges happen every --snapshot-every entries; '-' = not reported or never happened.",
        t.style(Role::Dim),
    )));
    f.render_widget(
        Paragraph::new(notes).wrap(ratatui::widgets::Wrap { trim: false }),
        note_area,
    );
}
