"""The ``synthesize`` stage: generate the synthetic cohort, streaming and in parallel.

Output layout under ``out_dir``::

    dataset/                      what a hospital would hand over (identifying, noisy)
      dicom/<xx>/<image>.dcm      one DICOM file per image, PACS-export-like, plus off-scope/broken files
      Data_Entry_2017.csv         labels in the ChestX-ray14 format, text-mining noise applied
      reread.csv                  a subset re-read by simulated radiologists (one row per reader and image)
    answer_key/                   kept apart: the ground truth nobody gets in real life
      images.parquet              true patient, true and mined labels, nuisance and encoding per image
      patients.parquet            per-patient anatomy summary and distinctive features
      files.parquet               every file written and what ingest should make of it
      readers.json                each simulated radiologist's sensitivity and specificity
      masks/shard-NNNNN.npz       lung and heart masks (bit 1 right lung, 2 left lung, 4 heart)

Patients are independent work units: patient ``i`` draws everything from ``default_rng([seed, i])``, so the
output does not depend on the number of workers, and files are byte-identical for the same seed and params.
Only per-image metadata rows and one mask shard at a time are held in memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrpriv.synth.acquisition import sample_acquisition
from cxrpriv.synth.anatomy import PatientAnatomy, sample_anatomy
from cxrpriv.synth.config import BROKEN_KINDS, TRANSFER_SYNTAXES, SynthesizeConfig
from cxrpriv.synth.dicom_writer import (
    PatientStudyHeader,
    PixelEncoding,
    burn_in_text,
    derive_uid,
    write_off_scope_file,
    write_radiograph,
)
from cxrpriv.synth.findings import FindingSites, sample_sites
from cxrpriv.synth.label_noise import ReaderProfile, apply_text_mining_noise, reread, sample_readers
from cxrpriv.synth.naive_attack import AttackResult, pair_attack, thumbnail
from cxrpriv.synth.people import OPERATORS, PHYSICIANS, SITES, Person, sample_person, study_time
from cxrpriv.synth.render import render_image
from cxrpriv.synth.stats import (
    DATA_ENTRY_COLUMNS,
    FINDINGS,
    CohortStats,
    NoiseRate,
    load_cohort_stats,
    load_label_noise,
    load_lung_shape_model,
)
from cxrpriv.synth.timeline import PatientTimeline, TimelineSampler, labels_to_string

log = logging.getLogger(__name__)

LABEL_COLUMNS = list(DATA_ENTRY_COLUMNS)
# Patients whose thumbnails feed the naive attacker: a fixed-size random subset keeps memory flat.
ATTACK_PATIENTS = 800
PREVIEW_PATIENTS = 5


@dataclass
class PatientOutput:
    image_rows: list[dict[str, Any]]
    label_rows: list[dict[str, Any]]
    reread_rows: list[dict[str, Any]]
    file_rows: list[dict[str, Any]]
    patient_row: dict[str, Any]
    masks: list[tuple[str, np.ndarray]]
    thumbs: list[np.ndarray] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)


@dataclass(frozen=True)
class Preview:
    """A few rendered images of the first patients, for the report's example grid."""

    patient: int
    follow_up: int
    image: np.ndarray
    labels: str


@dataclass(frozen=True)
class CohortSummary:
    out_dir: Path
    metrics: dict[str, Any]
    n_images: int
    n_files: int
    attack: AttackResult | None
    previews: list[Preview]
    images_per_patient: np.ndarray


@dataclass(frozen=True)
class _PatientDraws:
    """What is drawn once per patient and shared by the films of all their studies."""

    index: int
    timeline: PatientTimeline
    anatomy: PatientAnatomy
    sites: FindingSites
    person: Person
    rng: np.random.Generator  # the patient's stream, drawn from film after film in study order


