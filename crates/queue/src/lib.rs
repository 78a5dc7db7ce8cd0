//! autopara queue (under construction).
