//! The operations console: a ratatui terminal UI over a live cluster.
//!
//! One loop waits on three things: terminal input (crossterm's event stream), updates from
//! one watch task per node (and the key list poll), and timers (the frame limit, the
//! war-room rotation, and the alert rules' evaluation every second). It draws only when
//! something changed and at most every 100 ms, and then writes only the cells that differ
//! from the screen, so an idle console costs nearly no CPU and no bytes. The terminal
//! is restored on every way out: normal quit, error, signal, and panic (ratatui's hook
//! restores it before color-eyre prints the report).
//!
//! Inside the console imports run one way: `action`, `model`, `theme`, then
//! `keymap`, `watch`, `ops`, then `state` (view state), `effect`, `app`, `panes`, `ui`;
//! none imports a later one. This file, their parent, ties them together: a key goes to
//! `App::on_event`, its action to `App::run` or, when it is the shown pane's, to
//! `panes::handle`, whose `Effect` `App::apply` carries out (`run_action`).

pub mod action;
pub mod app;
pub mod effect;
pub mod keymap;
pub mod model;
pub mod ops;
pub mod panes;
pub mod state;
pub mod theme;
pub mod ui;
pub mod watch;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result, WrapErr};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::buffer::Buffer;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch as flag};

use crate::alerts::Rules;
use crate::cli::ConsoleArgs;
use crate::client::{ClusterClient, Target};
use crate::config::Config;
use action::Action;
use app::{App, Reaction, WarRoom};
use keymap::Keymap;
use model::Model;
use theme::{ColorDepth, Theme};

/// At most this often a frame is drawn (~10 fps).
const FRAME: Duration = Duration::from_millis(100);
/// Updates applied per wake-up before drawing, so a flood of log lines cannot starve input.
const BATCH: usize = 1024;
/// How often the alert rules are evaluated against the latest frames.
const ALERT_TICK: Duration = Duration::from_secs(1);

/// Everything the console needs, resolved from flags and the config file before the terminal
/// is touched, so a bad file is reported on a normal screen.
pub struct Settings {
    pub keymap: Keymap,
    pub theme: Theme,
    pub depth: ColorDepth,
    pub refresh: Duration,
    pub read_only: bool,
    pub war_room: Option<u64>,
    pub rules: Rules,
    /// A dev cluster's directory (add-node can start nodes there).
    pub dev_dir: Option<std::path::PathBuf>,
    /// Where alerts are sent: the config's `[[notify]]`, then the flags'.
    pub receivers: Vec<crate::alerts::notify::Receiver>,
    /// The cluster, as the flags and the config name it (its `read_only` is added to the
    /// one above, which is what the flags force).
    pub target: Target,
    /// The config file as read, for `:ctx NAME`.
    pub config: Config,
}

/// Applies the config file to the flags (flags win) and loads keymap and theme.
pub fn resolve(args: &ConsoleArgs) -> Result<Settings> {
    let config = args.cluster.config.load()?;
    let target = args.cluster.target_in(&config)?;
    let depth = ColorDepth::detect();
    let theme_name = match (&args.theme, &config.theme) {
        (Some(t), _) => t.clone(),
        (None, _) if args.war_room => "high-contrast".into(),
        (None, Some(t)) => t.clone(),
        (None, None) => "dark".into(),
    };
    let keymap = Keymap::load(
        args.keymap
            .as_deref()
            .or(config.keymap.as_deref())
            .unwrap_or("default"),
    )?;
    // An operator command's key must not take a key the Overview already has: refused
    // here, before the terminal is touched.
    let (commands, _) = config.commands_of_context(target.context.as_deref());
    keymap
        .check_command_keys(&commands)
        .map_err(|e| eyre!("{e}\nthe console did not start"))?;
    let theme = Theme::load(&theme_name, depth)?;
    let rules = match args.rules.as_ref().or(config.rules.as_ref()) {
        Some(path) => Rules::load(path)?,
        None => Rules::defaults(),
    };
    let refresh_ms = args
        .refresh_ms
        .or(config.refresh_ms.as_ref().map(|s| *s.get_ref()))
        .unwrap_or(1000);
    if !(100..=60_000).contains(&refresh_ms) {
        return Err(eyre!(
            "--refresh-ms {refresh_ms} is out of range: use 100 to 60000"
        ));
    }
    let cycle = args
        .cycle_secs
        .or(config.war_room_cycle_secs.as_ref().map(|s| *s.get_ref()))
        .unwrap_or(10)
        .clamp(2, 3600);
    let receivers = crate::alerts::notify::config::merge(&config.notify, &args.notify.receivers())
        .map_err(|e| eyre!(e))?;
    Ok(Settings {
        keymap,
        theme,
        depth,
        refresh: Duration::from_millis(refresh_ms),
        read_only: args.read_only || args.war_room,
        war_room: args.war_room.then_some(cycle),
        rules,
        dev_dir: target.dev_dir(),
        receivers,
        target,
        config,
    })
}

