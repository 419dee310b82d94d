//! Overview: one row per node (role, term, log indexes, lag, health, uptime), the verdict,
//! and for each unreachable node since when and why.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::block;
use crate::client::digests::Outcome;
use crate::console::action::{Action, PaneKind};
use crate::console::app::App;
use crate::console::effect::Effect;
use crate::console::model::{node_list, Link, Model, Verdict, LAG_WARN};
use crate::console::state::Pending;
use crate::console::theme::Role;
use crate::format::{clock, cut, duration_secs, opt};

pub fn verdict_line(app: &App) -> Line<'static> {
    let (verdict, text) = app.model.verdict();
    let (symbol, role) = match verdict {
        Verdict::Healthy => ("✔", Role::Ok),
        Verdict::Degraded => ("▲", Role::Warn),
        Verdict::NoQuorum => ("✖", Role::Critical),
        Verdict::Unknown => ("…", Role::Dim),
    };
    Line::from(Span::styled(
        format!("{symbol} {text}"),
        app.theme.style(role),
    ))
}

/// Whether the replicas hold the same state, from the digests in their frames (section
/// "State digests" of ARCHITECTURE.md); None before two frames share an index.
fn replicas_line(app: &App) -> Option<Line<'static>> {
    let check = app.model.replicas.as_ref()?;
    let at = clock(check.at_ms, app.utc_offset);
    let (text, role) = match &check.outcome {
        Outcome::Agree { index, .. } => (
            format!("≡ replicas agree at index {index} (checked {at})"),
            Role::Ok,
        ),
        Outcome::Diverged { index, differing } => (
            format!(
                "✖ {} diverged at index {index} (checked {at}) · opsdeck check",
                node_list(differing)
            ),
            Role::Critical,
        ),
        Outcome::Inconclusive { reason } => {
            (format!("… replicas not compared: {reason}"), Role::Dim)
        }
    };
    Some(Line::from(Span::styled(text, app.theme.style(role))))
}

