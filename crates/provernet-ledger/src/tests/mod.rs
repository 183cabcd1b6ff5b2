mod bad_input;
mod hostile;
mod lifecycle;
mod properties;
mod queue;
mod quorum;
mod spam;
mod workflow;