pub async fn run(args: ConsoleArgs) -> Result<()> {
    let settings = resolve(&args)?;
    let client = settings.target.connect()?;
    open(client, settings).await
}

/// Fails unless stdin and stdout are a terminal; `instead` says what to do then.
pub fn require_terminal(instead: &str) -> Result<()> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(eyre!(
            "the console needs a terminal on stdin and stdout; {instead}"
        ))
    }
}

/// The watches of one cluster: a task per node and the key list poll, and the channel
/// they send on. Dropped (tasks aborted) when the console switches cluster or ends.
struct Watching {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    rx: mpsc::Receiver<model::Update>,
    keys_wanted: flag::Sender<bool>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts watching `client`'s nodes for `app` (whose model must list them in this order)
/// and points the app's operations at it.
fn watch_cluster(
    app: &mut App,
    client: ClusterClient,
    dev_dir: Option<std::path::PathBuf>,
    refresh: Duration,
    op_tx: mpsc::UnboundedSender<ops::OpEvent>,
) -> Watching {
    let (tx, rx) = mpsc::channel(4096);
    let mut tasks: Vec<_> = client
        .node_clients()
        .into_iter()
        .enumerate()
        .map(|(i, (_, rpc))| watch::spawn(i, rpc, refresh, tx.clone()))
        .collect();
    let (keys_wanted, wanted) = flag::channel(app.pane == action::PaneKind::Keys);
    let client = Arc::new(client);
    tasks.push(watch::spawn_keys(client.clone(), wanted, tx.clone()));
    app.ops = Some(ops::Ops {
        client,
        tx: op_tx,
        dev_dir,
        updates: tx,
        refresh,
    });
    Watching {
        tasks,
        rx,
        keys_wanted,
    }
}

fn endpoints_of(client: &ClusterClient) -> Vec<String> {
    client.node_clients().into_iter().map(|(e, _)| e).collect()
}

/// `:ctx NAME` carried out: the old watches end, the model starts over, the new cluster's
/// nodes are watched. A target that cannot be reached is reported and the old one stays.
fn switch_cluster(
    app: &mut App,
    watching: &mut Watching,
    target: Target,
    refresh: Duration,
    op_tx: &mpsc::UnboundedSender<ops::OpEvent>,
) {
    let client = match target.connect() {
        Ok(c) => c,
        Err(e) => {
            app.message(&format!("cannot switch to {}: {e:#}", target.label()), true);
            return;
        }
    };
    let dev_dir = target.dev_dir();
    let label = target.label();
    app.reset_for(target, &endpoints_of(&client));
    *watching = watch_cluster(app, client, dev_dir, refresh, op_tx.clone());
    let n = app.model.nodes.len();
    app.message(&format!("switched to {label}: watching {n} nodes"), false);
}

/// Opens the console on `client`'s endpoints until the user quits.
pub async fn open(client: ClusterClient, settings: Settings) -> Result<()> {
    require_terminal("for scripts use `opsdeck status --json`")?;
    let mut app = App::new(
        Model::new(&endpoints_of(&client)),
        settings.keymap,
        settings.theme,
        settings.depth,
    );
    app.model.context = settings.target.label();
    app.forced_read_only = settings.read_only;
    app.read_only = settings.read_only || settings.target.read_only;
    app.target = settings.target;
    app.config = settings.config;
    app.utc_offset = crate::format::local_utc_offset();
    app.war_room = settings.war_room.map(|cycle_secs| WarRoom { cycle_secs });
    app.alerts = state::AlertsView::new(settings.rules);
    if !settings.receivers.is_empty() {
        let source = crate::alerts::notify::Source {
            cluster: None,
            generator: format!(
                "opsdeck://{}/console",
                endpoints_of(&client)
                    .first()
                    .map_or("localhost", String::as_str)
            ),
        };
        let notifier = crate::alerts::notify::Notifier::start(settings.receivers, source)
            .map_err(|e| eyre!(e))?;
        app.alerts.deliveries = notifier.deliveries();
        app.notifier = Some(notifier);
    }
    app.stall_ms = watch::stall(settings.refresh).as_millis() as i64;
    if app.war_room.is_some() {
        app.pane = action::PaneKind::Logs;
    }

    let (op_tx, op_rx) = mpsc::unbounded_channel();
    let watching = watch_cluster(
        &mut app,
        client,
        settings.dev_dir,
        settings.refresh,
        op_tx.clone(),
    );
    let refresh = settings.refresh;

    let mut terminal = ratatui::try_init().wrap_err("cannot set up the terminal")?;
    // ratatui's hook leaves the alternate screen and raw mode, then runs color-eyre's report;
    // the cursor we hid must come back too, on terminals that do not reset it themselves.
    let restore_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
        restore_hook(info);
    }));
    let result = event_loop(&mut terminal, &mut app, watching, op_rx, (refresh, op_tx)).await;
    let _ = terminal.show_cursor();
    ratatui::restore();
    result
}