class _Worker:
    """Per-process state: statistics and models loaded once, then one patient per call."""

    def __init__(self, config: SynthesizeConfig, dicom_dir: Path) -> None:
        self.config = config
        self.dicom_dir = dicom_dir
        self.stats = load_cohort_stats()
        self.shape_model = load_lung_shape_model()
        self.noise = load_label_noise()
        self.sampler = TimelineSampler(
            self.stats, config.max_images_per_patient, config.min_finding_prevalence
        )
        self.readers = sample_readers(config.n_readers, np.random.default_rng([config.seed, 1 << 30]))
        mix = config.transfer_syntax_mix
        self.syntaxes = [s for s in TRANSFER_SYNTAXES if mix.get(s, 0) > 0]
        weights = np.array([mix[s] for s in self.syntaxes], dtype=float)
        self.syntax_p = weights / weights.sum()

    def patient(self, index: int) -> PatientOutput:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index])
        timeline = self.sampler.sample(rng)
        anatomy = sample_anatomy(rng, self.shape_model, timeline.sex, cfg.anatomy_variability)
        sites = sample_sites(rng)
        person = sample_person(rng, timeline.sex, timeline.studies[0].age_years)
        clean = np.stack([s.labels for s in timeline.studies])
        mined = apply_text_mining_noise(clean, self.noise, rng) if cfg.label_noise else clean
        out = PatientOutput([], [], [], [], _patient_row(index, timeline, anatomy, sites), [])
        patient = _PatientDraws(index, timeline, anatomy, sites, person, rng)
        for k, study in enumerate(timeline.studies):
            self._image(patient, k, study, mined[k], out)
        return out

    def _image(
        self, patient: _PatientDraws, k: int, study: Any, mined: np.ndarray, out: PatientOutput
    ) -> None:
        """Film ``k`` of a patient (their ``study``, its text-mined labels ``mined``), appended to ``out``."""
        cfg = self.config
        index, timeline, anatomy, sites = patient.index, patient.timeline, patient.anatomy, patient.sites
        person, rng = patient.person, patient.rng
        acq = sample_acquisition(rng, cfg, study.view, study.days_from_first / 365.25)
        image, mask = render_image(anatomy, acq, study.labels, sites, size=cfg.image_size, rng=rng)
        image_id = image_index(cfg.seed, index, k)
        site = SITES[person.home_site if rng.random() < 0.85 else int(rng.integers(len(SITES)))]
        date = person.first_study + dt.timedelta(days=study.days_from_first)
        header = PatientStudyHeader(
            patient_name=person.name,
            patient_id=person.patient_id,
            birth_date=person.birth_date,
            sex=timeline.sex,
            age_years=int(study.age_years),
            accession_number=f"A{rng.integers(10**9, 10**10)}",
            institution_name=site.institution,
            institution_address=site.address,
            referring_physician=PHYSICIANS[rng.integers(len(PHYSICIANS))],
            performing_physician=PHYSICIANS[rng.integers(len(PHYSICIANS))],
            operator_name=OPERATORS[rng.integers(len(OPERATORS))],
            station_name=site.station,
            study_date=date,
            study_time=study_time(rng),
            study_description=f"XR CHEST {study.view}",
            study_instance_uid=derive_uid(cfg.seed, index, k, "study"),
            series_instance_uid=derive_uid(cfg.seed, index, k, "series"),
            sop_instance_uid=derive_uid(cfg.seed, index, k, "sop"),
            series_number=1,
            instance_number=1,
            view_position=study.view,
            modality=site.modality,
            manufacturer=site.manufacturer,
            model_name=site.model,
            device_serial_number=site.serial_number,
            pixel_spacing_mm=round(site.pixel_spacing_mm * 2048 / cfg.image_size, 4),
        )
        burned = rng.random() < cfg.burned_text_fraction
        if burned:
            lines = [person.name.replace("^", " "), f"ID {person.patient_id}", date.strftime("%d.%m.%Y")]
            corner = ("top_left", "bottom_left", "bottom_right")[rng.integers(3)]
            image = burn_in_text(image, lines, corner)
            flag = None if rng.random() < cfg.burned_flag_missing_fraction else "YES"
        else:
            flag = ("NO", None)[rng.integers(2)]
        syntax = str(self.syntaxes[rng.choice(len(self.syntaxes), p=self.syntax_p)])
        photometric = "MONOCHROME1" if rng.random() < cfg.monochrome1_fraction else "MONOCHROME2"
        # DX requires an identity Modality LUT; CR vendors use varied rescales.
        slope, intercept = (1.0, 0.0)
        if site.modality == "CR" and rng.random() < 0.5:
            slope, intercept = float(rng.choice([0.5, 2.0])), float(rng.choice([0.0, 100.0]))
        encoding = PixelEncoding(
            photometric=photometric,
            bits_stored=site.bits_stored,
            rescale_slope=slope,
            rescale_intercept=intercept,
            voi=site.voi,
            transfer_syntax=syntax,
            burned_in_annotation=flag,
        )
        rel = Path("dicom") / image_id[:2] / f"{image_id}.dcm"
        (self.dicom_dir.parent / rel).parent.mkdir(parents=True, exist_ok=True)
        write_radiograph(self.dicom_dir.parent / rel, image, header, encoding)

        in_attack = index < ATTACK_PATIENTS
        if in_attack:
            out.thumbs.append(thumbnail(image))
        out.masks.append((image_id, mask))
        if index < PREVIEW_PATIENTS and k < PREVIEW_PATIENTS:
            out.previews.append(Preview(index, k, image[::2, ::2].copy(), labels_to_string(study.labels)))
        out.image_rows.append(
            {
                "image_index": image_id,
                "patient": index,
                "follow_up": k,
                "age": study.age_years,
                "sex": timeline.sex,
                **acq.as_record(),
                **{f"true_{f}": int(v) for f, v in zip(FINDINGS, study.labels, strict=True)},
                **{f"mined_{f}": int(v) for f, v in zip(FINDINGS, mined, strict=True)},
                "burned_text": burned,
                "burned_in_annotation_flag": flag or "",
                "photometric": photometric,
                "bits_stored": site.bits_stored,
                "transfer_syntax": syntax,
                "modality": site.modality,
                "site": SITES.index(site),
                "in_naive_attack": in_attack,
            }
        )
        out.file_rows.append(
            {
                "path": rel.as_posix(),
                "image_index": image_id,
                "patient": index,
                "expected": "quarantine" if burned else "ingest",
                "reason": "burned-in text" if burned else "",
            }
        )
        out.label_rows.append(
            {
                "Image Index": f"{image_id}.dcm",
                "Finding Labels": labels_to_string(mined),
                "Follow-up #": k,
                "Patient ID": int(person.patient_id),
                "Patient Age": int(study.age_years),
                "Patient Gender": timeline.sex,
                "View Position": study.view,
                "OriginalImage[Width": cfg.image_size,
                "Height]": cfg.image_size,
                "OriginalImagePixelSpacing[x": header.pixel_spacing_mm,
                "y]": header.pixel_spacing_mm,
            }
        )
        if rng.random() < cfg.reread_fraction:
            readings = reread(study.labels[None, :], self.readers, rng)[:, 0]
            for reader, row in zip(self.readers, readings, strict=True):
                out.reread_rows.append(
                    {
                        "Image Index": f"{image_id}.dcm",
                        "Reader": reader.reader_id,
                        **{f: int(x) for f, x in zip(FINDINGS, row, strict=True)},
                    }
                )


