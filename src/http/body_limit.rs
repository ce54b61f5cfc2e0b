//! The request body limit (`CERTCTL_MAX_BODY_SIZE`), kept in app data so the body extractors
//! enforce it and a bare 413 can say what the limit is.

/// The body limit in bytes.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub u64);
