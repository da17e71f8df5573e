//! Fake Hetzner (stub).
