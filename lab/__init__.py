"""lab: the experiment layer of memsim.

The only package that wires the simulator (:mod:`memsim`), the GA library (:mod:`ga`)
and the networks and data (:mod:`models`) together: fitness on chips, the fine-tune used
by fitness and control, scoring, the experiment runner, reports, plots, Table 1, sweeps,
the demo and the ``memsim`` command line (:mod:`lab.cli`).
"""
