"""Small runtime helpers shared by long-running parts and commands: stopping tasks for
sure (`tasks`), the backoff of every retry loop (`backoff`), how a command reports a
failure in one line (`failures`), and the one progress display of long runs
(`progress`)."""
