//! (module being written; see spec/)
