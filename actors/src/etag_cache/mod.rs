//! The ETag cache: lets the hot list endpoints answer `If-None-Match` revalidations with 304 and
//! no database query at all, consistently across replicas.
//!
//! - [`generations`]: a counter per table, bumped by this replica's own writes (through
//!   `DbQuery::TOUCHES`) and by notifications; the process epoch; whether notifications flow.
//! - [`listener`]: the supervised ETag cache actor, which listens for the V11 triggers'
//!   notifications on a dedicated connection and bumps generations.

pub mod generations;
pub mod listener;

pub use generations::{Generations, Table};
pub use listener::{EtagCache, Shutdown};