def image_index(seed: int, patient: int, follow_up: int) -> str:
    """An opaque image key: unrelated to the patient's identity and to the order of generation."""
    return hashlib.sha256(f"cxrpriv-image:{seed}:{patient}:{follow_up}".encode()).hexdigest()[:16]


def _patient_row(index: int, timeline: PatientTimeline, anatomy: PatientAnatomy, sites: FindingSites) -> dict:
    feats = anatomy.features
    return {
        "patient": index,
        "sex": timeline.sex,
        "n_images": len(timeline.studies),
        "age_first": timeline.studies[0].age_years,
        "lung_box_width": anatomy.lung_box_width,
        "heart_rx": anatomy.heart_radii[0],
        "heart_ry": anatomy.heart_radii[1],
        "rib_spacing": anatomy.ribs.spacing,
        "n_clips": len(feats.clips),
        "pacemaker": feats.pacemaker is not None,
        "healed_fracture": feats.healed_fracture is not None,
        "sternotomy_wires": feats.sternotomy_wires,
    }


_WORKER: _Worker | None = None


def _init_worker(config: SynthesizeConfig, dicom_dir: Path) -> None:
    global _WORKER
    _WORKER = _Worker(config, dicom_dir)


def _run_patient(index: int) -> PatientOutput:
    assert _WORKER is not None
    return _WORKER.patient(index)


def _patients(config: SynthesizeConfig, dicom_dir: Path, progress: bool) -> Iterator[PatientOutput]:
    workers = config.workers or os.cpu_count() or 1
    bar = tqdm(total=config.n_patients, desc="synthesize", unit="patient", disable=not progress)
    try:
        if workers == 1:
            _init_worker(config, dicom_dir)
            for i in range(config.n_patients):
                yield _run_patient(i)
                bar.update()
            return
        # fork: workers inherit loaded modules; the stage never holds threads or CUDA state at this point.
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(config, dicom_dir)) as pool:
            for result in pool.imap(_run_patient, range(config.n_patients), chunksize=4):
                yield result
                bar.update()
    finally:
        bar.close()


