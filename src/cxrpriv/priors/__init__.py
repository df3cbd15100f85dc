"""Label priors from radiologist re-reading: how wrong the text-mined labels are, how the readers err, and
which findings occur together.

Modules, from the inputs up: :mod:`.vocabulary` (finding names of other datasets mapped to ChestX-ray14),
:mod:`.tables` (the text-mined labels and the three re-read table layouts), :mod:`.noise_rates` (2x2 tables,
Wilson intervals, transfer to another prevalence), :mod:`.readers` (majority vote, Dawid-Skene, Fleiss'
kappa), :mod:`.comorbidity`, :mod:`.stage` (the pure computation and the JSON it writes, whose schema its
docstring documents), :mod:`.report` (heatmaps), :mod:`.output` (the output format: ``priors.json``, or the
marker of a run without a re-read table, and what the model stages do then), :mod:`.run` (inputs, outputs
and the MLflow run) and :mod:`.command` (the CLI spec).
"""


class PriorsInputError(ValueError):
    """An input table that cannot give a correct number; the message names the table and what is wrong."""
