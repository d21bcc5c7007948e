"""Alarms: the pure rules (`rules`: facts, causes, the rule book, thresholds; no I/O) and
the engine that follows the log with them and writes alarm events (`engine`, `runner`)."""
