//! Readiness: the named checks behind the admin listener's `GET /ready`.
//!
//! The server is ready when its listeners are up and every [`Check`] passes. A check is a name
//! (stable, short: it is a key of `/ready`'s JSON body) and an async function that answers
//! `Ok(())` or `Err(reason)`; the reason is shown to operators, so it names no secret (no
//! credentials, no signed URLs). [`crate::shared::Shared::new`] registers the checks of what is
//! configured (memcached); a new dependency (object storage, say) adds its own there with
//! [`Readiness::add`]:
//!
//! ```ignore
//! readiness.add(Check::new("storage", move || {
//!     let client = client.clone();
//!     Box::pin(async move { client.head_bucket().await.map_err(|e| e.kind().to_string()) })
//! }));
//! ```
//!
//! The admin listener runs the checks concurrently, each with a deadline
//! ([`CHECK_TIMEOUT`]): a check that does not answer in time fails with "timed out".

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a check's function returns.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// One named readiness check.
pub struct Check {
    name: &'static str,
    run: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl Check {
    /// A check named `name` that runs `run` each time `/ready` is asked.
    pub fn new(name: &'static str, run: impl Fn() -> CheckFuture + Send + Sync + 'static) -> Check {
        Check {
            name,
            run: Box::new(run),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Run the check once.
    pub fn run(&self) -> CheckFuture {
        (self.run)()
    }
}

/// The listeners' state and the checks of the configured dependencies.
#[derive(Debug, Default)]
pub struct Readiness {
    listeners_up: AtomicBool,
    checks: Vec<Check>,
}

impl Readiness {
    /// Add a check (at start-up, before the server is shared).
    pub fn add(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The checks, in the order they were added.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// `main` says every listener is accepting (`true`), or that shutdown began (`false`).
    pub fn set_listeners_up(&self, up: bool) {
        self.listeners_up.store(up, Ordering::Release);
    }

    pub fn listeners_up(&self) -> bool {
        self.listeners_up.load(Ordering::Acquire)
    }
}
