//! autopara md (under construction).
