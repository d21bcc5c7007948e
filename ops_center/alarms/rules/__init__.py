"""The alarm rules: pure decisions (`facts`, `observe`, `book`) and their I/O (`engine`,
`runner`). Thresholds are settings (`thresholds`)."""
