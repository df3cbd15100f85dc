"""The ``preprocess`` stage: ingest, de-identification and normalization of chest radiographs.

Modules: ``config`` (PreprocessConfig), ``keys`` (the secret key and keyed derivations), ``sources`` (folder
and S3 listing and reads), ``decode`` (pixel decoding and grayscale LUTs), ``screening`` (scope rules and
the burned-in text detector), ``deid`` (PS3.15 Annex E header de-identification), ``normalize``,
``labels`` (the ChestX-ray14 labels table), ``splits``, ``shards`` (writer and :class:`ShardReader`),
``validation`` (Great Expectations), ``process`` (one file), ``stage`` (the stage), ``run`` (metrics, plots,
MLflow), ``command`` (the CLI spec).
"""
