"""One experiment, from config to results.

* :mod:`lab.experiment.config`: the TOML config (``ExperimentConfig``);
* :mod:`lab.experiment.context`: where and how it runs, the seeds, the seed offset;
* :mod:`lab.experiment.runner`: ``run_experiment``, run folders and resume;
* :mod:`lab.experiment.pipeline`: the stages (every method on one budget, paired test
  scores, the results dict);
* :mod:`lab.experiment.report` and :mod:`lab.experiment.table`: plots, energy and tables;
* :mod:`lab.experiment.baseline` and :mod:`lab.experiment.checks` (run folders:
  :mod:`lab.run_folder`).
"""
