//! Benchmarks only; see `benches/hot_path.rs`. Run with `cargo bench -p flashcart-benches`.
