"""The container image every component runs in (built from the repository's Dockerfile)."""

import os

# Override at compile time to point at your registry: CXRPRIV_IMAGE=registry.example.org/cxrpriv:0.1.0
IMAGE = os.environ.get("CXRPRIV_IMAGE", "ghcr.io/cxr-privacy/cxrpriv:0.1.0")
