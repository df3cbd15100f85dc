"""What every stage shares with the CLI and the KFP components: the stage contract (:mod:`.contract`:
:class:`~.contract.StageContext`, :class:`~.contract.StageCommand` and the shared options) and the table of
stages (:mod:`.registry`). See docs/architecture.md, "Stages"."""
