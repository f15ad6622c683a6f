//! One version of an object, as its description (`HEAD`) said: what the fetches of a request
//! ([`super::collect`]) and the remote store ([`super::remote`]) both name.

use std::time::SystemTime;

use super::Meta;

/// One version of an object, as its description said.
#[derive(Debug)]
pub(crate) struct Object {
    pub key: object_store::path::Path,
    pub len: u64,
    pub etag: Option<String>,
    /// A hash of the ETag (or of size and date when there is none): part of the block keys.
    pub version_tag: u64,
    pub modified: SystemTime,
}

impl Object {
    pub(crate) fn meta(&self) -> Meta {
        Meta {
            len: self.len,
            modified: self.modified,
        }
    }
}
