"""One module per recovery method (found by :func:`lab.methods.method_names`)."""
