//! A plugin's life on the leader, whatever its world: a thread of its own (plugin calls block
//! for up to their time limit), one run after another. A run that fails (trap, timeout, out of
//! memory, a refused proposal) marks the plugin failed with the reason and starts again after a
//! backoff (0.5 s doubling to 30 s); a run that ends cleanly is asked to go on or stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Plugins;
use super::error::RunError;

/// The longest a plugin thread sleeps between looks at its stop flag.
pub const IDLE: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How one run ended without an error.
pub enum Exit {
    /// Asked to stop, or the plugin is gone or no longer of this world.
    Stopped,
    /// Start again from the registry (a new version, or the mark moved).
    Restart,
}

/// A running plugin thread; dropping it does not stop it, `stop` does.
pub struct PluginThread {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl PluginThread {
    /// Runs `run_once` (given the stop flag) again and again on a thread named for the plugin,
    /// until it stops or is stopped.
    pub fn spawn(
        name: String,
        plugins: Arc<Plugins>,
        mut run_once: impl FnMut(&AtomicBool) -> Result<Exit, RunError> + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("plugin-{name}"))
            .spawn(move || {
                let mut backoff = FIRST_BACKOFF;
                while !flag.load(Ordering::Relaxed) {
                    match run_once(&flag) {
                        Ok(Exit::Stopped) => break,
                        Ok(Exit::Restart) => backoff = FIRST_BACKOFF,
                        Err(reason) => {
                            if flag.load(Ordering::Relaxed) {
                                break;
                            }
                            plugins.statuses.failed(&name, reason.to_string());
                            plugins.note(
                                &name,
                                "error",
                                format!("failed: {reason}; restarting in {backoff:?}"),
                            );
                            sleep_unless_stopped(backoff, &flag);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            plugins.statuses.restarted(&name);
                        }
                    }
                }
                plugins.note(&name, "info", "stopped on this member".into());
            })?;
        Ok(Self { stop, thread })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread to end (after `stop`: at most a plugin call's time limit).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Sleeps for `duration`, or less if `stop` is set meanwhile.
pub fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep(IDLE.min(until - now));
    }
}
