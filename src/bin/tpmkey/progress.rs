//! A spinner on stderr naming the slow TPM step under way ("creating an RSA-3072
//! key inside the TPM …"), with the time it has taken so far. Only when stderr is
//! a terminal: scripts and logs see nothing of it. The library marks the steps
//! (`tpmkey::progress`); the PKCS#11 module registers no observer, so it never
//! draws.

use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The running steps (innermost last) and the spinner drawn while there are any.
#[derive(Default)]
struct Spinner {
    state: Mutex<(Vec<String>, Option<ProgressBar>)>,
}

impl Spinner {
    fn state(&self) -> MutexGuard<'_, (Vec<String>, Option<ProgressBar>)> {
        // A panic elsewhere while the lock was held leaves nothing inconsistent here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl tpmkey::progress::Observer for Spinner {
    fn begin(&self, what: &str) {
        let mut state = self.state();
        let (steps, bar) = &mut *state;
        steps.push(format!("{what}…"));
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(steps.last().cloned().unwrap_or_default());
    }

    fn end(&self) {
        let mut state = self.state();
        let (steps, bar) = &mut *state;
        steps.pop();
        match steps.last() {
            Some(outer) => {
                if let Some(bar) = bar {
                    bar.set_message(outer.clone());
                }
            }
            None => {
                if let Some(bar) = bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// Shows slow TPM steps on stderr from now on, when stderr is a terminal.
pub fn show_on_terminal() {
    if std::io::stderr().is_terminal() {
        tpmkey::progress::set_observer(Box::<Spinner>::default());
    }
}
