//! Orders a catalog's writes: memory must change in the same order as
//! RocksDB, yet writers should share fsyncs (group commit).
//!
//! A writer takes a ticket and submits its batch to the store's commit
//! queue in one step under a short lock, so ticket order equals commit
//! order. It then waits, without any lock, for its batch to be durable
//! (grouped with others), and finally waits for its turn to apply the
//! change in memory. Applying is quick relative to an fsync, so many
//! writers can be waiting on one fsync at once.
//!
//! Tickets double as change numbers: an item write logs its ids under its
//! ticket number in the same atomic batch (`storage` column family
//! `changes`). A ticket that writes nothing (a rebuild's swap, a snapshot)
//! leaves a gap, which is harmless. Numbers keep growing across restarts:
//! a catalog's sequencer starts after the highest number it has used.

use std::sync::mpsc;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::storage::{Batch, Store};

/// See the module documentation.
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
    ticket: u64,
}

impl Turn<'_> {
    /// Every change numbered at or below this has been applied to memory
    /// (and none above it, while the turn is held).
    pub fn watermark(&self) -> u64 {
        self.ticket - 1
    }
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
    /// A sequencer whose first ticket (and change number) is `last + 1`.
    pub fn starting_after(last: u64) -> Sequencer {
        Sequencer {
            next_ticket: Mutex::new(last + 1),
            applied: Mutex::new(last + 1),
            turn_changed: Condvar::new(),
        }
    }

    /// Submits `batch` and takes the next ticket, atomically.
    pub fn submit(&self, store: &Store, batch: Batch) -> Result<(Ticket, Durable)> {
        let mut next = self.next_ticket.lock();
        let durable = store.submit(batch)?;
        let ticket = Ticket(*next);
        *next += 1;
        Ok((ticket, durable))
    }

    /// Like [`Sequencer::submit`], and logs `ids` as changed under the
    /// ticket's number in the same batch, so a restart can replay it.
    pub fn submit_change(
        &self,
        store: &Store,
        mut batch: Batch,
        catalog_id: u32,
        ids: &[&str],
    ) -> Result<(Ticket, Durable)> {
        let mut next = self.next_ticket.lock();
        batch.log_change(catalog_id, *next, ids);
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
        Turn {
            sequencer: self,
            ticket: ticket.0,
        }
    }
}
