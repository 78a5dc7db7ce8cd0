//! autopara calculators (under construction).
