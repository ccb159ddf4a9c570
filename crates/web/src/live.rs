//! Live updates: one PostgreSQL LISTEN connection per web process, fanned out to the open SSE
//! streams through a broadcast channel.
//!
//! Notifications sent while the connection is down are lost, so after every (re)connect the hub
//! broadcasts [`HubEvent::Resync`] and each stream re-reads its case; streams also re-read on a
//! slow timer, so a missed signal delays an update but never loses it.

use std::time::Duration;

use mole_storage::{CaseSignal, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

/// What the hub tells the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubEvent {
    /// A case changed state.
    Changed(Uuid),
    /// Signals may have been missed: every stream should re-read its case.
    Resync,
}

/// The fan-out point; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<HubEvent>,
}

impl Hub {
    /// A hub with room for `capacity` undelivered events per slow stream (a stream that lags
    /// further re-reads its case instead).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    /// A receiver of everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }

    /// Publishes an event (no-op when nobody listens).
    pub fn publish(&self, event: HubEvent) {
        let _ = self.tx.send(event);
    }

    /// Listens to the database until `shutdown`, reconnecting with backoff.
    pub async fn run_listener(self, store: Store, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = store.listener() => l,
            };
            let mut listener = match listener {
                Ok(l) => {
                    info!("listening for case events");
                    backoff = Duration::from_millis(250);
                    l
                }
                Err(e) => {
                    warn!(error = %e, ?backoff, "cannot LISTEN for case events; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            // Whatever happened while we were not listening, streams must look again.
            self.publish(HubEvent::Resync);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(notification)) => match CaseSignal::parse(notification.payload()) {
                        Some(signal) => {
                            debug!(case_id = %signal.case_id, kind = %signal.kind, "case event");
                            self.publish(HubEvent::Changed(signal.case_id));
                        }
                        None => warn!(payload = notification.payload(), "unreadable case event"),
                    },
                    Ok(None) => {
                        // Reconnect explicitly, so the Resync goes out once we listen again.
                        warn!("LISTEN connection lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, "LISTEN failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
