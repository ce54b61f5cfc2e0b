//! The agents' side of identity: registering an agent (its key made here, only its hash kept),
//! retiring one, and finding the agent a presented key belongs to. Each keeps the in-memory
//! [directory](super::directory) current itself, so no caller writes to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::directory::{AgentDirectory, KnownAgent};
use crate::db::Db;
use crate::domain::agent::{Agent, NewAgent};
use crate::domain::api_key::{generate_key, key_hash, to_hex};
use crate::domain::audit::AuditActor;
use crate::domain::validation::FieldError;
use crate::error::DbError;
use crate::queries::agents::{DirectoryEntry, FindAgentByKey, RegisterAgent, RetireAgent, Retired};

/// The prefix of agent keys: a key starting with it is an agent's, never an API key.
pub const AGENT_KEY_PREFIX: &str = "cctl_agent_";

/// How long a key found nowhere is refused without asking the database again.
const MISS_MEMORY: Duration = Duration::from_secs(10);
/// Misses remembered at most (cleared when full).
const MAX_MISSES: usize = 10_000;

/// A newly registered agent and its key, which is shown this once.
#[derive(Debug)]
pub struct Registered {
    pub agent: Agent,
    /// The agent's key (`cctl_agent_…`); only its SHA-256 is stored.
    pub api_key: String,
}

/// What registering found.
#[derive(Debug)]
pub enum Registration {
    Done(Box<Registered>),
    Invalid(Vec<FieldError>),
}

/// What retiring found.
#[derive(Debug)]
pub enum Retirement {
    /// Retired now, with the number of its deployment jobs cancelled.
    Done(Box<Agent>, i64),
    AlreadyRetired,
    NotFound,
    /// The reason is too long or has control characters.
    InvalidReason,
}

/// Who a presented agent key belongs to.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyOwner {
    Agent(KnownAgent),
    Unknown,
}

/// See the module docs. Cheap to clone; shared by the HTTP workers.
#[derive(Clone)]
pub struct AgentRegistry {
    /// Where registrations, retirements and key look-ups the directory misses run.
    db: Db,
    /// The in-memory agents by key hash, kept current here so most key look-ups need no query.
    directory: Arc<AgentDirectory>,
    /// Hashes of agent keys found nowhere, with when: a client repeating a wrong key costs one
    /// query per [`MISS_MEMORY`], not one per request.
    misses: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
}

impl AgentRegistry {
    pub(crate) fn new(db: Db, directory: Arc<AgentDirectory>) -> Self {
        AgentRegistry { db, directory, misses: Arc::default() }
    }

    /// Registers an agent: validates the request, makes its key, stores the key's hash and the
    /// audit row, and adds it to the directory. The id is the client's or `ag-<uuidv7>`.
    pub async fn register(&self, new: NewAgent, actor: AuditActor) -> Result<Registration, DbError> {
        if let Err(errors) = new.validate() {
            return Ok(Registration::Invalid(errors));
        }
        let id = new.id.clone().unwrap_or_else(|| format!("ag-{}", uuid::Uuid::now_v7().simple()));
        let api_key = generate_key(AGENT_KEY_PREFIX)?;
        let hash = key_hash(&api_key);
        let query = RegisterAgent { id: id.clone(), name: new.name, host: new.host, key_hash: to_hex(&hash), actor };
        let agent = self.db.run(query).await?;
        self.directory.upsert([DirectoryEntry { id, key_hash: hash, retired: false }]);
        Ok(Registration::Done(Box::new(Registered { agent, api_key })))
    }

    /// Retires an agent (its key refused from now on, its open deployments cancelled, the CSR
    /// jobs it held freed) and marks it retired in the directory.
    pub async fn retire(&self, id: &str, reason: String, actor: AuditActor) -> Result<Retirement, DbError> {
        if reason.chars().count() > 500 || reason.chars().any(crate::domain::validation::is_unsafe_char) {
            return Ok(Retirement::InvalidReason);
        }
        let outcome = self.db.run(RetireAgent { id: id.to_string(), reason, actor }).await?;
        Ok(match outcome {
            Retired::Done(agent, cancelled) => {
                self.directory.retire(id);
                Retirement::Done(agent, cancelled)
            }
            Retired::AlreadyRetired(_) => {
                self.directory.retire(id);
                Retirement::AlreadyRetired
            }
            Retired::NotFound => Retirement::NotFound,
        })
    }

    /// The agent a presented key (`cctl_agent_…`) belongs to: from the directory, or for a key it
    /// does not know yet (registered on another replica since the last refresh) from the
    /// database, once; a key found nowhere is remembered for a while and refused without a query.
    pub async fn owner_of_key(&self, key: &str) -> Result<KeyOwner, DbError> {
        let hash = key_hash(key);
        if let Some(agent) = self.directory.by_key_hash(&hash) {
            return Ok(KeyOwner::Agent(agent));
        }
        if self.recently_missed(&hash) {
            return Ok(KeyOwner::Unknown);
        }
        match self.db.run(FindAgentByKey { key_hash: to_hex(&hash) }).await? {
            Some(entry) => {
                self.directory.upsert([entry]);
                Ok(self.directory.by_key_hash(&hash).map_or(KeyOwner::Unknown, KeyOwner::Agent))
            }
            None => {
                self.remember_miss(hash);
                Ok(KeyOwner::Unknown)
            }
        }
    }

    /// The agent with this id, as the directory knows it (an admin key acting for it).
    pub fn by_id(&self, id: &str) -> Option<KnownAgent> {
        self.directory.by_id(id)
    }

    /// How many agents the directory knows.
    pub fn known(&self) -> usize {
        self.directory.len()
    }

    fn recently_missed(&self, hash: &[u8; 32]) -> bool {
        let misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        misses.get(hash).is_some_and(|at| at.elapsed() < MISS_MEMORY)
    }

    fn remember_miss(&self, hash: [u8; 32]) {
        let mut misses = self.misses.lock().unwrap_or_else(|e| e.into_inner());
        if misses.len() >= MAX_MISSES {
            misses.clear();
        }
        misses.insert(hash, Instant::now());
    }
}