def synthesize(config: SynthesizeConfig, out_dir: Path, progress: bool = True) -> CohortSummary:
    """Generate the cohort under ``out_dir`` (which must be empty or absent) and return its metrics."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: output directory is not empty; remove it or choose another")
    dataset, key = out_dir / "dataset", out_dir / "answer_key"
    dicom_dir = dataset / "dicom"
    (key / "masks").mkdir(parents=True)
    dicom_dir.mkdir(parents=True)

    images: list[dict] = []
    labels: list[dict] = []
    rereads: list[dict] = []
    files: list[dict] = []
    patients: list[dict] = []
    thumbs: list[np.ndarray] = []
    previews: list[Preview] = []
    attack_patients: list[int] = []
    shard: list[tuple[str, np.ndarray]] = []
    n_shards = 0
    for result in _patients(config, dicom_dir, progress):
        images += result.image_rows
        labels += result.label_rows
        rereads += result.reread_rows
        files += result.file_rows
        patients.append(result.patient_row)
        thumbs += result.thumbs
        previews += result.previews
        attack_patients += [result.patient_row["patient"]] * len(result.thumbs)
        shard += result.masks
        if len(shard) >= config.mask_shard_size:
            _write_mask_shard(key / "masks", n_shards, shard[: config.mask_shard_size])
            shard = shard[config.mask_shard_size :]
            n_shards += 1
    if shard:
        _write_mask_shard(key / "masks", n_shards, shard)

    files += _write_off_scope(config, dicom_dir, labels)
    _write_tables(
        config, dataset, key, images=images, labels=labels, rereads=rereads, files=files, patients=patients
    )
    attack = None
    try:
        attack = pair_attack(
            np.stack(thumbs),
            np.array(attack_patients),
            config.naive_attack_pairs,
            np.random.default_rng([config.seed, 2]),
        )
    except ValueError as exc:  # a cohort this small has no same-patient pair: nothing to measure
        log.warning("%s", exc)
    metrics = cohort_metrics(
        pd.DataFrame(images),
        pd.DataFrame(patients),
        naive_auc=attack.auc if attack else None,
        stats=load_cohort_stats(),
        noise=load_label_noise(),
        cap=config.max_images_per_patient,
    )
    metrics["n_files"] = len(files)
    metrics["n_reread_images"] = len({r["Image Index"] for r in rereads})
    return CohortSummary(
        out_dir=out_dir,
        metrics=metrics,
        n_images=len(images),
        n_files=len(files),
        attack=attack,
        previews=previews,
        images_per_patient=np.array([p["n_images"] for p in patients]),
    )


def _write_mask_shard(masks_dir: Path, number: int, items: list[tuple[str, np.ndarray]]) -> None:
    ids = np.array([i for i, _ in items])
    stack = np.stack([m for _, m in items])
    # np.savez_compressed writes zip entries with the current time; write through a fixed-time zip instead.
    import io
    import zipfile

    path = masks_dir / f"shard-{number:05d}.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in (("image_index", ids), ("masks", stack)):
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _write_off_scope(config: SynthesizeConfig, dicom_dir: Path, labels: list[dict]) -> list[dict]:
    """Files that ingest must reject, with the reason it should give. Chest ones also get a labels row."""
    rows = []
    for j, kind in enumerate(k for k in BROKEN_KINDS for _ in range(config.broken_per_kind)):
        index = config.n_patients + j
        rng = np.random.default_rng([config.seed, index])
        person = sample_person(rng, "F" if j % 2 else "M", float(rng.uniform(30, 80)))
        site = SITES[j % len(SITES)]
        image_id = image_index(config.seed, index, 0)
        header = PatientStudyHeader(
            patient_name=person.name,
            patient_id=person.patient_id,
            birth_date=person.birth_date,
            sex="F" if j % 2 else "M",
            age_years=int((person.first_study - person.birth_date).days / 365.25),
            accession_number=f"A{rng.integers(10**9, 10**10)}",
            institution_name=site.institution,
            institution_address=site.address,
            referring_physician=PHYSICIANS[j % len(PHYSICIANS)],
            performing_physician=PHYSICIANS[(j + 1) % len(PHYSICIANS)],
            operator_name=OPERATORS[j % len(OPERATORS)],
            station_name=site.station,
            study_date=person.first_study,
            study_time=study_time(rng),
            study_description="XR",
            study_instance_uid=derive_uid(config.seed, index, "study"),
            series_instance_uid=derive_uid(config.seed, index, "series"),
            sop_instance_uid=derive_uid(config.seed, index, "sop"),
            series_number=1,
            instance_number=1,
            view_position="PA",
            modality=site.modality,
            manufacturer=site.manufacturer,
            model_name=site.model,
            device_serial_number=site.serial_number,
            pixel_spacing_mm=0.2,
        )
        rel = Path("dicom") / image_id[:2] / f"{image_id}.dcm"
        (dicom_dir.parent / rel).parent.mkdir(parents=True, exist_ok=True)
        reason = write_off_scope_file(dicom_dir.parent / rel, kind, header, rng, config.image_size)
        rows.append(
            {
                "path": rel.as_posix(),
                "image_index": image_id,
                "patient": index,
                "expected": "reject",
                "reason": f"{kind}: {reason}",
            }
        )
        if kind in ("truncated", "missing_pixel_data"):
            labels.append(
                {
                    "Image Index": f"{image_id}.dcm",
                    "Finding Labels": "No Finding",
                    "Follow-up #": 0,
                    "Patient ID": int(person.patient_id),
                    "Patient Age": header.age_years,
                    "Patient Gender": header.sex,
                    "View Position": "PA",
                    "OriginalImage[Width": config.image_size,
                    "Height]": config.image_size,
                    "OriginalImagePixelSpacing[x": 0.2,
                    "y]": 0.2,
                }
            )
    return rows


def _write_tables(
    config: SynthesizeConfig,
    dataset: Path,
    key: Path,
    *,
    images: list[dict],
    labels: list[dict],
    rereads: list[dict],
    files: list[dict],
    patients: list[dict],
) -> None:
    pd.DataFrame(labels, columns=LABEL_COLUMNS).to_csv(dataset / "Data_Entry_2017.csv", index=False)
    pd.DataFrame(rereads, columns=["Image Index", "Reader", *FINDINGS]).to_csv(
        dataset / "reread.csv", index=False
    )
    for name, rows in (("images", images), ("patients", patients), ("files", files)):
        pd.DataFrame(rows).to_parquet(key / f"{name}.parquet", index=False)
    readers = sample_readers(config.n_readers, np.random.default_rng([config.seed, 1 << 30]))
    (key / "readers.json").write_text(json.dumps(_readers_json(readers), indent=1, sort_keys=True) + "\n")


def _readers_json(readers: list[ReaderProfile]) -> dict:
    return {
        r.reader_id: {
            "sensitivity": dict(zip(FINDINGS, np.round(r.sensitivity, 4).tolist(), strict=True)),
            "specificity": dict(zip(FINDINGS, np.round(r.specificity, 4).tolist(), strict=True)),
        }
        for r in readers
    }


def cohort_metrics(
    images: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    naive_auc: float | None,
    stats: CohortStats,
    noise: dict[str, NoiseRate],
    cap: int,
) -> dict[str, Any]:
    """Cohort statistics beside the real table's, and realized label-noise rates beside the calibration."""
    per_patient = np.asarray(stats.images_per_patient.values)
    real_capped = float((np.minimum(per_patient, cap) * stats.images_per_patient.probabilities).sum())
    metrics: dict[str, Any] = {
        "n_patients": len(patients),
        "n_images": len(images),
        "naive_attacker_auc": None if naive_auc is None else round(naive_auc, 4),
        "images_per_patient_mean": round(float(patients["n_images"].mean()), 4),
        "images_per_patient_mean_real": round(stats.n_images / stats.n_patients, 4),
        "images_per_patient_mean_real_capped": round(real_capped, 4),
        "ap_fraction": round(float((images["view"] == "AP").mean()), 4),
        "ap_fraction_real": round(stats.view_position["AP"], 4),
        "male_fraction": round(float((patients["sex"] == "M").mean()), 4),
        "male_fraction_real": round(stats.sex["M"], 4),
        "prevalence": {},
        "label_noise": {},
    }
    for f in FINDINGS:
        true, mined = images[f"true_{f}"].to_numpy(), images[f"mined_{f}"].to_numpy()
        metrics["prevalence"][f] = {
            "true": round(float(true.mean()), 5),
            "mined": round(float(mined.mean()), 5),
            "real": round(stats.prevalence[f], 5),
        }
        tp = int(((true == 1) & (mined == 1)).sum())
        fp = int(((true == 0) & (mined == 1)).sum())
        metrics["label_noise"][f] = {
            "sensitivity": round(tp / max(int(true.sum()), 1), 4),
            "false_positive_rate": round(fp / max(int((true == 0).sum()), 1), 5),
            "target_sensitivity": round(noise[f].sensitivity, 4),
            "target_false_positive_rate": round(noise[f].false_positive_rate, 5),
        }
    return metrics
