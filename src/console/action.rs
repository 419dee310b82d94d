//! Every action the console can take, and the panes. Keys resolve to actions through the
//! keymap; `SPECS` names each action, says where it may be bound, and the help overlay lists it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Quit,
    Help,
    Command,
    NextPane,
    PrevPane,
    ShowPane(PaneKind),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    // Logs
    Search,
    SearchNext,
    SearchPrev,
    ToggleFollow,
    TogglePause,
    CycleLevel,
    CycleNode,
    SaveLogs,
    ClearFilters,
    // Alerts
    AckAlert,
    SilenceAlert,
    // Dialogs
    Submit,
    Cancel,
    /// A diagnostics bundle to a file (reads only: allowed read-only).
    DebugBundle,
    // Operations (change the cluster)
    Backup,
    Restore,
    Compact,
    RotateKey,
    AddNode,
    RemoveNode,
    TransferLeader,
    /// Maintenance mode: pause client writes on every node, or resume them.
    PauseResumeWrites,
    RestartNode,
    /// Delete the selected node's data and copy it back from the others (dev cluster).
    RebuildNode,
    /// Restart every node, one at a time, the leader last.
    RollingRestart,
    /// Compact, then the rolling restart with each node's database rewritten (dev cluster).
    RollingDefrag,
}

/// A pane; its name is its keymap context and `:pane` argument (drawn by `panes/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaneKind {
    Overview,
    Logs,
    Metrics,
    Disk,
    Gc,
    Timeline,
    Alerts,
    Quotas,
    Keys,
}

impl PaneKind {
    pub const ALL: &'static [PaneKind] = &[
        PaneKind::Overview,
        PaneKind::Logs,
        PaneKind::Metrics,
        PaneKind::Disk,
        PaneKind::Gc,
        PaneKind::Timeline,
        PaneKind::Alerts,
        PaneKind::Quotas,
        PaneKind::Keys,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PaneKind::Overview => "overview",
            PaneKind::Logs => "logs",
            PaneKind::Metrics => "metrics",
            PaneKind::Disk => "disk",
            PaneKind::Gc => "gc",
            PaneKind::Timeline => "timeline",
            PaneKind::Alerts => "alerts",
            PaneKind::Quotas => "quotas",
            PaneKind::Keys => "keys",
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            PaneKind::Overview => "Overview",
            PaneKind::Logs => "Logs",
            PaneKind::Metrics => "Metrics",
            PaneKind::Disk => "Disk",
            PaneKind::Gc => "GC",
            PaneKind::Timeline => "Timeline",
            PaneKind::Alerts => "Alerts",
            PaneKind::Quotas => "Quotas",
            PaneKind::Keys => "Keys",
        }
    }

    pub const fn action_name(self) -> &'static str {
        match self {
            PaneKind::Overview => "pane_overview",
            PaneKind::Logs => "pane_logs",
            PaneKind::Metrics => "pane_metrics",
            PaneKind::Disk => "pane_disk",
            PaneKind::Gc => "pane_gc",
            PaneKind::Timeline => "pane_timeline",
            PaneKind::Alerts => "pane_alerts",
            PaneKind::Quotas => "pane_quotas",
            PaneKind::Keys => "pane_keys",
        }
    }

    pub fn by_name(name: &str) -> Option<PaneKind> {
        PaneKind::ALL.iter().copied().find(|p| p.name() == name)
    }
}

/// Where an action may be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `[global]` and any pane.
    Anywhere,
    /// Only the named contexts.
    Only(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub action: Action,
    pub scope: Scope,
    pub desc: &'static str,
    /// Changes the cluster. Refused and hidden with `--read-only`.
    pub mutating: bool,
}

/// Where the scroll actions may be bound: the lists, the help overlay, and the dialog (an
/// operator command's output).
const LISTS: &[&str] = &[
    "overview", "logs", "timeline", "alerts", "quotas", "keys", "help", "dialog",
];

const fn spec(name: &'static str, action: Action, scope: Scope, desc: &'static str) -> Spec {
    Spec {
        name,
        action,
        scope,
        desc,
        mutating: false,
    }
}

/// An action that changes the cluster.
const fn mutating(name: &'static str, action: Action, scope: Scope, desc: &'static str) -> Spec {
    Spec {
        mutating: true,
        ..spec(name, action, scope, desc)
    }
}

