"""``python -m pipelines submit|schedule``: see :mod:`pipelines.client` (compiling alone:
``python -m pipelines.cxr_privacy``)."""

from pipelines.client import main

raise SystemExit(main())
