//! autopara descriptor (under construction).
