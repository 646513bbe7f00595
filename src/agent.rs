//! The agent main loop.
