"""The chip in the loop: fitness of weights on a simulated chip, fine-tunes and test scoring.

* :mod:`lab.fitness.chip`: :class:`~lab.fitness.chip.ChipFitness`, the GA's fitness;
* :mod:`lab.fitness.task`: the same for any task (ProtoNet episodes, classifiers);
* :mod:`lab.fitness.parallel`: a population spread over an executor's workers;
* :mod:`lab.fitness.batched`: the whole population's fine-tune in one vmapped pass;
* :mod:`lab.fitness.finetune`: the one QAT fine-tune of gene weights;
* :mod:`lab.fitness.scoring`: paired test scores on chips.
"""
