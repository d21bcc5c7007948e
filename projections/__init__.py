"""Read models and the runner that follows the event log."""
