"""Label names as folder names and back. Each label gets one folder name that no other label and
no export file can have, valid on Linux, macOS and Windows, and ``label_for_folder`` gives the
label back: characters a folder name cannot or should not hold are percent-encoded (UTF-8, as in
URLs), and ``%`` always is, so decoding is exact. Plain names (``cat``, ``café``) stay as they are.
"""

from __future__ import annotations

from urllib.parse import unquote

# Never in a folder name: separators, the escape itself, and what Windows refuses.
_ESCAPED = frozenset('%/\\<>:"|?*')
# The files an export writes beside the label folders (compared case-insensitively, as macOS and
# Windows file systems do).
EXPORT_FILES = ("manifest.csv", "manifest.json", "metrics.json", "history.csv")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{port}{n}" for port in ("com", "lpt") for n in range(1, 10)]
)


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def folder_for_label(label: str) -> str:
    """The folder name of ``label``: one path component, never hidden (no leading ``.``), never
    an export file's name or a Windows device name (``CON``), no trailing dot or space (Windows
    drops them), no control or invisible characters (newlines, zero-width spaces, RTL overrides).
    """
    if not label:
        raise ValueError("a label name is never empty")
    chars = [_escape(c) if c in _ESCAPED or not c.isprintable() else c for c in label]
    stem = label.split(".")[0].rstrip(" ").casefold()
    if label[0] == "." or label.casefold() in EXPORT_FILES or stem in _WINDOWS_DEVICES:
        chars[0] = _escape(label[0])
    if label[-1] in ". ":
        chars[-1] = _escape(label[-1])
    return "".join(chars)


def label_for_folder(folder: str) -> str:
    """The label a folder holds: its name with percent-escapes decoded (``a%2Fb`` is ``a/b``); a
    name whose escapes are no UTF-8 (so no ``folder_for_label`` wrote it) is taken as it is."""
    try:
        return unquote(folder, errors="surrogatepass")
    except UnicodeDecodeError:
        return folder
