"""tfnas's expected errors and warnings, and the cause of a TensorFlow error.

`TfnasError` is a failure the user can fix (a corrupt file, a bad argument):
`tfnas` prints it as one `tfnas: error: ...` line; any other exception keeps
its traceback. `root_cause` finds the line of a TensorFlow error message that
says what went wrong, rather than the graph node where it happened.
"""

import json
import re
import warnings

MAX_REASON_LENGTH = 300

# "tensorflow.python.framework.errors_impl.InvalidArgumentError: Graph ..."
# at the start of a line: an exception's header in a traceback. Tracebacks
# print a class with its module unless it is a built-in one, whose names end
# like these; so "Received: ..." or "INVALID_ARGUMENT: ..." are not headers.
_EXCEPTION_HEADER = re.compile(
    r"^(?:(?:[A-Za-z_]\w*\.)+(?P<qualified>[A-Z]\w*)"
    r"|(?P<builtin>[A-Z]\w*(?:Error|Exception|Interrupt|Exit|Warning|StopIteration)))"
    r"(?::(?P<text> .*)?)?$")
# Lines of a TensorFlow message that locate an error instead of stating it.
_LOCATION_LINES = re.compile(
    r"^(\[\[.*\]\]|\[Op:.*\]|File \".*|Detected at node .*|Graph execution error:?"
    r"|Traceback \(most recent call last\):|\d+ successful operations\.?"
    r"|\d+ derived errors ignored\.?|\d+ root error\(s\) found\.?)$")
_TRAILING_LOCATION = re.compile(r"\s*(\[\[\{\{node [^\]]*\}\}\]\]|\[Op:[^\]]*\])\s*$")
_ERROR_INDEX = re.compile(r"^\(\d+\)\s+[A-Z_]+:\s*")
# Keras ends a layer's error with the call's arguments, after the cause.
_ARGUMENTS_SECTION = re.compile(r"^\s*(Call a|A)rguments received by ")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class TfnasError(Exception):
    """A failure with a known cause and a way out; `tfnas` prints one line."""


class CorruptFileError(TfnasError, ValueError):
    """A file tfnas reads (a trial, a project record, a checkpoint) is damaged.

    Args:
        path: The file.
        problem: What is wrong with it (e.g. the JSON decoder's message).
        way_out: What the user can do about it.
    """

    def __init__(self, path, problem, way_out):
        self.path = str(path)
        super().__init__(f"{self.path} is corrupt or unreadable ({problem}). {way_out}")


class InvalidRecordError(TfnasError, ValueError):
    """A record (project, architecture, latency table) that this tfnas cannot use."""


class SearchStopped(TfnasError, RuntimeError):
    """The search stopped after too many consecutive failed trials."""


class TfnasWarning(UserWarning):
    """Something was skipped or replaced; the command still did its job."""


def warn(message):
    """Issues a `TfnasWarning` (one `tfnas: warning: ...` line under the CLI)."""
    warnings.warn(message, TfnasWarning, stacklevel=2)


def one_line_warnings():
    """Shows `TfnasWarning`s as `tfnas: warning: ...` lines, others as before."""
    original = warnings.formatwarning
    if getattr(original, "tfnas_one_line", False):
        return

    def formatwarning(message, category, *args, **kwargs):
        if issubclass(category, TfnasWarning):
            return f"tfnas: warning: {message}\n"
        return original(message, category, *args, **kwargs)

    formatwarning.tfnas_one_line = True
    warnings.formatwarning = formatwarning


def read_json(path, way_out, expected=dict):
    """The JSON content of `path`.

    Raises:
        CorruptFileError: when the file is not valid JSON, or not a `expected`.
        OSError: when the file cannot be opened.
    """
    with open(path) as file:
        try:
            content = json.load(file)
        except (ValueError, UnicodeDecodeError) as error:
            raise CorruptFileError(path, f"not valid JSON: {error}", way_out) from error
    if not isinstance(content, expected):
        raise CorruptFileError(
            path, f"expected a JSON {expected.__name__}, found {type(content).__name__}",
            way_out)
    return content


def _shorten(text, limit=MAX_REASON_LENGTH):
    return text if len(text) <= limit else text[: limit - 3] + "..."


def root_cause(message):
    """The line of an error message (or a whole traceback) that states the cause.

    TensorFlow's errors end with the graph node that failed
    (`[[{{node compile_loss/...}}]]`) and hold the cause a few lines above
    ("Received a label value of 19 which is outside the valid range of
    [0, 10)."). Tracebacks, as KerasTuner stores them in `trial.message`,
    end with the exception that was raised last.

    Args:
        message: An exception's text, or a formatted traceback.

    Returns:
        "ErrorClass: cause" (the exception's class when the message names
        one), at most `MAX_REASON_LENGTH` characters; "unknown reason" for
        an empty message.
    """
    text = _ANSI_ESCAPE.sub("", str(message or ""))
    lines = [line.rstrip() for line in text.strip().splitlines()]
    name, body = None, lines
    for index in range(len(lines) - 1, -1, -1):
        header = _EXCEPTION_HEADER.match(lines[index])
        if header and lines[index] != "Traceback (most recent call last):":
            name = header["qualified"] or header["builtin"]
            body = [(header["text"] or "").strip()] + lines[index + 1:]
            break
    cause = None
    arguments = [i for i, line in enumerate(body) if _ARGUMENTS_SECTION.match(line)]
    for line in reversed(body[:arguments[0]] if arguments else body):
        line = _TRAILING_LOCATION.sub("", line.strip())
        if line and not _LOCATION_LINES.match(line):
            cause = _ERROR_INDEX.sub("", line)
            break
    if cause is None and name is None:
        return "unknown reason"
    return _shorten(f"{name}: {cause}" if name and cause else name or cause)


_CONSECUTIVE_FAILURES = re.compile(
    r"^Number of consecutive failures exceeded the limit of (?P<limit>\d+)\.")


def search_stopped(error):
    """KerasTuner's stop after consecutive failed trials, as a `SearchStopped`.

    Args:
        error: The `RuntimeError` a KerasTuner oracle raised.

    Returns:
        A `SearchStopped` naming the last failure's cause and the way out,
        or None when `error` is another `RuntimeError`.
    """
    match = _CONSECUTIVE_FAILURES.match(str(error))
    if match is None:
        return None
    return SearchStopped(
        f"the search stopped after {match['limit']} consecutive failures (failed "
        f"trials in a row); the last failed with "
        f"{root_cause(str(error)[match.end():])}. Finished trials are saved: fix "
        "the cause, then run the same search again to resume it (or raise "
        "`max_consecutive_failed_trials`).")
