"""Register a trained network in MLflow as a model that rebuilds itself from a state dict.

MLflow's PyTorch flavour pickles whole modules (or exports a fixed-batch graph); we keep weights as a state
dict, so the registered model is a pyfunc whose artifacts are the state dict and the builder's arguments.
Loading calls the builder (a ``module:function`` path in this library) and ``load_state_dict`` with
``weights_only=True``. ``predict`` takes float images [n, 1, H, W] in [0, 1] and returns the module's output
(its ``predict_images`` method's, where it has one; the verifier's forward takes pairs [n, 2, H, W]); the
model's signature says so, with the output shape of
one dry forward pass.

Each registered version has a description (what the model is, its training set size, its key metric, from
the stage) and the tag ``cxrpriv.model_digest`` (:func:`cxrpriv.training.artifacts.model_digest`); the
release stage sets the alias ``released`` on the versions whose digests made a release that passed its gate
(:func:`alias_released_models`).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrpriv import __version__

MODEL_DIGEST_TAG = "cxrpriv.model_digest"
RELEASED_ALIAS = "released"


@dataclass(frozen=True)
class ModelCard:
    """What a registered version says about itself: ``description`` (what the model is, its training set
    size, its key metric), ``digest`` (its files' content digest), ``input_size`` (H = W of its input) and
    ``input_channels`` (1: films; 2: the verifier's forward, which scores pairs of films stacked)."""

    description: str
    digest: str
    input_size: int
    input_channels: int = 1


def build_from_spec(spec: Mapping[str, Any]) -> torch.nn.Module:
    """``{"builder": "package.module:function", "kwargs": {...}}`` -> the (untrained) module."""
    module_name, _, function = str(spec["builder"]).partition(":")
    if not module_name.startswith("cxrpriv."):
        raise ValueError(
            f"refusing to build a model from {spec['builder']!r}: only cxrpriv builders are allowed"
        )
    return getattr(importlib.import_module(module_name), function)(**spec.get("kwargs", {}))


def _python_model_class() -> type:
    # imported late: importing the library must not import MLflow (and by name: mypy does not resolve a
    # base class through a function-local `import mlflow.pyfunc`)
    from mlflow.pyfunc import PythonModel

    class StateDictModel(PythonModel):
        def load_context(self, context: Any) -> None:
            spec = json.loads(Path(context.artifacts["spec"]).read_text())
            self.module = build_from_spec(spec)
            weights = torch.load(context.artifacts["state_dict"], map_location="cpu", weights_only=True)
            self.module.load_state_dict(weights)
            self.module.eval()

        # No type hints here: MLflow would read them as a (wrong) input schema.
        def predict(self, context, model_input, params=None):  # noqa: ANN001
            return serve(self.module, np.asarray(model_input, dtype=np.float32))

    return StateDictModel


def serve(module: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """What the registered model returns for float ``images`` [n, 1, H, W]: a module whose forward returns
    more than its images (the anonymizer: warped films and their displacement) says what to serve with a
    ``predict_images`` method."""
    forward = getattr(module, "predict_images", module)
    with torch.no_grad():
        return forward(torch.as_tensor(images)).numpy()


def model_signature(spec: Mapping[str, Any], input_size: int, channels: int = 1) -> Any:
    """The MLflow signature: float32 images [-1, channels, size, size] in, the output of one dry forward
    pass of the (untrained) module on two blank inputs, with the batch axis free."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    module = build_from_spec(spec).eval()
    blank = np.zeros((2, channels, input_size, input_size), dtype=np.float32)
    out = serve(module, blank)
    images = TensorSpec(np.dtype(np.float32), (-1, channels, input_size, input_size))
    output = TensorSpec(out.dtype, (-1, *out.shape[1:]))
    return ModelSignature(inputs=Schema([images]), outputs=Schema([output]))


def log_state_dict_model(
    state_dict_path: Path,
    spec: Mapping[str, Any],
    registered_name: str | None,
    card: ModelCard,
    artifact_name: str = "model",
) -> str:
    """Log into the active MLflow run with its signature (and register under ``registered_name``, the
    version described and tagged by ``card``); returns the model URI."""
    import mlflow.pyfunc

    signature = model_signature(
        spec, card.input_size, card.input_channels
    )  # fails here, not at load time, on a bad spec
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(dict(spec), indent=2))
        info = mlflow.pyfunc.log_model(
            name=artifact_name,
            python_model=_python_model_class()(),
            artifacts={"state_dict": str(state_dict_path), "spec": str(spec_path)},
            # Given explicitly: inferring requirements starts a subprocess that imports everything.
            pip_requirements=[f"cxr-privacy=={__version__}", f"torch=={torch.__version__.split('+')[0]}"],
            signature=signature,
            registered_model_name=registered_name,
        )
    if registered_name is not None and info.registered_model_version is not None:
        _describe_version(registered_name, str(info.registered_model_version), card)
    return info.model_uri


def _describe_version(name: str, version: str, card: ModelCard) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    client.update_model_version(name, version, description=card.description)
    client.set_model_version_tag(name, version, MODEL_DIGEST_TAG, card.digest)
    if not client.get_registered_model(name).description:
        # The model's own description: what it is (the first sentence of a version's).
        client.update_registered_model(name, description=card.description.split(". ", 1)[0])


def alias_released_models(digests: Mapping[str, str], alias: str = RELEASED_ALIAS) -> list[dict[str, str]]:
    """Set ``alias`` on the newest registered version of every model whose digest is in ``digests`` (kind
    -> model digest, e.g. {"anonymizer": ...}); returns one record per version aliased (kind, name, version,
    alias, digest) for the release manifest. A digest no version carries (the model was not registered) is
    skipped."""
    import mlflow

    client = mlflow.MlflowClient()
    records = []
    for kind, digest in sorted(digests.items()):
        if "'" in digest:
            raise ValueError(f"model digest {digest!r}: not a digest")
        versions = client.search_model_versions(filter_string=f"tags.`{MODEL_DIGEST_TAG}` = '{digest}'")
        newest: dict[str, Any] = {}
        for version in versions:
            if version.name not in newest or int(version.version) > int(newest[version.name].version):
                newest[version.name] = version
        for name, version in sorted(newest.items()):
            client.set_registered_model_alias(name, alias, version.version)
            records.append(
                {
                    "kind": kind,
                    "name": name,
                    "version": str(version.version),
                    "alias": alias,
                    "digest": digest,
                }
            )
    return records
