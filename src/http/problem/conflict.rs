//! The kinds of 409 Conflict. Each has a problem type of its own, so a client can tell "that
//! name is taken" from "the job already ended" without reading the detail.

/// Why a request conflicts with the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// A resource with the same id or name exists.
    AlreadyExists,
    /// A delete refused while other resources refer to the resource.
    StillReferenced,
    /// The certificate already has an active issuance or renewal.
    RenewalActive,
    /// The resource's state does not allow this (an archived certificate, a job that ended…).
    WrongState,
    /// The resource changed between the request's read and its write; read it again.
    ChangedMeanwhile,
    /// Another agent holds the job's lease.
    LeasedToAnotherAgent,
    /// Another replica leads the scheduler loop.
    NotLeader,
    /// A tick of the scheduler loop is running now.
    TickRunning,
    /// The issuer cannot be used (disabled, or of a type this build cannot issue with).
    IssuerUnusable,
}

impl Conflict {
    /// The problem type's slug and title.
    pub fn slug_and_title(self) -> (&'static str, &'static str) {
        match self {
            Conflict::AlreadyExists => ("already-exists", "Already exists"),
            Conflict::StillReferenced => ("still-referenced", "Still referenced"),
            Conflict::RenewalActive => ("renewal-active", "A renewal is already active"),
            Conflict::WrongState => ("wrong-state", "Not allowed in the current state"),
            Conflict::ChangedMeanwhile => ("changed-meanwhile", "Changed meanwhile"),
            Conflict::LeasedToAnotherAgent => ("leased-to-another-agent", "Leased to another agent"),
            Conflict::NotLeader => ("not-leader", "Another replica leads this loop"),
            Conflict::TickRunning => ("tick-running", "A tick is running"),
            Conflict::IssuerUnusable => ("issuer-unusable", "Issuer cannot be used"),
        }
    }

    /// Every kind (for the API description).
    pub const ALL: [Conflict; 9] = [
        Conflict::AlreadyExists,
        Conflict::StillReferenced,
        Conflict::RenewalActive,
        Conflict::WrongState,
        Conflict::ChangedMeanwhile,
        Conflict::LeasedToAnotherAgent,
        Conflict::NotLeader,
        Conflict::TickRunning,
        Conflict::IssuerUnusable,
    ];
}
