"""The cxr-privacy KFP pipeline; its parameter defaults come from params.yaml under a profile.

Compile: ``python -m pipelines.cxr_privacy --profile default --out pipelines/cxr_privacy.default.yaml``.
The same pipeline function runs under ``kfp.local`` in tests and on a Kubeflow cluster in production.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes

from components.anonymize.component import anonymize
from components.evaluate.component import evaluate
from components.preprocess.component import preprocess
from components.priors.component import priors
from components.release.component import release
from components.synthesize.component import synthesize
from components.train_anonymizer.component import train_anonymizer
from components.train_classifier.component import train_classifier
from components.train_reid.component import train_reid
from cxrpriv.config import DEFAULT_PARAMS_FILE, read_params, stage_values
from cxrpriv.stages.registry import pipeline_stage_names
from pipelines.resources import cpu_task, gpu_task

# Every pipeline stage of the registry has a component and a `<stage>_config` pipeline parameter (a row with
# in_pipeline=False, a stage not wired in yet, has neither here).
STAGES = pipeline_stage_names()
# The de-identification key: a Kubernetes secret in the pipeline's namespace, given to the preprocess step
# as $CXRPRIV_DEID_KEY (kubectl create secret generic cxrpriv-deid-key --from-literal=key=<64 hex digits>).
DEID_KEY_SECRET = "cxrpriv-deid-key"
DEID_KEY_SECRET_KEY = "key"


def stage_defaults(params_file: Path = DEFAULT_PARAMS_FILE, profile: str | None = None) -> dict[str, Any]:
    """Per-stage parameter JSON strings and the profile name, as the pipeline's default arguments."""
    params = read_params(params_file)
    profile = profile or params.get("profile", "default")
    values = {
        f"{stage}_config": json.dumps(stage_values(params, stage, profile), sort_keys=True)
        for stage in STAGES
    }
    # The evaluate step retrains attacker families named by train_reid profiles: their configs, resolved here.
    families = stage_values(params, "evaluate", profile)["attacker_profiles"]
    attackers = {name: stage_values(params, "train_reid", name) for name in families}
    return {"profile": profile, **values, "evaluate_attackers": json.dumps(attackers, sort_keys=True)}


def build_pipeline(params_file: Path = DEFAULT_PARAMS_FILE, profile: str | None = None) -> Any:
    defaults = stage_defaults(params_file, profile)

    @dsl.pipeline(name="cxr-privacy", description="Privacy-preserving release of chest radiograph datasets.")
    def cxr_privacy(
        profile: str = defaults["profile"],
        synthesize_config: str = defaults["synthesize_config"],
        priors_config: str = defaults["priors_config"],
        preprocess_config: str = defaults["preprocess_config"],
        train_reid_config: str = defaults["train_reid_config"],
        train_classifier_config: str = defaults["train_classifier_config"],
        train_anonymizer_config: str = defaults["train_anonymizer_config"],
        anonymize_config: str = defaults["anonymize_config"],
        evaluate_config: str = defaults["evaluate_config"],
        evaluate_attackers: str = defaults["evaluate_attackers"],
        release_config: str = defaults["release_config"],
        # Local and test runs only: without the secret, ingest with a random key (never for real data; the
        # release step then cannot run: it needs the key the dataset was ingested with).
        throwaway_key: bool = False,
        # Release although the decision failed (recorded in the release manifest); empty: never.
        force_release_reason: str = "",
    ) -> None:
        cohort = synthesize(
            config_json=synthesize_config, profile=profile, pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        )
        cpu_task(cohort, cpus="2", memory="8G")
        label_priors = priors(
            config_json=priors_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            cohort=cohort.outputs["cohort"],
        )
        cpu_task(label_priors, cpus="2", memory="4G")
        ingest = preprocess(
            config_json=preprocess_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            throwaway_key=throwaway_key,
            cohort=cohort.outputs["cohort"],
        )
        cpu_task(ingest, cpus="2", memory="8G")
        # optional: a missing secret then fails in the step with a message saying what to do (unless
        # throwaway_key), rather than as a pod that never starts.
        kubernetes.use_secret_as_env(
            ingest,
            secret_name=DEID_KEY_SECRET,
            secret_key_to_env={DEID_KEY_SECRET_KEY: "CXRPRIV_DEID_KEY"},
            optional=True,
        )
        verifier = train_reid(
            config_json=train_reid_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=ingest.outputs["dataset"],
        )
        gpu_task(verifier, gpus=1)
        classifier = train_classifier(
            config_json=train_classifier_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=ingest.outputs["dataset"],
            label_priors=label_priors.outputs["label_priors"],
            cohort=cohort.outputs["cohort"],  # the answer key: clean labels and masks
        )
        gpu_task(classifier, gpus=1)
        generator = train_anonymizer(
            config_json=train_anonymizer_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=ingest.outputs["dataset"],
            verifier=verifier.outputs["verifier"],
            classifier=classifier.outputs["classifier"],
            label_priors=label_priors.outputs["label_priors"],
        )
        gpu_task(generator, gpus=1)
        anonymized = anonymize(
            config_json=anonymize_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=ingest.outputs["dataset"],
            anonymizer=generator.outputs["anonymizer"],
        )
        gpu_task(anonymized, gpus=1)
        evaluation = evaluate(
            config_json=evaluate_config,
            attackers_json=evaluate_attackers,
            train_reid_json=train_reid_config,
            train_classifier_json=train_classifier_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=ingest.outputs["dataset"],
            anonymized=anonymized.outputs["anonymized"],
            verifier=verifier.outputs["verifier"],
            classifier=classifier.outputs["classifier"],
            label_priors=label_priors.outputs["label_priors"],
            cohort=cohort.outputs["cohort"],  # the answer key: clean test labels
        )
        gpu_task(evaluation, gpus=1)
        published = release(
            config_json=release_config,
            profile=profile,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            dataset=anonymized.outputs["anonymized"],
            evaluation=evaluation.outputs["evaluation"],
            report=evaluation.outputs["evaluation"],
            force_release_reason=force_release_reason,
        )
        cpu_task(published, cpus="2", memory="8G")
        kubernetes.use_secret_as_env(
            published,
            secret_name=DEID_KEY_SECRET,
            secret_key_to_env={DEID_KEY_SECRET_KEY: "CXRPRIV_DEID_KEY"},
            optional=True,
        )

    return cxr_privacy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile the cxr-privacy pipeline to KFP YAML.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE)
    parser.add_argument("--profile", default=None, help="Profile whose values become the defaults.")
    parser.add_argument(
        "--out", type=Path, default=None, help="Output YAML (default: pipelines/cxr_privacy.<profile>.yaml)."
    )
    args = parser.parse_args(argv)
    pipeline = build_pipeline(args.params, args.profile)
    profile = args.profile or read_params(args.params).get("profile", "default")
    out = args.out or Path("pipelines") / f"cxr_privacy.{profile}.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