const FIXED: &[Spec] = &[
    spec("quit", Action::Quit, Scope::Anywhere, "quit the console"),
    spec(
        "help",
        Action::Help,
        Scope::Anywhere,
        "show the keys of this pane",
    ),
    spec(
        "command",
        Action::Command,
        Scope::Anywhere,
        "open the command line",
    ),
    spec("next_pane", Action::NextPane, Scope::Anywhere, "next pane"),
    spec(
        "prev_pane",
        Action::PrevPane,
        Scope::Anywhere,
        "previous pane",
    ),
    spec("up", Action::Up, Scope::Only(LISTS), "scroll up"),
    spec("down", Action::Down, Scope::Only(LISTS), "scroll down"),
    spec("page_up", Action::PageUp, Scope::Only(LISTS), "page up"),
    spec(
        "page_down",
        Action::PageDown,
        Scope::Only(LISTS),
        "page down",
    ),
    spec("top", Action::Top, Scope::Only(LISTS), "go to the top"),
    spec(
        "bottom",
        Action::Bottom,
        Scope::Only(LISTS),
        "go to the bottom (follow)",
    ),
    spec(
        "search",
        Action::Search,
        Scope::Only(&["logs"]),
        "search the logs",
    ),
    spec(
        "search_next",
        Action::SearchNext,
        Scope::Only(&["logs"]),
        "next match",
    ),
    spec(
        "search_prev",
        Action::SearchPrev,
        Scope::Only(&["logs"]),
        "previous match",
    ),
    spec(
        "toggle_follow",
        Action::ToggleFollow,
        Scope::Only(&["logs"]),
        "follow new lines on/off",
    ),
    spec(
        "toggle_pause",
        Action::TogglePause,
        Scope::Only(&["logs"]),
        "pause/resume the view",
    ),
    spec(
        "cycle_level",
        Action::CycleLevel,
        Scope::Only(&["logs"]),
        "minimum level: all/debug/info/warn/error",
    ),
    spec(
        "cycle_node",
        Action::CycleNode,
        Scope::Only(&["logs", "metrics"]),
        "one node / all nodes",
    ),
    spec(
        "save_logs",
        Action::SaveLogs,
        Scope::Only(&["logs"]),
        "save the visible lines to a file",
    ),
    spec(
        "clear_filters",
        Action::ClearFilters,
        Scope::Only(&["logs"]),
        "clear node, level and search filters",
    ),
    spec(
        "ack_alert",
        Action::AckAlert,
        Scope::Only(&["alerts"]),
        "acknowledge the selected firing alert",
    ),
    spec(
        "silence_alert",
        Action::SilenceAlert,
        Scope::Only(&["alerts"]),
        "silence the selected alert for a while (:silence DURATION)",
    ),
    spec(
        "submit",
        Action::Submit,
        Scope::Only(&["input", "dialog"]),
        "run / search / answer; in a dialog: save the shown secret",
    ),
    spec(
        "cancel",
        Action::Cancel,
        Scope::Only(&["input", "help", "dialog"]),
        "close",
    ),
    spec(
        "debug_bundle",
        Action::DebugBundle,
        Scope::Anywhere,
        "write a redacted diagnostics bundle (.tar.gz) of every node and this console's alerts",
    ),
    mutating(
        "backup",
        Action::Backup,
        Scope::Anywhere,
        "stream a backup from the leader to a file",
    ),
    mutating(
        "restore",
        Action::Restore,
        Scope::Anywhere,
        "replace the cluster's data with a backup's",
    ),
    mutating(
        "compact",
        Action::Compact,
        Scope::Anywhere,
        "snapshot and purge the log on every node",
    ),
    mutating(
        "rotate_key",
        Action::RotateKey,
        Scope::Only(&["keys"]),
        "rotate the selected API key (new secret shown once)",
    ),
    mutating(
        "add_node",
        Action::AddNode,
        Scope::Only(&["overview"]),
        "add a node (dev: start one) as learner, promote it when caught up",
    ),
    mutating(
        "remove_node",
        Action::RemoveNode,
        Scope::Only(&["overview"]),
        "remove the selected node (leadership moves first)",
    ),
    mutating(
        "transfer_leader",
        Action::TransferLeader,
        Scope::Only(&["overview"]),
        "make the selected node the leader",
    ),
    mutating(
        "pause_resume_writes",
        Action::PauseResumeWrites,
        Scope::Anywhere,
        "maintenance mode: pause writes on every node (asks the reason), or resume them",
    ),
    mutating(
        "restart_node",
        Action::RestartNode,
        Scope::Only(&["overview"]),
        "restart the selected node (dev cluster) and wait until it has caught up",
    ),
    mutating(
        "rebuild_node",
        Action::RebuildNode,
        Scope::Only(&["overview"]),
        "rebuild the selected node (dev cluster): delete its data, catch it up by snapshot",
    ),
    mutating(
        "rolling_restart",
        Action::RollingRestart,
        Scope::Only(&["overview"]),
        "restart every node, one at a time, the leader last after a handover",
    ),
    mutating(
        "rolling_defrag",
        Action::RollingDefrag,
        Scope::Only(&["overview"]),
        "shrink every node's database (dev cluster): compact, then a rolling restart rewriting each",
    ),
];

/// Every action with its name: the fixed list, then one `pane_<name>` per pane. Built once, at
/// compile time.
pub static SPECS: [Spec; COUNT] = all_specs();

const COUNT: usize = FIXED.len() + PaneKind::ALL.len();

const fn all_specs() -> [Spec; COUNT] {
    let mut all = [FIXED[0]; COUNT];
    let mut i = 0;
    while i < FIXED.len() {
        all[i] = FIXED[i];
        i += 1;
    }
    let mut p = 0;
    while p < PaneKind::ALL.len() {
        let pane = PaneKind::ALL[p];
        all[FIXED.len() + p] = spec(
            pane.action_name(),
            Action::ShowPane(pane),
            Scope::Anywhere,
            pane.title(),
        );
        p += 1;
    }
    all
}

/// The entry of `action` in `SPECS`.
pub fn spec_of(action: Action) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.action == action)
}

impl Scope {
    pub fn allows(&self, context: &str) -> bool {
        match self {
            Scope::Anywhere => context == "global" || PaneKind::by_name(context).is_some(),
            Scope::Only(list) => list.contains(&context),
        }
    }
}

/// Whether `action` may run: mutating actions are refused in read-only mode.
pub fn permitted(spec: &Spec, read_only: bool) -> bool {
    !(spec.mutating && read_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_only_refuses_mutating_actions() {
        let all = &SPECS;
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        let mut s = *SPECS.iter().find(|s| s.name == "quit").unwrap();
        assert!(permitted(&s, true));
        s.mutating = true;
        assert!(!permitted(&s, true));
        assert!(permitted(&s, false));
    }
}
