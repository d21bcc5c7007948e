"""The ``ops-center`` command line (`main`) and how it reports failures (`errors`)."""
