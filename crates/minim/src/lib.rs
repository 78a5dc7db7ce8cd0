//! autopara minim (under construction).
