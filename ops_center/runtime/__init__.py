"""Small runtime helpers shared by long-running parts: stopping tasks for sure (`tasks`)."""
