//! Orders a catalog's writes: memory must change in the same order as
//! RocksDB, yet writers should share fsyncs (group commit).
//!
//! A writer takes a ticket and submits its batch to the store's commit
//! queue in one step under a short lock, so ticket order equals commit
//! order. It then waits, without any lock, for its batch to be durable
//! (grouped with others), and finally waits for its turn to apply the
//! change in memory. Applying is quick relative to an fsync, so many
//! writers can be waiting on one fsync at once.

use std::sync::mpsc;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::storage::{Batch, Store};

/// See the module documentation.
#[derive(Default)]
pub struct Sequencer {
    next_ticket: Mutex<u64>,
    applied: Mutex<u64>,
    turn_changed: Condvar,
}

/// A place in the apply order.
#[must_use = "a ticket must be turned into a Turn, or later writers wait forever"]
pub struct Ticket(u64);

/// Exclusive right to change a catalog's memory; the next ticket's turn
/// comes when this is dropped, even on a panic or an error.
pub struct Turn<'a> {
    sequencer: &'a Sequencer,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.sequencer.applied.lock() += 1;
        self.sequencer.turn_changed.notify_all();
    }
}

/// A durable-wait handle for a submitted batch.
pub type Durable = mpsc::Receiver<Result<(), rocksdb::Error>>;

impl Sequencer {
    /// Submits `batch` and takes the next ticket, atomically.
    pub fn submit(&self, store: &Store, batch: Batch) -> Result<(Ticket, Durable)> {
        let mut next = self.next_ticket.lock();
        let durable = store.submit(batch)?;
        let ticket = Ticket(*next);
        *next += 1;
        Ok((ticket, durable))
    }

    /// Takes a ticket without a write (a rebuild swapping in its result).
    pub fn ticket(&self) -> Ticket {
        let mut next = self.next_ticket.lock();
        let ticket = Ticket(*next);
        *next += 1;
        ticket
    }

    /// Blocks until every earlier ticket has applied.
    pub fn wait_turn(&self, ticket: Ticket) -> Turn<'_> {
        let mut applied = self.applied.lock();
        while *applied != ticket.0 {
            self.turn_changed.wait(&mut applied);
        }
        Turn { sequencer: self }
    }
}
