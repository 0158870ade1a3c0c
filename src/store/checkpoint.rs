//! WAL checkpoints off the writer thread. The writer's connection does not
//! checkpoint on commit; this thread, with a connection of its own, copies the
//! WAL back into the database (PASSIVE: it never blocks the writer or readers)
//! after commits, at most every 250 ms. On shutdown the WAL is truncated.
//! The one checkpoint that is not here is the writer's own RESTART between
//! two transactions when a sustained stream keeps the WAL from starting over
//! (`WriterState::bound_wal`): only the writer knows it is between two.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

const EVERY: Duration = Duration::from_millis(250);

pub struct Checkpointer {
    tx: Option<flume::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// `busy`: how long its connection waits for a lock (the final TRUNCATE
    /// checkpoint waits for other connections' writes).
    pub fn spawn(database: PathBuf, busy: Duration) -> std::io::Result<Checkpointer> {
        let (tx, rx) = flume::bounded::<()>(1);
        let handle = std::thread::Builder::new()
            .name("mpm-aggregate-checkpoint".into())
            .spawn(move || {
                let conn = match rusqlite::Connection::open(&database) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("checkpoints disabled: {e}");
                        return;
                    }
                };
                let _ = conn.busy_timeout(busy);
                let mut pending = rx.recv().is_ok();
                while pending {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!("checkpoint: {e}");
                    }
                    // At most one checkpoint per EVERY; a shutdown meanwhile
                    // ends the wait at once (a `hook` process lives ~10 ms).
                    let deadline = std::time::Instant::now() + EVERY;
                    let mut again = false;
                    let closed = loop {
                        match rx.recv_deadline(deadline) {
                            Ok(()) => again = true,
                            Err(flume::RecvTimeoutError::Timeout) => break false,
                            Err(flume::RecvTimeoutError::Disconnected) => break true,
                        }
                    };
                    if closed {
                        break;
                    }
                    pending = again || rx.recv().is_ok();
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })?;
        Ok(Checkpointer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// No thread: for a short-lived writer, which checkpoints when it ends,
    /// past a WAL size (`end_short_lived` in the writer).
    pub fn none() -> Checkpointer {
        Checkpointer {
            tx: None,
            handle: None,
        }
    }

    /// Tells the thread a transaction was committed.
    pub fn committed(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(());
        }
    }

    /// Final checkpoint; stops the thread.
    pub fn finish(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.finish();
    }
}