/// A terminal event through the app and the shown pane; true if the screen must be redrawn.
pub fn on_event(app: &mut App, event: Event) -> bool {
    match app.on_event(event) {
        Reaction::Ignored => false,
        Reaction::Redraw => true,
        Reaction::Run(action) => {
            run_action(app, action);
            true
        }
    }
}

/// Runs an action: the app runs its own; the shown pane's goes to `panes::handle`, and the
/// app applies the effect that comes back.
pub fn run_action(app: &mut App, action: Action) {
    if let Some(action) = app.run(action) {
        let effect = panes::handle(app, action);
        app.apply(effect);
    }
}

/// Draws the frame, then writes only the cells that changed; nothing at all when the frame
/// equals what is on screen (not even cursor or colour resets).
fn draw_if_changed(terminal: &mut DefaultTerminal, app: &App, shown: &mut Buffer) -> Result<()> {
    terminal.autoresize()?;
    let mut frame = terminal.get_frame();
    ui::draw(app, &mut frame);
    let current = terminal.current_buffer_mut();
    if current == shown {
        current.reset();
        return Ok(());
    }
    *shown = current.clone();
    terminal.flush()?;
    terminal.swap_buffers();
    ratatui::backend::Backend::flush(terminal.backend_mut())?;
    Ok(())
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    mut watching: Watching,
    mut op_rx: mpsc::UnboundedReceiver<ops::OpEvent>,
    (refresh, op_tx): (Duration, mpsc::UnboundedSender<ops::OpEvent>),
) -> Result<()> {
    terminal.hide_cursor()?;
    terminal.clear()?;
    let mut shown = Buffer::default();
    let mut input = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let cycle = app
        .war_room
        .as_ref()
        .map(|w| Duration::from_secs(w.cycle_secs));
    let mut next_cycle = cycle.map(|c| tokio::time::Instant::now() + c);
    let mut alert_tick = tokio::time::interval(ALERT_TICK);
    alert_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            draw_if_changed(terminal, app, &mut shown)?;
            last_draw = Instant::now();
            dirty = false;
        }
        let frame_due = async {
            if dirty {
                tokio::time::sleep(FRAME.saturating_sub(last_draw.elapsed())).await
            } else {
                std::future::pending().await
            }
        };
        let cycle_due = async {
            match next_cycle {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = input.next() => match event {
                Some(Ok(event)) => dirty |= on_event(app, event),
                Some(Err(e)) => return Err(eyre!("reading the terminal failed: {e}")),
                None => return Ok(()),
            },
            n = watching.rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return Err(eyre!("every node watcher stopped"));
                }
                for update in batch.drain(..) {
                    dirty |= app.model.apply(update);
                }
            }
            Some(event) = op_rx.recv() => {
                app.on_op_event(event);
                dirty = true;
            }
            _ = frame_due => {}
            _ = cycle_due => {
                app.cycle_war_room();
                next_cycle = cycle.map(|c| tokio::time::Instant::now() + c);
                dirty = true;
            }
            _ = alert_tick.tick() => {
                app.tick_alerts(crate::format::unix_ms());
                dirty = true;
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sighup.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
        if app.quit {
            return Ok(());
        }
        if let Some(target) = app.switch_to.take() {
            switch_cluster(app, &mut watching, target, refresh, &op_tx);
            dirty = true;
        }
        watching.keys_wanted.send_if_modified(|w| {
            let shown = app.pane == action::PaneKind::Keys;
            std::mem::replace(w, shown) != shown
        });
    }
}
#[cfg(test)]
mod tests;
