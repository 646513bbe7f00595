//! The scheduler: a pure state machine deciding what to create, update, delete or keep
//! pending. No I/O, no clock reads: time is passed in.

pub mod ops;
