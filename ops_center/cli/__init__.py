"""The ``ops-center`` command line (`main`); failures are reported as one line by
`ops_center.runtime.failures`."""
