//! The server: listeners, the worker pool, shared state and shutdown.
