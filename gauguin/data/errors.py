"""Errors raised by ``gauguin.data``; every message names the file or folder and the fix."""


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not where they were looked for."""


class BadDataError(ValueError):
    """Data files exist but cannot be used (corrupt, truncated, wrong format or layout)."""
