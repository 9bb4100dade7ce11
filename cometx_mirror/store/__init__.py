"""The store: immutable content-addressed objects, refs, reflog and lock."""
from .mirror import Mirror, MirrorError, Snapshot  # noqa: F401
from .objects import ObjectError, ObjectStore  # noqa: F401
