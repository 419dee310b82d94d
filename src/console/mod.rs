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
//! Inside the console imports run one way: `action`, `model`, `theme`, `config`, then
//! `keymap`, `watch`, `ops`, then `state` (view state), `effect`, `app`, `panes`, `ui`;
//! none imports a later one. This file, their parent, ties them together: a key goes to
//! `App::on_event`, its action to `App::run` or, when it is the shown pane's, to
//! `panes::handle`, whose `Effect` `App::apply` carries out (`run_action`).

pub mod action;
pub mod app;
pub mod config;
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
use crate::client::ClusterClient;
use action::Action;
use app::{App, Reaction, WarRoom};
use config::Config;
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
}

/// Applies the config file to the flags (flags win) and loads keymap and theme.
pub fn resolve(args: &mut ConsoleArgs) -> Result<Settings> {
    let config = match (&args.config, config::default_path()) {
        (Some(path), _) => Config::load(path, true)?,
        (None, Some(path)) => Config::load(&path, false)?,
        (None, None) => Config::default(),
    };
    let cluster = &mut args.cluster;
    if cluster.endpoints.is_empty() && cluster.cluster.is_none() {
        if let Some(eps) = &config.endpoints {
            cluster.endpoints = eps.clone();
        }
    }
    if cluster.key_file.is_none() {
        cluster.key_file = config.key_file.clone();
    }
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
    Ok(Settings {
        keymap,
        theme,
        depth,
        refresh: Duration::from_millis(refresh_ms),
        read_only: args.read_only || args.war_room || config.read_only.unwrap_or(false),
        war_room: args.war_room.then_some(cycle),
        rules,
        dev_dir: args.cluster.target().dev_dir(),
        receivers: crate::alerts::notify::config::merge(&config.notify, &args.notify.receivers())
            .map_err(|e| eyre!(e))?,
    })
}

pub async fn run(mut args: ConsoleArgs) -> Result<()> {
    let settings = resolve(&mut args)?;
    let client = args.cluster.target().connect()?;
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

/// Opens the console on `client`'s endpoints until the user quits.
pub async fn open(client: ClusterClient, settings: Settings) -> Result<()> {
    require_terminal("for scripts use `opsdeck status --json`")?;
    let nodes = client.node_clients();
    let endpoints: Vec<String> = nodes.iter().map(|(e, _)| e.clone()).collect();
    let mut app = App::new(
        Model::new(&endpoints),
        settings.keymap,
        settings.theme,
        settings.depth,
    );
    app.read_only = settings.read_only;
    app.utc_offset = crate::format::local_utc_offset();
    app.war_room = settings.war_room.map(|cycle_secs| WarRoom { cycle_secs });
    app.alerts = state::AlertsView::new(settings.rules);
    if !settings.receivers.is_empty() {
        let source = crate::alerts::notify::Source {
            cluster: None,
            generator: format!(
                "opsdeck://{}/console",
                endpoints.first().map_or("localhost", String::as_str)
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

    let (tx, rx) = mpsc::channel(4096);
    let tasks: Vec<_> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, (_, rpc))| watch::spawn(i, rpc, settings.refresh, tx.clone()))
        .collect();
    let (keys_wanted, wanted) = flag::channel(false);
    let client = Arc::new(client);
    let keys_task = watch::spawn_keys(client.clone(), wanted, tx.clone());
    let (op_tx, op_rx) = mpsc::unbounded_channel();
    app.ops = Some(ops::Ops {
        client,
        tx: op_tx,
        dev_dir: settings.dev_dir,
        updates: tx.clone(),
        refresh: settings.refresh,
    });
    drop(tx);

    let mut terminal = ratatui::try_init().wrap_err("cannot set up the terminal")?;
    // ratatui's hook leaves the alternate screen and raw mode, then runs color-eyre's report;
    // the cursor we hid must come back too, on terminals that do not reset it themselves.
    let restore_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::cursor::Show);
        restore_hook(info);
    }));
    let result = event_loop(&mut terminal, &mut app, rx, op_rx, keys_wanted).await;
    let _ = terminal.show_cursor();
    ratatui::restore();
    for t in tasks {
        t.abort();
    }
    keys_task.abort();
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
    mut rx: mpsc::Receiver<model::Update>,
    mut op_rx: mpsc::UnboundedReceiver<ops::OpEvent>,
    keys_wanted: flag::Sender<bool>,
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
            n = rx.recv_many(&mut batch, BATCH) => {
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
        keys_wanted.send_if_modified(|w| {
            let shown = app.pane == action::PaneKind::Keys;
            std::mem::replace(w, shown) != shown
        });
    }
}
#[cfg(test)]
mod tests;
