//! autopara MPI backend (under construction).
