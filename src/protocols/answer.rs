//! What the protocols hand back: a response, or heavy work that the application schedules.
//!
//! A request is classified after it has been parsed and planned and before anything is
//! decoded, by the estimated cost of its plan, whatever the protocol: tiles, metadata,
//! info.json, cache hits and small exports are answered at once ([`Answer::Ready`], on the
//! worker that read the request); a region export whose estimated memory is above
//! [`LIGHT_EXPORT_BYTES`] becomes [`Answer::Heavy`]: a closure that owns what it needs (the
//! open image, the view, the plan) and makes the response later, on another thread, given the
//! shared state.

use std::fmt;

use crate::http::Response;
use crate::shared::Shared;

/// Region exports whose estimated peak memory is at most this run at once on the worker, like
/// a tile (a made-to-size viewer tile, a thumbnail); larger ones are heavy. Light work runs on
/// at most `IIPSRV_WORKERS` threads at a time, so it holds at most that many times this.
pub(crate) const LIGHT_EXPORT_BYTES: u64 = 4 << 20;

/// A response now, or heavy work.
#[derive(Debug)]
pub enum Answer {
    Ready(Response),
    Heavy(Deferred),
}

/// Heavy work: its estimated peak memory and the closure that makes its response (errors
/// already turned into their responses).
pub struct Deferred {
    bytes: u64,
    work: Box<dyn FnOnce(&Shared) -> Response + Send>,
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deferred")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Deferred {
    pub(crate) fn new(bytes: u64, work: impl FnOnce(&Shared) -> Response + Send + 'static) -> Self {
        Deferred {
            bytes,
            work: Box::new(work),
        }
    }

    /// The estimated peak memory, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Do the work (synchronous, long).
    pub fn run(self, shared: &Shared) -> Response {
        (self.work)(shared)
    }

    /// The same work followed by `then` on its response (e.g. storing it in memcached).
    pub(crate) fn then(
        self,
        then: impl FnOnce(&Shared, Response) -> Response + Send + 'static,
    ) -> Deferred {
        let Deferred { bytes, work } = self;
        Deferred::new(bytes, move |shared| {
            let r = work(shared);
            then(shared, r)
        })
    }
}

impl Answer {
    /// The response, doing heavy work right here (tests, fuzzing, tools).
    pub fn into_response(self, shared: &Shared) -> Response {
        match self {
            Answer::Ready(r) => r,
            Answer::Heavy(work) => work.run(shared),
        }
    }

    /// Apply `f` to the response, now or after the heavy work.
    pub(crate) fn map(
        self,
        shared: &Shared,
        f: impl FnOnce(&Shared, Response) -> Response + Send + 'static,
    ) -> Answer {
        match self {
            Answer::Ready(r) => Answer::Ready(f(shared, r)),
            Answer::Heavy(work) => Answer::Heavy(work.then(f)),
        }
    }
}

impl From<Response> for Answer {
    fn from(r: Response) -> Answer {
        Answer::Ready(r)
    }
}
