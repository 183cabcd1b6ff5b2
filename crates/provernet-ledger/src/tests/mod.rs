mod bad_input;
mod lifecycle;
mod properties;
