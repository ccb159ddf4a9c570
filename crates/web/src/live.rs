//! Live updates: one watch per case per web process, fanned out to that case's open streams.
//!
//! One PostgreSQL LISTEN connection per process hears every state change ([`Live::run_listener`])
//! and pokes the watch of that case, if any stream follows it. The watch (one task) reads the case
//! once (one statement, [`mole_storage::Store::case_state`]), renders what the page shows once,
//! and publishes the result on a `tokio::sync::watch` channel that every stream of the case reads:
//! a change costs one database read whether one or a thousand pages follow the case. Pokes that
//! arrive during a read coalesce into one more read. The watch ends when its last stream goes or
//! the case reaches a final state.
//!
//! Notifications sent while the LISTEN connection is down are lost, so after every (re)connect
//! every watch reads again; each watch also re-reads on a slow timer (`MOLE_SSE_RESYNC_SECS`), so
//! a missed signal delays an update but never loses it. Reads of all watches together take at
//! most [`Live::new`]'s `max_reads` pool connections, so the pool stays free for uploads even when
//! a thousand watches read at once after a reconnect.
//!
//! A stream usually opens on a case just read (its access check, [`Live::follow_from`]): a new
//! watch starts from that state instead of reading it again, unless a change may have been missed
//! in between. The listener remembers the latest event it heard per case (the [`HEARD_CASES`]
//! cases with the latest events), and since when it has heard everything: a state is fresh when no event
//! of its case newer than it was heard, and none could have been missed (events of one case are
//! committed in id order, since each locks the case's row).
//!
//! Open streams are capped (`MOLE_MAX_STREAMS`): beyond the cap a stream is refused with 429 and
//! the page polls instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mole_storage::{CaseSignal, CaseState, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};
use uuid::Uuid;

use crate::i18n::Lang;

/// What a case's open streams send: its state, rendered once per language for all of them (on
/// first use: a language no stream of the case speaks is never rendered).
pub struct Snapshot {
    /// The state's version (the id of the case's latest state-changing event): the SSE event id.
    pub version: i64,
    /// Whether the state is final (done, failed, deleted): streams end after sending it.
    pub terminal: bool,
    /// The SSE `data` per language of [`Lang::ALL`], once rendered.
    data: [OnceLock<String>; Lang::ALL.len()],
    /// Renders the SSE `data` (the case JSON with the page's panel) in a language.
    render: Box<dyn Fn(Lang) -> String + Send + Sync>,
}

impl Snapshot {
    /// A state's snapshot; `render` makes its SSE `data` in a language when a stream first asks.
    pub fn new(
        version: i64,
        terminal: bool,
        render: impl Fn(Lang) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            version,
            terminal,
            data: Default::default(),
            render: Box::new(render),
        }
    }

    /// The SSE `data` in `lang`, rendered on the first ask of a stream in that language.
    pub fn data_in(&self, lang: Lang) -> &str {
        self.data[lang.index()].get_or_init(|| (self.render)(lang))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

/// Turns a case's state into what its streams send.
pub type Render = Arc<dyn Fn(&CaseState) -> Snapshot + Send + Sync>;

/// The watches of this process; cheap to clone.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

/// Cases whose latest heard event the listener remembers.
pub const HEARD_CASES: usize = 4096;

struct Inner {
    store: Store,
    render: Render,
    watches: Mutex<Watches>,
    /// Open streams (the cap).
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// Database reads of all watches at once.
    reads: Semaphore,
    resync: Duration,
    shutdown: CancellationToken,
    /// Database reads made by watches so far.
    read_count: AtomicU64,
}

struct Watch {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    poke: Notify,
}

/// The watches, and what the listener heard (one lock: a watch registered after a state was read
/// either sees a signal recorded before, or is poked by one heard after).
struct Watches {
    by_case: HashMap<Uuid, Arc<Watch>>,
    /// The latest state-changing event heard per case (at most [`HEARD_CASES`] cases).
    heard: HashMap<Uuid, i64>,
    /// The same entries ordered by event id, to forget the oldest first.
    heard_by_event: BTreeSet<(i64, Uuid)>,
    /// Events with ids up to this one may have gone unheard (forgotten, or sent while not
    /// listening); `i64::MAX` until the listener listens.
    unheard_up_to: i64,
}

impl Watches {
    fn new() -> Self {
        Self {
            by_case: HashMap::new(),
            heard: HashMap::new(),
            heard_by_event: BTreeSet::new(),
            unheard_up_to: i64::MAX,
        }
    }

    fn record(&mut self, case_id: Uuid, event_id: i64) {
        if let Some(&latest) = self.heard.get(&case_id) {
            if latest >= event_id {
                return;
            }
            self.heard_by_event.remove(&(latest, case_id));
        }
        self.heard.insert(case_id, event_id);
        self.heard_by_event.insert((event_id, case_id));
        while self.heard.len() > HEARD_CASES {
            let Some((id, case)) = self.heard_by_event.pop_first() else {
                break;
            };
            self.heard.remove(&case);
            self.unheard_up_to = self.unheard_up_to.max(id);
        }
    }

    /// Whether a case's state of `version` cannot have missed a change.
    fn is_fresh(&self, case_id: Uuid, version: i64) -> bool {
        self.unheard_up_to <= version && self.heard.get(&case_id).is_none_or(|&id| id <= version)
    }
}

/// A stream's place under the cap, and its share of the `mole_sse_streams` gauge; released when
/// the stream ends (the client left, the case finished, or the server stops).
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        metrics::gauge!("mole_sse_streams").decrement(1.0);
    }
}

