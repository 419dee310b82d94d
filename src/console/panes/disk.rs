//! Disk: per node the data dir and sled sizes, how full its filesystem is, how fast the data
//! dir grows (over the frames of the last 5 minutes) and when, at that rate, the free space
//! would reach the node's reserve (`--storage-reserve`), where it starts refusing writes.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Row, Table};
use ratatui::Frame;

use super::{block, node_label};
use crate::console::app::App;
use crate::console::model::{Link, NodeView};
use crate::console::theme::Role;
use crate::format::{bytes, duration_secs};

const GROWTH_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Data dir growth in bytes per second over the recent samples (None: too few samples).
pub fn growth_per_sec(n: &NodeView) -> Option<f64> {
    let last = n.samples.back()?;
    let first = n
        .samples
        .iter()
        .find(|s| last.at - s.at <= GROWTH_WINDOW_MS)?;
    let dt = (last.at - first.at) as f64 / 1000.0;
    (dt >= 5.0).then(|| (last.data_dir_bytes as f64 - first.data_dir_bytes as f64) / dt)
}

fn used_pct(total: u64, free: u64) -> Option<f64> {
    (total > 0).then(|| 100.0 * total.saturating_sub(free) as f64 / total as f64)
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let block = block(app, "Disk");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let n = app.model.nodes.len() as u16;
    let [table_area, gauges_area, note_area] = Layout::vertical([
        Constraint::Length(n + 2),
        Constraint::Length(n),
        Constraint::Min(0),
    ])
    .areas(inner);
    let header = Row::new([
        "NODE",
        "DATA DIR",
        "SLED",
        "FS USED",
        "FS FREE",
        "GROWTH/MIN",
        "FULL IN",
    ])
    .style(t.style(Role::Header));
    let mut rows = Vec::new();
    for view in &app.model.nodes {
        let label = node_label(view);
        let (Link::Up, Some(s)) = (&view.link, &view.status) else {
            rows.push(Row::new(vec![label, "down".into()]).style(t.style(Role::Down)));
            continue;
        };
        let known = |v: u64| if v > 0 { bytes(v) } else { "-".into() };
        let growth = growth_per_sec(view);
        // Writes stop at the node's reserve, not at the last byte.
        let reserve = s.storage.as_ref().map_or(0, |st| st.reserve_bytes);
        let full_in = match growth {
            _ if s.storage.as_ref().is_some_and(|st| st.full) => "FULL: writes refused".into(),
            Some(g) if g > 0.0 && s.fs_total_bytes > 0 => {
                duration_secs((s.fs_free_bytes.saturating_sub(reserve) as f64 / g) as u64)
            }
            Some(_) if s.fs_total_bytes > 0 => "not growing".into(),
            _ => "-".into(),
        };
        let growth_text = match growth {
            Some(g) if s.data_dir_bytes > 0 => {
                let per_min = g * 60.0;
                let sign = if per_min < 0.0 { "-" } else { "+" };
                format!("{sign}{}", bytes(per_min.abs() as u64))
            }
            _ => "-".into(),
        };
        rows.push(
            Row::new(vec![
                label,
                known(s.data_dir_bytes),
                known(s.sled_size_on_disk),
                used_pct(s.fs_total_bytes, s.fs_free_bytes)
                    .map(|p| format!("{p:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                if s.fs_total_bytes > 0 {
                    bytes(s.fs_free_bytes)
                } else {
                    "-".into()
                },
                growth_text,
                full_in,
            ])
            .style(t.style(Role::Text)),
        );
    }
    let widths = [4, 10, 10, 8, 10, 11, 12].map(Constraint::Length);
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        table_area,
    );

    for (i, view) in app.model.nodes.iter().enumerate() {
        let row = Rect {
            y: gauges_area.y + i as u16,
            height: 1,
            ..gauges_area
        };
        if row.y >= gauges_area.bottom() {
            break;
        }
        let [l, r] = Layout::horizontal([Constraint::Length(5), Constraint::Min(10)]).areas(row);
        f.render_widget(Paragraph::new(node_label(view)), l);
        match view
            .status
            .as_ref()
            .filter(|_| view.link == Link::Up)
            .and_then(|s| used_pct(s.fs_total_bytes, s.fs_free_bytes).map(|p| (s, p)))
        {
            Some((s, pct)) => {
                let role = if pct >= 90.0 {
                    Role::Critical
                } else if pct >= 80.0 {
                    Role::Warn
                } else {
                    Role::Ok
                };
                f.render_widget(
                    Gauge::default()
                        .ratio((pct / 100.0).clamp(0.0, 1.0))
                        .label(format!("{pct:.1}% of {}", bytes(s.fs_total_bytes)))
                        .gauge_style(t.style(role))
                        .use_unicode(true),
                    r,
                );
            }
            None => f.render_widget(
                Paragraph::new(Span::styled(
                    "filesystem figures not reported",
                    t.style(Role::Dim),
                )),
                r,
            ),
        }
    }
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(
            "GROWTH is the data dir over the last 5 min; FULL IN assumes it keeps that pace.",
            t.style(Role::Dim),
        ))),
        note_area,
    );
}
