//! The listeners' activity ([`crate::activity`]) around the daemon's run: the saved history
//! read back at start, each listener marked up while its accept loop runs, the free disk
//! space sampled and the history saved every minute, and saved once more after the last
//! connection at shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::activity::{History, Listener, history};
use crate::log::DiskGuard;
use crate::telemetry::Metrics;

/// How often the disk is sampled and the history saved.
const EVERY: Duration = Duration::from_secs(60);

/// Reads the history saved under `state_dir` into `metrics`; a missing file starts an empty
/// one, an unreadable one too, with a warning.
pub(super) fn load(state_dir: &Path, metrics: &Metrics) {
    match History::load(state_dir) {
        Ok(Some(saved)) => metrics.activity.restore(saved),
        Ok(None) => tracing::info!("no saved listener activity: the status page's history starts empty"),
        Err(e) => {
            tracing::warn!(error = %e, "saved listener activity unreadable: the status page's history starts empty")
        }
    }
}

/// Saves the history now (on the blocking pool); a failure is a warning (a day of plots is
/// all that is at stake).
pub(super) async fn save(state_dir: PathBuf, metrics: Arc<Metrics>) {
    let bytes = metrics.activity.encode(jiff::Timestamp::now());
    let saved = tokio::task::spawn_blocking(move || history::save(&state_dir, &bytes)).await;
    if let Ok(Err(e)) = saved {
        tracing::warn!(error = %e, "listener activity not saved");
    }
}

/// Every minute until `stop`: the free disk space into the history, the history to its file.
pub(super) async fn sample(state_dir: PathBuf, metrics: Arc<Metrics>, disk: DiskGuard, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let disk = disk.clone();
        if let Ok(Ok(space)) = tokio::task::spawn_blocking(move || disk.space()).await {
            metrics.activity.disk_free_at(jiff::Timestamp::now(), space.free);
        }
        save(state_dir.clone(), metrics.clone()).await;
    }
}

/// Where `listener` listens, as the page shows it.
pub(super) fn address(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(|e| format!("unknown ({e})"), |a| a.to_string())
}

/// Runs `serve`, the accept loop of `which`, with `which` marked up at `address` meanwhile.
pub(super) async fn accepting(
    metrics: Arc<Metrics>,
    which: Listener,
    address: String,
    serve: impl Future<Output = ()>,
) {
    metrics.activity.opened(which, address);
    serve.await;
    metrics.activity.closed(which);
}
