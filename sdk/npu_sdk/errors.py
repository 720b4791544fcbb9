"""The SDK's one error hierarchy. Messages say what, where, and what to do next."""


class NpuError(Exception):
    """Base of every error the SDK raises on purpose."""


class ModelError(NpuError):
    """The input model cannot be read or compiled."""


class UnsupportedOpError(ModelError):
    """One or more ops are outside what the compiler supports.

    `problems` lists (op_index, op_name, reason) for every offending op, so a
    user sees them all at once instead of fixing one per run.
    """

    def __init__(self, problems, source="model",
                 hint="Supported ops: see `npu compile --help` or docs/blob-format.md."):
        self.problems = list(problems)
        lines = ["%s: %d unsupported op(s):" % (source, len(self.problems))]
        for index, name, reason in self.problems:
            lines.append("  op #%d %s: %s" % (index, name, reason))
        lines.append(hint)
        super().__init__("\n".join(lines))


class BlobFormatError(NpuError):
    """A .npb blob is malformed, truncated, of an unknown version or fails its checksums."""


class LinkError(NpuError):
    """The serial link failed: port missing, I/O error."""


class LinkTimeout(LinkError):
    """The board did not answer in time."""


class BoardBusy(LinkError):
    """The board is working on another request (which it did not run), or was still working
    on this one (`ours`) when the wait ran out."""

    def __init__(self, message, ours=False):
        super().__init__(message)
        self.ours = ours


class PreflightError(NpuError):
    """The host refused to flash before sending anything: `kind` is "flash", "ram", "op" or
    "signature" (a keyed board and no key)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class BoardError(NpuError):
    """The board answered with an error frame; `code` is the board's error code."""

    def __init__(self, code, message):
        self.code = code
        self.board_message = message
        super().__init__("board error %d: %s" % (code, message))


class ModelWarning(UserWarning):
    """The model breaks the TFLite schema in a way TFLite Micro tolerates; the SDK reads it
    as TFLite Micro does and says so (the CLI prints it as one `warning:` line)."""
