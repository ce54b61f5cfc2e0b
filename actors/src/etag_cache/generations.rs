//! Generations: one counter per table a cached list reads, bumped whenever the table changes. A
//! list's ETag is derived from the generations of its tables, so an unchanged generation means
//! unchanged rows, and answering a revalidation needs no query.
//!
//! Bumped in two ways: at once by this replica's own writes (`Db::run` bumps the tables a query
//! declares in [`DbQuery::TOUCHES`](crate::db::DbQuery::TOUCHES) after it succeeded, before the
//! caller sees the result: read-your-writes), and by the ETag cache actor on every PostgreSQL
//! notification (other replicas, psql, anything the declarations missed). Lock-free: handlers read
//! them with atomic loads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The tables cached lists read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Certificates,
    TargetMappings,
    Jobs,
    Agents,
    Audit,
    Discovered,
}

impl Table {
    pub const ALL: [Table; 6] =
        [Table::Certificates, Table::TargetMappings, Table::Jobs, Table::Agents, Table::Audit, Table::Discovered];

    /// The PostgreSQL table's name (the notification payload's first word).
    pub fn name(self) -> &'static str {
        match self {
            Table::Certificates => "managed_certificates",
            Table::TargetMappings => "certificate_target_mappings",
            Table::Jobs => "jobs",
            Table::Agents => "agents",
            Table::Audit => "audit_events",
            Table::Discovered => "discovered_certificates",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters, this process's epoch, and whether notifications are arriving.
#[derive(Debug)]
pub struct Generations {
    counters: [AtomicU64; 6],
    /// Random per process: an ETag from before a restart never matches after it, though the
    /// counters start again from zero.
    epoch: u64,
    /// True while the notification listener is connected and listening. While false no ETag is
    /// trusted (changes made elsewhere may go unseen), so nothing is answered 304.
    listening: AtomicBool,
}

impl Default for Generations {
    fn default() -> Self {
        let mut bytes = [0u8; 8];
        // Should the random source fail, the process id and start time still tell processes apart.
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            bytes = (nanos.as_nanos() as u64 ^ (u64::from(std::process::id()) << 40)).to_le_bytes();
        }
        Generations {
            counters: Default::default(),
            epoch: u64::from_le_bytes(bytes),
            listening: AtomicBool::new(false),
        }
    }
}

impl Generations {
    pub fn bump(&self, table: Table) {
        self.counters[table.index()].fetch_add(1, Ordering::AcqRel);
    }

    pub fn bump_all(&self) {
        for table in Table::ALL {
            self.bump(table);
        }
    }

    pub fn get(&self, table: Table) -> u64 {
        self.counters[table.index()].load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether generations can be trusted for a 304 now.
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    pub(crate) fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_and_bumps_count() {
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
        let g = Generations::default();
        g.bump(Table::Jobs);
        g.bump_all();
        assert_eq!((g.get(Table::Jobs), g.get(Table::Agents)), (2, 1));
        assert!(!g.listening(), "not trusted before the listener connects");
    }
}
