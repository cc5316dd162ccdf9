//! Deterministic synthetic dataset generator (being written).
