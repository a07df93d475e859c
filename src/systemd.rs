//! systemd integration: `READY=1` once listening, `STOPPING=1` on shutdown, and watchdog
//! pings while the log writer is alive (a failed writer stops the pings, so systemd
//! restarts a daemon that somehow did not exit). Everything is a no-op outside systemd.

use std::sync::Arc;

use crate::log::WriterState;

pub fn ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval until the writer fails.
pub async fn watchdog(writer: Arc<WriterState>) {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = writer.failed.cancelled() => return,
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}
