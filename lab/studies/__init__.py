"""Studies made of many experiments, and the numbers they publish.

* :mod:`lab.studies.replicates`: one experiment over independent replicates, 95 % intervals;
* :mod:`lab.studies.table1`, :mod:`lab.studies.sweeps`, :mod:`lab.studies.sweep_grid`: the
  paper's Table 1, its Figures 4-7 and grid studies;
* :mod:`lab.studies.demo`: the ``memsim demo`` experiment;
* :mod:`lab.studies.published`: committed results files and the tables rendered from them.
"""
