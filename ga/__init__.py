"""Genetic-algorithm training of memristor networks (Zhang, Zhang & Wu).

Modules, one job each:

* :mod:`ga.config`: ``GAConfig`` (pydantic, every knob, validated up front).
* :mod:`ga.genome`: ``Genome``, the reversible model <-> flat gene vector layout.
* :mod:`ga.references`: the two reference models (quantized + 5 % / 10 % noise)
  and the per-gene bounds / level steps derived from them.
* :mod:`ga.init`: ``origin`` and ``large`` initial populations.
* :mod:`ga.operators`: batched tensor selection / crossover / mutation.
* :mod:`ga.pygad_bridge`: PyGAD's built-in operators on a seeded helper, and
  our operators as PyGAD custom-operator callables.
* :mod:`ga.rng`: counter-based random streams ``(seed, stream, generation)``.
* :mod:`ga.checkpoint`, :mod:`ga.history`: atomic checkpoints, history files,
  ``GAResult``.
* :mod:`ga.trainer`: ``GATrainer``, the generation loop with resume.

Design decision: how the GA is "built on PyGAD"
------------------------------------------------
The generation loop is our own (``GATrainer``); ``pygad.GA.run`` is not the
engine.  Driving ``pygad.GA`` was examined (PyGAD 3.9.2) and rejected because:

1. ``GA.cal_pop_fitness`` reuses cached fitness for elites, kept parents and
   saved solutions.  Our fitness is a noisy chip measurement and must be
   re-drawn for every member, elites included, every generation.
2. ``GA.run`` always evaluates the current population before its loop, so a
   resumed run would spend one extra noisy (and, with Lamarckian write-back,
   population-changing) evaluation: a kill/resume could not end bit-identical
   to an uninterrupted run, and the resumed generation would cost double.
3. There is no channel for Lamarckian write-back: ``fitness_func`` returns a
   score only, and ``GA.population`` is converted/rounded and used as a cache
   key.
4. PyGAD's randomness is one ``RandomState`` + one ``random.Random`` advanced
   across generations, and ``GA.save`` cloudpickles the whole instance
   (fitness closure, datasets, models): not a small atomic per-generation
   checkpoint, and there is no per-generation fitness RNG.

What is reused from PyGAD:

* the operator names (``rws``, ``rank``, ``tournament``, ``single_point``,
  ``two_points``, ``uniform``, ``scattered``), ``keep_elitism`` and the
  callback names and order (``on_start``, ``on_fitness``, ``on_parents``,
  ``on_crossover``, ``on_mutation``, ``on_generation`` (``"stop"`` stops),
  ``on_stop``);
* PyGAD's own built-in selection and crossover implementations, selectable
  with ``GAConfig(operator_backend="pygad")``: they run as methods of a helper
  ``pygad.GA`` instance whose generators are re-seeded every generation from
  ``(seed, generation)``, so they are deterministic and resumable too;
* the other direction: :func:`ga.pygad_bridge.pygad_selection`,
  :func:`~ga.pygad_bridge.pygad_crossover` and
  :func:`~ga.pygad_bridge.pygad_mutation` wrap our operators as PyGAD custom
  operators for use in a plain ``pygad.GA``; for a noisy fitness there,
  :class:`~ga.pygad_bridge.RemeasuringGA` turns off the fitness cache of point 1.

The default operators are batched torch functions (EvoTorch style): one call
per generation on the whole ``(P, n_genes)`` population, no loop over
members or genes.

The concrete chip-in-the-loop fitness (``lab.fitness.chip``: load solution -> QAT
fine-tune -> ``memsim.program`` -> validation accuracy averaged over R draws)
plugs in through :class:`ga.trainer.FitnessFn`; :mod:`lab.fitness.batched` runs its fine-tune
for the whole population in one vmapped pass (``FitnessConfig.evaluation`` of
:mod:`lab.fitness.config`, which holds every knob of the fitness).  With
``FitnessConfig.chip_aware`` the fine-tune trains through the fitness chip's own
stuck-at devices and gains (:func:`memsim.defect_maps`), which the paper's fine-tune,
knowing only a noise model, cannot see.  The fitness chip's calibrated converters are
set from training images after every programming, never from the validation images.
"""

from ga.checkpoint import CheckpointMismatchError
from ga.config import (
    CrossoverType,
    EarlyStopMetric,
    GAConfig,
    InitMode,
    MutationScale,
    MutationType,
    OperatorBackend,
    SelectionType,
    SigmoidCenter,
)
from ga.genome import GeneSlice, Genome
from ga.history import GAResult, GenerationRecord
from ga.operators import SelectionPressure, selection_pressure, sigmoid_rws_probabilities
from ga.trainer import FitnessFn, GATrainer

__all__ = [
    "CheckpointMismatchError",
    "CrossoverType",
    "EarlyStopMetric",
    "FitnessFn",
    "GAConfig",
    "GAResult",
    "GATrainer",
    "GeneSlice",
    "GenerationRecord",
    "Genome",
    "InitMode",
    "MutationScale",
    "MutationType",
    "OperatorBackend",
    "SelectionPressure",
    "SelectionType",
    "SigmoidCenter",
    "selection_pressure",
    "sigmoid_rws_probabilities",
]
