//! The IIP protocol (`docs/behaviour/protocols-iip.md`), split the way iipsrv splits its Tasks:
//!
//! - [`session`]: the command loop (tokenise, run each command over one session, finish);
//! - [`parameters`]: the parameter commands, parsed into the [`crate::view::View`];
//! - [`obj`]: `OBJ`, every object named once and parsed once;
//! - [`outputs`]: the output commands (JTL and friends, TIL, CVT, SPECTRA, PFL), which take
//!   the open image.
//!
//! Calls go one way: `session` → `parameters`, `obj`, `outputs`.

mod obj;
mod outputs;
mod parameters;
mod session;

pub(crate) use session::{run, tokenise};
