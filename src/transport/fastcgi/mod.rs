//! The FastCGI record layer and connection handling (our own; see docs/architecture.md).
