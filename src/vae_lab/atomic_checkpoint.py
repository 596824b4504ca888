"""Where the saved config of a run started before 2026-12-04 finds its checkpoint writer (`trainer.plugins`), so
`resume=` still continues it; new runs name `vae_lab.checkpoints.AtomicCheckpointIO`."""

from vae_lab.checkpoints import AtomicCheckpointIO  # noqa: F401
