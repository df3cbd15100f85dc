"""Register a trained network in MLflow as a model that rebuilds itself from a state dict.

MLflow's PyTorch flavour pickles whole modules (or exports a fixed-batch graph); we keep weights as a state
dict, so the registered model is a pyfunc whose artifacts are the state dict and the builder's arguments.
Loading calls the builder (a ``module:function`` path in this library) and ``load_state_dict`` with
``weights_only=True``. ``predict`` takes float images [n, 1, H, W] in [0, 1] and returns the module's output
(its ``predict_images`` method's, where it has one).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrpriv import __version__


def build_from_spec(spec: Mapping[str, Any]) -> torch.nn.Module:
    """``{"builder": "package.module:function", "kwargs": {...}}`` -> the (untrained) module."""
    module_name, _, function = str(spec["builder"]).partition(":")
    if not module_name.startswith("cxrpriv."):
        raise ValueError(
            f"refusing to build a model from {spec['builder']!r}: only cxrpriv builders are allowed"
        )
    return getattr(importlib.import_module(module_name), function)(**spec.get("kwargs", {}))


def _python_model_class() -> type:
    import mlflow.pyfunc  # imported late: importing the library must not import MLflow

    class StateDictModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            spec = json.loads(Path(context.artifacts["spec"]).read_text())
            self.module = build_from_spec(spec)
            weights = torch.load(context.artifacts["state_dict"], map_location="cpu", weights_only=True)
            self.module.load_state_dict(weights)
            self.module.eval()

        # No type hints here: MLflow would read them as a (wrong) input schema.
        def predict(self, context, model_input, params=None):  # noqa: ANN001
            # A module whose forward returns more than its images (the anonymizer: warped films and their
            # displacement) says what to serve with a predict_images method.
            forward = getattr(self.module, "predict_images", self.module)
            with torch.no_grad():
                x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
                return forward(x).numpy()

    return StateDictModel


def log_state_dict_model(
    state_dict_path: Path,
    spec: Mapping[str, Any],
    registered_name: str | None,
    artifact_name: str = "model",
) -> str:
    """Log into the active MLflow run (and register under ``registered_name``); returns the model URI."""
    import mlflow.pyfunc

    build_from_spec(spec)  # fail here, not at load time, if the spec does not build
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(dict(spec), indent=2))
        info = mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=_python_model_class()(),
            artifacts={"state_dict": str(state_dict_path), "spec": str(spec_path)},
            # Given explicitly: inferring requirements starts a subprocess that imports everything.
            pip_requirements=[f"cxr-privacy=={__version__}", f"torch=={torch.__version__.split('+')[0]}"],
            registered_model_name=registered_name,
        )
    return info.model_uri
