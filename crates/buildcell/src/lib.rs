//! autopara buildcell (under construction).
