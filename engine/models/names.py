"""The built-in extractors' names, importable without torch (the daemon's config validates against them)."""

BUILTIN_EXTRACTORS: tuple[str, ...] = ("sface", "dlib", "sface-robust", "dlib-robust")
