"""One module per recovery method (found by :func:`lab.recovery.method_names`)."""
