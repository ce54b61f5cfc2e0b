//! The agent directory: every agent's key hash, id and whether it is retired, in memory.
//!
//! Loaded at start, updated at once by this replica's registrations and retirements, and
//! refreshed every few seconds from the database by the heartbeat aggregator (so agents
//! registered or retired on another replica are known here shortly after). A key the directory
//! does not know yet is looked up in the database by the authenticator and then added. About
//! 150 bytes per agent: 100,000 agents take roughly 15 MiB.
//!
//! Keys are looked up by their SHA-256, never compared as text: the hash of a 256-bit random
//! key reveals nothing useful through lookup timing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::metrics::AGENT_DIRECTORY_SIZE;
use crate::queries::agents::DirectoryEntry;

/// What the directory knows of an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownAgent {
    pub id: Arc<str>,
    pub retired: bool,
}

#[derive(Default)]
struct Maps {
    by_hash: HashMap<[u8; 32], KnownAgent>,
    /// id → key hash, for lookups by id and for retiring.
    by_id: HashMap<Arc<str>, [u8; 32]>,
}

/// See the module docs. Shared by the HTTP workers and the aggregator.
#[derive(Default)]
pub struct AgentDirectory {
    maps: RwLock<Maps>,
}

impl AgentDirectory {
    /// The agent a key hash belongs to.
    pub fn by_key_hash(&self, hash: &[u8; 32]) -> Option<KnownAgent> {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).by_hash.get(hash).cloned()
    }

    /// The agent with this id.
    pub fn by_id(&self, id: &str) -> Option<KnownAgent> {
        let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
        maps.by_id.get(id).and_then(|hash| maps.by_hash.get(hash)).cloned()
    }

    /// Adds or updates agents (a retirement is never undone by a stale row). What is already
    /// known as it is is skipped under the read lock, so a refresh that finds nothing new never
    /// blocks the request threads reading the directory.
    pub(crate) fn upsert(&self, entries: impl IntoIterator<Item = DirectoryEntry>) {
        let changed: Vec<DirectoryEntry> = {
            let maps = self.maps.read().unwrap_or_else(|e| e.into_inner());
            entries
                .into_iter()
                .filter(|entry| match maps.by_hash.get(&entry.key_hash) {
                    Some(known) => *known.id != *entry.id || (entry.retired && !known.retired),
                    None => true,
                })
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        for entry in changed {
            let id: Arc<str> = Arc::from(entry.id.as_str());
            let retired = entry.retired || maps.by_hash.get(&entry.key_hash).is_some_and(|known| known.retired);
            maps.by_hash.insert(entry.key_hash, KnownAgent { id: id.clone(), retired });
            maps.by_id.insert(id, entry.key_hash);
        }
        metrics::gauge!(AGENT_DIRECTORY_SIZE).set(maps.by_id.len() as f64);
    }

    /// Marks an agent retired.
    pub(crate) fn retire(&self, id: &str) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        if let Some(hash) = maps.by_id.get(id).copied() {
            if let Some(known) = maps.by_hash.get_mut(&hash) {
                known.retired = true;
            }
        }
    }

    /// How many agents are known.
    pub fn len(&self) -> usize {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).by_id.len()
    }

    /// Whether no agent is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_found_by_key_and_id_and_stay_retired() {
        let dir = AgentDirectory::default();
        let entry = DirectoryEntry { id: "ag-1".into(), key_hash: [7; 32], retired: false };
        dir.upsert([entry.clone()]);
        assert_eq!(dir.by_key_hash(&[7; 32]).map(|a| a.id.to_string()), Some("ag-1".into()));
        assert_eq!(dir.by_id("ag-1").map(|a| a.retired), Some(false));
        dir.retire("ag-1");
        dir.upsert([entry]);
        assert_eq!(dir.by_id("ag-1").map(|a| a.retired), Some(true), "a stale row does not revive it");
        assert!(dir.by_key_hash(&[8; 32]).is_none());
    }
}
