"""File names in the static site, shared by every page writer."""

import re


def slug(text: str) -> str:
    """A file name that cannot escape the site folder, whatever the task is called."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip(".-") or "x"
    return cleaned[:80]