pub fn draw(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let model = &app.model;
    let members = model.members();
    let watched_ids: Vec<u64> = model
        .nodes
        .iter()
        .filter_map(|n| n.status.as_ref().map(|s| s.id))
        .collect();
    let unwatched: Vec<_> = members
        .iter()
        .filter(|m| !watched_ids.contains(&m.id))
        .collect();
    let down: Vec<_> = model
        .nodes
        .iter()
        .filter(|n| matches!(n.link, Link::Down { .. }) && !model.removed(n))
        .collect();

    let rows_needed = (model.nodes.len() + unwatched.len()) as u16 + 1;
    let block = block(app, "Overview");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let mut verdict = vec![verdict_line(app)];
    verdict.extend(replicas_line(app));
    let firing = app.alerts.firing();
    if firing > 0 {
        let key = app
            .keymap
            .key_for("overview", Action::ShowPane(PaneKind::Alerts))
            .map(|k| format!(" ({k}: Alerts)"))
            .unwrap_or_default();
        verdict.push(Line::from(Span::styled(
            format!(
                "◉ {firing} alert{} firing{key}",
                if firing == 1 { "" } else { "s" }
            ),
            t.style(Role::Critical),
        )));
    }
    // The verdict lines, then a blank line before the table.
    let [verdict_area, table_area, notes_area] = Layout::vertical([
        Constraint::Length(verdict.len() as u16 + 1),
        Constraint::Length(rows_needed),
        Constraint::Min(0),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(verdict), verdict_area);

    // COMMIT only when there is room: at 80 columns it is nearly always APPLIED anyway.
    let wide = table_area.width >= 92;
    let addr_w = if wide { 24 } else { 17 };
    let keep = |cells: Vec<Cell<'static>>| -> Vec<Cell<'static>> {
        cells
            .into_iter()
            .enumerate()
            .filter(|(i, _)| wide || *i != 5)
            .map(|(_, c)| c)
            .collect()
    };
    let header = Row::new(keep(
        [
            "ID", "ADDRESS", "ROLE", "TERM", "LOG", "COMMIT", "APPLIED", "LAG", "HEALTH", "UPTIME",
        ]
        .map(Cell::from)
        .to_vec(),
    ))
    .style(t.style(Role::Header));
    let mut rows = Vec::new();
    for (i, view) in model.nodes.iter().enumerate() {
        let cells: Vec<Cell> = match (&view.link, &view.status) {
            (Link::Up, Some(s)) => {
                let voter = members
                    .iter()
                    .find(|m| m.id == s.id)
                    .is_none_or(|m| m.voter);
                let (role_text, role) = match s.role.as_str() {
                    "leader" => ("★ leader".to_string(), Role::Leader),
                    "candidate" => ("candidate".into(), Role::Candidate),
                    _ if !voter => ("learner".into(), Role::Learner),
                    other => (other.to_string(), Role::Follower),
                };
                let lag = model.lag(s);
                let storage_full = s.storage.as_ref().is_some_and(|st| st.full);
                let (health, hrole) = if s.raft_stopped.is_some() {
                    ("✖ raft stopped", Role::Critical)
                } else if storage_full {
                    ("✖ disk full", Role::Critical)
                } else if model.refused_snapshot(s.id).is_some() {
                    ("▲ no room", Role::Warn)
                } else if s.leader_id.is_none() {
                    ("no leader", Role::Critical)
                } else if lag.is_some_and(|l| l > LAG_WARN) {
                    ("lagging", Role::Warn)
                } else {
                    ("ok", Role::Ok)
                };
                vec![
                    Cell::from(s.id.to_string()),
                    Cell::from(cut(&view.endpoint, addr_w)),
                    Cell::from(Span::styled(role_text, t.style(role))),
                    Cell::from(s.term.to_string()),
                    Cell::from(opt(s.last_log_index)),
                    Cell::from(opt(s.committed)),
                    Cell::from(opt(s.applied)),
                    Cell::from(opt(lag)),
                    Cell::from(Span::styled(health, t.style(hrole))),
                    Cell::from(if s.uptime_ms > 0 {
                        duration_secs(s.uptime_ms / 1000)
                    } else {
                        "-".into()
                    }),
                ]
            }
            (Link::Down { since_ms, .. }, s) => vec![
                Cell::from(
                    s.as_ref()
                        .map(|s| s.id.to_string())
                        .unwrap_or_else(|| "?".into()),
                ),
                Cell::from(cut(&view.endpoint, addr_w)),
                if model.removed(view) {
                    Cell::from(Span::styled("removed", t.style(Role::Dim)))
                } else {
                    Cell::from(Span::styled("✖ DOWN", t.style(Role::Down)))
                },
                Cell::from("-"),
                Cell::from("-"),
                Cell::from("-"),
                Cell::from("-"),
                Cell::from("-"),
                Cell::from(Span::styled(
                    clock(*since_ms, app.utc_offset),
                    t.style(Role::Down),
                )),
                Cell::from("-"),
            ],
            _ => vec![
                Cell::from("?"),
                Cell::from(cut(&view.endpoint, addr_w)),
                Cell::from(Span::styled("…", t.style(Role::Dim))),
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(Span::styled("connecting", t.style(Role::Dim))),
                Cell::from(""),
            ],
        };
        // The selection only shows where keys act on it (not on the wall screen).
        let selected = i == app.overview_sel && app.war_room.is_none() && !app.read_only;
        rows.push(Row::new(keep(cells)).style(super::row_style(app, selected)));
    }
    for m in &unwatched {
        rows.push(
            Row::new(vec![
                Cell::from(m.id.to_string()),
                Cell::from(cut(&m.grpc, addr_w)),
                Cell::from(if m.voter { "voter" } else { "learner" }),
                Cell::from(Span::styled(
                    "member, not watched (not in --endpoints)",
                    t.style(Role::Dim),
                )),
            ])
            .style(t.style(Role::Text)),
        );
    }
    let mut widths = vec![
        Constraint::Length(3),
        Constraint::Length(addr_w as u16),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(6),
    ];
    if !wide {
        widths.remove(5);
    }
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        table_area,
    );

    let mut notes: Vec<Line> = Vec::new();
    for view in &down {
        if let Link::Down {
            since_ms, error, ..
        } = &view.link
        {
            let who = view
                .status
                .as_ref()
                .map(|s| format!("node {} ", s.id))
                .unwrap_or_default();
            notes.push(Line::from(vec![
                Span::styled("✖ ", t.style(Role::Down)),
                Span::styled(
                    format!(
                        "{who}{} down since {}: ",
                        view.endpoint,
                        clock(*since_ms, app.utc_offset)
                    ),
                    t.style(Role::Down).remove_modifier(Modifier::REVERSED),
                ),
                Span::styled(error.clone(), t.style(Role::Text)),
            ]));
        }
    }
    if let Some(leader) = model.leader() {
        let lagging: Vec<String> = leader
            .followers
            .iter()
            .filter(|f| f.lag > LAG_WARN)
            .map(|f| format!("node {} is {} entries behind", f.id, f.lag))
            .collect();
        if !lagging.is_empty() {
            notes.push(Line::from(Span::styled(
                format!("▲ {}", lagging.join("; ")),
                t.style(Role::Warn),
            )));
        }
        for f in leader
            .followers
            .iter()
            .filter(|f| !f.snapshot_refused.is_empty())
        {
            notes.push(Line::from(Span::styled(
                format!("▲ node {}: {}", f.id, f.snapshot_refused),
                t.style(Role::Warn),
            )));
        }
    }
    if notes.is_empty() {
        notes.push(Line::from(Span::styled(
            "★ marks the leader; LAG is entries behind the leader's log.",
            t.style(Role::Dim),
        )));
    }
    // Whatever room is left shows the newest timeline entries.
    let note_rows: u16 = notes
        .iter()
        .map(|l| (l.width() as u16).div_ceil(notes_area.width.max(1)).max(1))
        .sum();
    let [notes_area, events_area] =
        Layout::vertical([Constraint::Length(note_rows), Constraint::Min(0)]).areas(notes_area);
    f.render_widget(Paragraph::new(notes).wrap(Wrap { trim: false }), notes_area);
    if events_area.height >= 3 && !model.timeline.is_empty() {
        let room = events_area.height as usize - 2;
        let end = model.timeline.len();
        let mut lines = vec![
            Line::from(""),
            Line::from(Span::styled(
                match app
                    .keymap
                    .key_for("overview", Action::ShowPane(PaneKind::Timeline))
                {
                    Some(k) => format!("recent events ({k}: Timeline)"),
                    None => "recent events".to_string(),
                },
                t.style(Role::Header),
            )),
        ];
        lines.extend(super::timeline::entry_lines(
            app,
            end.saturating_sub(room),
            end,
        ));
        f.render_widget(Paragraph::new(lines), events_area);
    }
}

