//! A spinner on stderr naming the slow TPM step under way ("creating an RSA-3072
//! key in the TPM …"), with the seconds it has taken so far, redrawn in place and
//! erased when the step ends. Only when stderr is a terminal: scripts and logs see
//! nothing of it. The library marks the steps (`tpmkey::progress`); the PKCS#11
//! module registers no observer, so it never draws.
//!
//! Plain std (a thread, `\r` and `ESC[2K`) rather than indicatif, which does the
//! same and more but costs 98 KB more in the static binary (README, "Progress on
//! slow TPM work", has the measurements).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frames of the spinner (ASCII: any terminal font has them).
const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
/// Redraw period.
const TICK: Duration = Duration::from_millis(120);
/// The line is cut there so that it never wraps on an 80-column terminal (a wrapped
/// line could not be erased with `\r`).
const MAX_COLUMNS: usize = 79;

/// What the drawing thread shows: the innermost step's name.
type Message = Arc<Mutex<String>>;

#[derive(Default)]
struct State {
    /// Running steps, innermost last.
    steps: Vec<String>,
    /// The drawing thread and its stop flag, while any step runs.
    drawing: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
    message: Message,
}

#[derive(Default)]
struct Spinner {
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while the lock was held leaves nothing inconsistent here.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Draws one frame over the current line; a failed write (terminal gone) is ignored.
fn draw(frame: usize, message: &str, started: Instant) {
    let line = format!(
        "{} {message} {}s",
        FRAMES[frame % FRAMES.len()],
        started.elapsed().as_secs()
    );
    let line: String = line.chars().take(MAX_COLUMNS).collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

fn erase() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

impl tpmkey::progress::Observer for Spinner {
    fn begin(&self, what: &str) {
        let mut state = lock(&self.state);
        state.steps.push(format!("{what}…"));
        let current = state.steps.last().cloned().unwrap_or_default();
        *lock(&state.message) = current.clone();
        if state.drawing.is_none() {
            let started = Instant::now();
            // The first frame now, so that even a short step is seen.
            draw(0, &current, started);
            let stop = Arc::new(AtomicBool::new(false));
            let (message, stopped) = (state.message.clone(), stop.clone());
            let spawned = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    let mut frame = 1;
                    loop {
                        std::thread::sleep(TICK);
                        if stopped.load(Ordering::Acquire) {
                            break;
                        }
                        let text = lock(&message).clone();
                        draw(frame, &text, started);
                        frame += 1;
                    }
                });
            // No thread, no animation: the first frame stays until the step ends.
            if let Ok(handle) = spawned {
                state.drawing = Some((handle, stop));
            }
        }
    }

    fn end(&self) {
        let mut state = lock(&self.state);
        state.steps.pop();
        if let Some(outer) = state.steps.last().cloned() {
            *lock(&state.message) = outer;
            return;
        }
        if let Some((handle, stop)) = state.drawing.take() {
            stop.store(true, Ordering::Release);
            let _ = handle.join();
        }
        erase();
    }
}

/// Shows slow TPM steps on stderr from now on, when stderr is a terminal.
pub fn show_on_terminal() {
    if std::io::stderr().is_terminal() {
        tpmkey::progress::set_observer(Box::<Spinner>::default());
    }
}
