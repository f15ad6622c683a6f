//! Protocols: turning a request string into work.