/// Why an action that starts processes is refused outside a dev cluster.
const NOT_DEV: &str = "opsdeck rebuilds nodes only in a dev cluster (`opsdeck dev`): elsewhere see `opsdeck rebuild-node --help` for the steps by hand";

/// Why the rolling defrag is refused outside a dev cluster, and the steps by hand.
const NOT_DEV_DEFRAG: &str = "opsdeck defragments nodes itself only in a dev cluster (`opsdeck dev`): elsewhere, one node at a time: `systemctl stop opsdeck-node; opsdeck defrag-data --data /var/lib/opsdeck; systemctl start opsdeck-node` (see `opsdeck defrag-data --help`)";

/// Selecting a node (`selected`, an index into the model's nodes), and the actions on it;
/// `dev`: the console runs on a dev cluster, where add-node can start a node;
/// `no_restart`: why nodes cannot be restarted here (None: they can).
pub fn handle(
    selected: &mut usize,
    model: &Model,
    dev: bool,
    no_restart: Option<&str>,
    action: Action,
) -> Option<Effect> {
    let effect = match action {
        Action::AddNode => {
            let ctx = &model.context;
            let question = if dev {
                format!("add node to {ctx}: enter starts a new local node, or type ID GRPC HTTP of a running one: ")
            } else {
                format!("add node to {ctx}: type ID GRPC_ADDR HTTP_ADDR of a running node: ")
            };
            Effect::Ask {
                question,
                text: String::new(),
                expect: None,
                then: Pending::AddNode,
            }
        }
        Action::RollingRestart => {
            if let Some(why) = no_restart {
                return Some(Effect::error(why));
            }
            let ctx = &model.context;
            Effect::Ask {
                question: format!(
                    "Rolling restart of {ctx} (one node at a time)? type {ctx} to confirm: "
                ),
                text: String::new(),
                expect: Some(ctx.clone()),
                then: Pending::ConfirmRollingRestart,
            }
        }
        Action::RollingDefrag => {
            if !dev {
                return Some(Effect::error(NOT_DEV_DEFRAG));
            }
            let ctx = &model.context;
            Effect::Ask {
                question: format!(
                    "Defrag every node of {ctx} (one at a time)? type {ctx} to confirm: "
                ),
                text: String::new(),
                expect: Some(ctx.clone()),
                then: Pending::ConfirmRollingDefrag,
            }
        }
        Action::RemoveNode | Action::TransferLeader | Action::RestartNode | Action::RebuildNode => {
            // The node selected, with its id once known.
            let view = model.nodes.get(*selected);
            let Some((id, endpoint)) =
                view.and_then(|v| v.status.as_ref().map(|s| (s.id, v.endpoint.clone())))
            else {
                return Some(Effect::error(
                    "select a node whose id is known (↑/↓ in the Overview)",
                ));
            };
            if action == Action::RebuildNode {
                if !dev {
                    return Some(Effect::error(NOT_DEV));
                }
                Effect::Ask {
                    question: format!(
                        "Rebuild node {id} of {} (its data is deleted)? type {id} to confirm: ",
                        model.context
                    ),
                    text: String::new(),
                    expect: Some(id.to_string()),
                    then: Pending::ConfirmRebuild { id },
                }
            } else if action == Action::RestartNode {
                if let Some(why) = no_restart {
                    return Some(Effect::error(why));
                }
                Effect::Ask {
                    question: format!(
                        "Restart node {id} ({endpoint}) of {}? type {id} to confirm: ",
                        model.context
                    ),
                    text: String::new(),
                    expect: Some(id.to_string()),
                    then: Pending::ConfirmRestart { id },
                }
            } else if action == Action::RemoveNode {
                Effect::Ask {
                    question: format!(
                        "Remove node {id} ({endpoint}) from {}? type {id} to confirm: ",
                        model.context
                    ),
                    text: String::new(),
                    expect: Some(id.to_string()),
                    then: Pending::ConfirmRemove { id },
                }
            } else {
                Effect::Ask {
                    question: format!(
                        "Move {}'s leadership to node {id} ({endpoint})? enter runs, esc cancels ",
                        model.context
                    ),
                    text: String::new(),
                    expect: None,
                    then: Pending::ConfirmTransfer { to: id },
                }
            }
        }
        other => {
            let len = model.nodes.len();
            return super::scroll(selected, len, len, other).then_some(Effect::Done);
        }
    };
    Some(effect)
}