impl Live {
    /// Watches with at most `max_streams` open streams, at most `max_reads` database reads at
    /// once, re-reading every `resync`, until `shutdown`.
    pub fn new(
        store: Store,
        render: Render,
        max_streams: usize,
        max_reads: usize,
        resync: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                render,
                watches: Mutex::new(Watches::new()),
                streams: Arc::new(Semaphore::new(max_streams)),
                max_streams,
                reads: Semaphore::new(max_reads.max(1)),
                resync,
                shutdown,
                read_count: AtomicU64::new(0),
            }),
        }
    }

    /// A place for one more stream, or `None` at the cap.
    pub fn open_stream(&self) -> Option<StreamSlot> {
        let permit = self.inner.streams.clone().try_acquire_owned().ok()?;
        metrics::gauge!("mole_sse_streams").increment(1.0);
        Some(StreamSlot { _permit: permit })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.max_streams - self.inner.streams.available_permits()
    }

    /// Cases watched now (one watch per case, however many streams follow it).
    pub fn watched_cases(&self) -> usize {
        self.inner.watches.lock().expect("watch map").by_case.len()
    }

    /// Database reads the watches made so far (each is one statement).
    pub fn reads(&self) -> u64 {
        self.inner.read_count.load(Ordering::Relaxed)
    }

    /// Follows a case: a receiver of its snapshots (the latest one at once, once read).
    pub fn follow(&self, id: Uuid) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.follow_inner(id, None)
    }

    /// Follows a case whose state was just read: a new watch starts from it instead of reading
    /// the case again, when no change can have been missed since (see the module's notes).
    pub fn follow_from(&self, state: &CaseState) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.follow_inner(state.case.id, Some(state))
    }

    fn follow_inner(
        &self,
        id: Uuid,
        state: Option<&CaseState>,
    ) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let mut watches = self.inner.watches.lock().expect("watch map");
        if let Some(w) = watches.by_case.get(&id) {
            return w.tx.subscribe();
        }
        let seed = state
            .filter(|s| watches.is_fresh(id, s.version))
            .map(|s| Arc::new((self.inner.render)(s)));
        let read_first = seed.is_none();
        let (tx, rx) = watch::channel(seed);
        let w = Arc::new(Watch {
            tx,
            poke: Notify::new(),
        });
        watches.by_case.insert(id, w.clone());
        let span = tracing::info_span!("watch", case_id = %id);
        tokio::spawn(self.clone().run_watch(id, w, read_first).instrument(span));
        rx
    }

    /// What the listener heard: records the event and pokes the case's watch.
    fn heard(&self, signal: &CaseSignal) {
        let mut watches = self.inner.watches.lock().expect("watch map");
        // A view changes no state (the version ignores views).
        if signal.kind != "viewed" {
            watches.record(signal.case_id, signal.event_id);
        }
        if let Some(w) = watches.by_case.get(&signal.case_id) {
            w.poke.notify_one();
        }
    }

    /// Whether events up to `up_to` may have gone unheard (`i64::MAX`: anything may have).
    fn set_unheard_up_to(&self, up_to: i64) {
        let mut watches = self.inner.watches.lock().expect("watch map");
        watches.heard.clear();
        watches.heard_by_event.clear();
        watches.unheard_up_to = up_to;
    }

    /// Tells every watch to read again (signals may have been missed).
    pub fn poke_all(&self) {
        for w in self
            .inner
            .watches
            .lock()
            .expect("watch map")
            .by_case
            .values()
        {
            w.poke.notify_one();
        }
    }

    async fn read(&self, id: Uuid) -> Option<Arc<Snapshot>> {
        let _slot = self.inner.reads.acquire().await.ok()?;
        metrics::counter!("mole_live_reads_total").increment(1);
        self.inner.read_count.fetch_add(1, Ordering::Relaxed);
        match self.inner.store.case_state(id).await {
            Ok(Some(state)) => Some(Arc::new((self.inner.render)(&state))),
            // Unknown: the stream was opened for a case that exists, so this is a race with a
            // database swap; nothing to show.
            Ok(None) => None,
            // The database is away: keep the watch, read again on the next poke or tick.
            Err(e) => {
                warn!(error = %e, "cannot read the case for its live stream");
                None
            }
        }
    }

    async fn run_watch(self, id: Uuid, w: Arc<Watch>, read_first: bool) {
        let mut read = read_first;
        if !read && w.tx.borrow().as_ref().is_some_and(|s| s.terminal) {
            self.remove(id, &w, true);
            return;
        }
        loop {
            if read && let Some(snapshot) = self.read(id).await {
                let changed = match &*w.tx.borrow() {
                    Some(old) => old.version != snapshot.version,
                    None => true,
                };
                let terminal = snapshot.terminal;
                if changed {
                    w.tx.send_replace(Some(snapshot));
                }
                if terminal {
                    debug!("final state published; the watch ends");
                    self.remove(id, &w, true);
                    return;
                }
            }
            read = true;
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => {
                    self.remove(id, &w, true);
                    return;
                }
                _ = w.poke.notified() => {}
                _ = tokio::time::sleep(self.inner.resync) => {}
                _ = w.tx.closed() => {
                    // The last stream left; a new one may have come meanwhile.
                    if self.remove(id, &w, false) {
                        return;
                    }
                }
            }
        }
    }

    /// Removes the watch from the map (when `always`, or when no stream follows it any more);
    /// returns whether it was removed.
    fn remove(&self, id: Uuid, w: &Arc<Watch>, always: bool) -> bool {
        let mut watches = self.inner.watches.lock().expect("watch map");
        if !always && w.tx.receiver_count() > 0 {
            return false;
        }
        if watches
            .by_case
            .get(&id)
            .is_some_and(|current| Arc::ptr_eq(current, w))
        {
            watches.by_case.remove(&id);
        }
        true
    }

    /// Listens to the database until shutdown, reconnecting with backoff, and pokes the watches.
    pub async fn run_listener(self) {
        let shutdown = self.inner.shutdown.clone();
        let mut backoff = Duration::from_millis(250);
        loop {
            let listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = self.inner.store.listener() => l,
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
            // Listening now: every event committed from here on is heard. Those committed
            // before (while we were not listening) have ids up to the latest one now; until that
            // is known, nothing heard can vouch for a state.
            match self.inner.store.latest_event_id().await {
                Ok(latest) => self.set_unheard_up_to(latest),
                Err(e) => {
                    warn!(error = %e, "cannot read the latest case event; streams read first");
                    self.set_unheard_up_to(i64::MAX);
                }
            }
            // Whatever happened while we were not listening, watches must look again.
            self.poke_all();
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = listener.recv() => n,
                };
                match next {
                    Ok(Some(signal)) => {
                        debug!(case_id = %signal.case_id, kind = %signal.kind, "case event");
                        self.heard(&signal);
                    }
                    Ok(None) => {
                        // Reconnect explicitly, so the watches read again once we listen again.
                        warn!("LISTEN connection lost; reconnecting");
                        self.set_unheard_up_to(i64::MAX);
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, "LISTEN failed; reconnecting");
                        self.set_unheard_up_to(i64::MAX);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_vouches_for_a_state_before_the_listener_listens() {
        let w = Watches::new();
        assert!(!w.is_fresh(Uuid::new_v4(), 1_000_000));
    }

    #[test]
    fn a_state_is_fresh_unless_a_newer_event_of_its_case_was_or_may_have_been_heard() {
        let mut w = Watches::new();
        w.unheard_up_to = 10;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(w.is_fresh(a, 12));
        // An event up to 10 may have gone unheard while not listening.
        assert!(!w.is_fresh(a, 9));
        w.record(a, 15);
        assert!(!w.is_fresh(a, 12), "a newer event of the case was heard");
        assert!(w.is_fresh(a, 15));
        assert!(
            w.is_fresh(b, 12),
            "another case's event says nothing of this one"
        );
        w.record(a, 14);
        assert!(!w.is_fresh(a, 14), "the latest heard counts, not the last");
    }

    #[test]
    fn a_forgotten_case_makes_older_states_unsure() {
        let mut w = Watches::new();
        w.unheard_up_to = 0;
        let first = Uuid::new_v4();
        w.record(first, 100);
        for i in 0..HEARD_CASES as i64 {
            w.record(Uuid::new_v4(), 101 + i);
        }
        assert!(w.heard.len() <= HEARD_CASES);
        assert!(
            !w.heard.contains_key(&first),
            "the oldest case is forgotten"
        );
        assert_eq!(w.unheard_up_to, 100);
        assert!(
            !w.is_fresh(first, 99),
            "its event 100 may be newer than the state"
        );
        assert!(w.is_fresh(first, 100));
        // A case heard again is not forgotten for its first hearing.
        let mut w = Watches::new();
        w.unheard_up_to = 0;
        let again = Uuid::new_v4();
        w.record(again, 1);
        w.record(Uuid::new_v4(), 2);
        w.record(again, 3);
        for i in 0..(HEARD_CASES as i64 - 2) {
            w.record(Uuid::new_v4(), 4 + i);
        }
        assert_eq!(w.heard.get(&again), Some(&3));
        // A busy case behind a quiet one does not grow the bookkeeping without bound.
        let mut w = Watches::new();
        let (quiet, busy) = (Uuid::new_v4(), Uuid::new_v4());
        w.record(quiet, 1);
        for i in 0..(10 * HEARD_CASES as i64) {
            w.record(busy, 2 + i);
        }
        assert_eq!(w.heard.len(), 2);
        assert_eq!(w.heard_by_event.len(), 2);
        assert_eq!(w.heard.get(&quiet), Some(&1));
    }
}
