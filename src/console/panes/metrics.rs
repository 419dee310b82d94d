//! Metrics: operations per second, errors per second and latency percentiles, as a table of
//! the latest figures per node and sparklines over the last minutes, cluster-wide (summed;
//! latency is the worst node) or for one node (`o` cycles).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Sparkline, Table};
use ratatui::Frame;

use super::{block, next_node, node_label};
use crate::console::action::Action;
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::{Link, Model, NodeView, Sample};
use crate::console::theme::Role;
use crate::format::{bytes, micros, rate};

/// Errors per second between consecutive samples.
fn error_rates(samples: &[Sample]) -> Vec<f64> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].at - w[0].at).max(1) as f64 / 1000.0;
            w[1].errors_total.saturating_sub(w[0].errors_total) as f64 / dt
        })
        .collect()
}

/// The series the sparklines show: one node's, or every node's combined by position from
/// the newest sample (frames arrive at the same interval from every node).
struct Series {
    ops: Vec<f64>,
    errors: Vec<f64>,
    p50: Vec<u64>,
    p95: Vec<u64>,
    p99: Vec<u64>,
}

fn series(nodes: &[&NodeView], width: usize) -> Series {
    let per_node: Vec<Vec<Sample>> = nodes
        .iter()
        .map(|n| n.samples.iter().copied().collect())
        .collect();
    let len = per_node
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(width + 1);
    let at = |v: &Vec<Sample>, i: usize| -> Option<Sample> {
        // i counts from the oldest of the last `len` positions.
        let back = len - 1 - i;
        v.len().checked_sub(1 + back).map(|j| v[j])
    };
    let mut s = Series {
        ops: vec![],
        errors: vec![],
        p50: vec![],
        p95: vec![],
        p99: vec![],
    };
    let errs: Vec<Vec<f64>> = per_node.iter().map(|v| error_rates(v)).collect();
    for i in 0..len {
        let here: Vec<Sample> = per_node.iter().filter_map(|v| at(v, i)).collect();
        s.ops.push(here.iter().map(|x| x.ops_per_sec).sum());
        s.p50.push(here.iter().map(|x| x.p50_us).max().unwrap_or(0));
        s.p95.push(here.iter().map(|x| x.p95_us).max().unwrap_or(0));
        s.p99.push(here.iter().map(|x| x.p99_us).max().unwrap_or(0));
        if i > 0 {
            let back = len - 1 - i;
            s.errors.push(
                errs.iter()
                    .filter_map(|e| e.len().checked_sub(1 + back).map(|j| e[j]))
                    .sum(),
            );
        }
    }
    s
}

fn last<T: Copy + Default>(v: &[T]) -> T {
    v.last().copied().unwrap_or_default()
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let nodes: Vec<&NodeView> = app
        .model
        .nodes
        .iter()
        // Cluster-wide sums nodes that are up now: a dead node's last samples would otherwise
        // line up with the present.
        .filter(|n| n.link == Link::Up)
        .filter(|n| {
            app.metrics_node
                .is_none_or(|id| n.status.as_ref().is_some_and(|s| s.id == id))
        })
        .collect();
    let scope = match app.metrics_node {
        Some(id) => format!("node {id}"),
        None => "cluster".into(),
    };
    let block = block(app, format!("Metrics · {scope} · o: node/cluster"));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let table_rows = app.model.nodes.len() as u16 + 1;
    let [table_area, ops_area, err_area, lat_area] = Layout::vertical([
        Constraint::Length(table_rows + 1),
        Constraint::Min(3),
        Constraint::Min(3),
        Constraint::Length(4),
    ])
    .areas(inner);

    let header = Row::new([
        "NODE", "OPS/S", "ERR/S", "P50", "P95", "P99", "MAX", "RSS", "CPU",
    ])
    .style(t.style(Role::Header));
    let rows = app.model.nodes.iter().map(|n| {
        let label = node_label(n);
        match (&n.link, &n.status) {
            (Link::Up, Some(s)) if s.ops.is_empty() => {
                let mut cells = vec![label];
                cells.extend(std::iter::repeat_n("-".to_string(), 6));
                cells.push(if s.rss_bytes > 0 {
                    bytes(s.rss_bytes)
                } else {
                    "-".into()
                });
                cells.push(format!("{:.1}%", s.cpu_percent));
                Row::new(cells).style(t.style(Role::Text))
            }
            (Link::Up, Some(s)) => {
                let samples: Vec<Sample> = n.samples.iter().copied().collect();
                let errs = error_rates(&samples);
                let max = s.ops.iter().map(|o| o.max_us).max().unwrap_or(0);
                let sample = last(&samples);
                Row::new(vec![
                    label,
                    rate(sample.ops_per_sec),
                    rate(last(&errs)),
                    micros(sample.p50_us),
                    micros(sample.p95_us),
                    micros(sample.p99_us),
                    micros(max),
                    if s.rss_bytes > 0 {
                        bytes(s.rss_bytes)
                    } else {
                        "-".into()
                    },
                    format!("{:.1}%", s.cpu_percent),
                ])
                .style(t.style(Role::Text))
            }
            _ => Row::new(vec![label, "down".into()]).style(t.style(Role::Down)),
        }
    });
    let widths = [4, 8, 7, 8, 8, 8, 8, 9, 6].map(Constraint::Length);
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        table_area,
    );

    let width = inner.width.saturating_sub(16) as usize;
    let s = series(&nodes, width);
    let label =
        |text: String, role: Role| Paragraph::new(Line::from(Span::styled(text, t.style(role))));
    let spark = |f: &mut Frame, area: Rect, title: String, data: Vec<u64>, role: Role| {
        let [l, r] = Layout::horizontal([Constraint::Length(16), Constraint::Min(1)]).areas(area);
        f.render_widget(label(title, Role::Text), l);
        f.render_widget(Sparkline::default().data(data).style(t.style(role)), r);
    };
    let scale = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 10.0).round() as u64)
            .collect::<Vec<u64>>()
    };
    spark(
        f,
        ops_area,
        format!("ops/s   {:>7}", rate(last(&s.ops))),
        scale(&s.ops),
        Role::Ok,
    );
    spark(
        f,
        err_area,
        format!("errors/s {:>6}", rate(last(&s.errors))),
        scale(&s.errors),
        Role::Critical,
    );
    let lat_rows = Layout::vertical([Constraint::Length(1); 4]).split(lat_area);
    f.render_widget(
        label(
            format!("latency, last {} frames (worst node):", s.p99.len()),
            Role::Dim,
        ),
        lat_rows[0],
    );
    spark(
        f,
        lat_rows[1],
        format!("p50 {:>11}", micros(last(&s.p50))),
        s.p50.clone(),
        Role::Text,
    );
    spark(
        f,
        lat_rows[2],
        format!("p95 {:>11}", micros(last(&s.p95))),
        s.p95.clone(),
        Role::Warn,
    );
    spark(
        f,
        lat_rows[3],
        format!("p99 {:>11}", micros(last(&s.p99))),
        s.p99.clone(),
        Role::Critical,
    );
}

/// One node / all nodes: `node` is the one shown, None for the cluster.
pub fn handle(node: &mut Option<u64>, model: &Model, action: Action) -> Option<Effect> {
    if action != Action::CycleNode {
        return None;
    }
    *node = next_node(model, *node);
    Some(Effect::Done)
}
