//! In-memory fake provider (to come).
