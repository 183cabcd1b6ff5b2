mod bad_input;
mod lifecycle;
mod properties;
mod queue;
mod quorum;
mod spam;
