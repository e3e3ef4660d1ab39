"""Errors raised by ``gauguin.data``; every message names the file or folder and the fix."""


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not where they were looked for."""


class BadDataError(ValueError):
    """Data files exist but cannot be used (corrupt, truncated, wrong format or layout)."""


class LabelMapError(BadDataError):
    """Label maps hold ids the dataset does not accept, or cannot be used; raised once for all of them
    when the dataset is built. ``files`` lists every bad label map (the message shows the first ones),
    ``check`` is the :class:`~gauguin.data.semantic.LabelCheck` of the scan."""

    def __init__(self, message: str, files=(), check=None) -> None:
        super().__init__(message)
        self.files = list(files)
        self.check = check
