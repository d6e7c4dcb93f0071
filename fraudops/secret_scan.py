"""No credential in a tracked file: the patterns of common secrets, run over ``git ls-files``.

Secrets reach fraudops only from the environment or the git-ignored ``.env`` (``.env.example`` lists
them with placeholders), and DVC remote credentials only from ``.dvc/config.local``
(``dvc remote modify --local``). This scan is the check that nothing slipped into git instead:
``python -m fraudops.secret_scan [REPO]`` prints each hit and exits 1; a test runs it on this checkout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

# files that hold secrets by design and must never be tracked
NEVER_TRACKED = frozenset({".env", ".dvc/config.local"})
# DVC remote options that carry a credential (dvc remote modify --local only)
DVC_CREDENTIAL_OPTIONS = (
    "password",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "account_key",
    "sas_token",
    "connection_string",
    "client_secret",
    "gdrive_client_secret",
    "token",
)
PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    # labelled as the AWS tools label it: aws_secret_access_key (ini, boto3), AWS_SECRET_KEY, and the
    # JSON of `aws iam create-access-key` ("SecretAccessKey": "...")
    "AWS secret access key": re.compile(
        r"(?i)(?:aws_?secret_?(?:access_?)?key|secretaccesskey)['\"]?\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "PyPI token": re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    "Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "API secret key": re.compile(r"\bsk-(?:proj-|live-)?[A-Za-z0-9_-]{32,}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<password>[^/\s@'\"]+)@"),
}
# the passwords a URL may show: compose's documented local default, references to the environment,
# and template fields filled in at run time ({password} in an f-string or a format string)
PLACEHOLDER_PASSWORDS = re.compile(
    r"fraudops|\$\{[A-Z_]+(?::-fraudops)?\}|\$[A-Z_]+|\{[A-Za-z_][\w.]*\}|<[a-z_-]+>|\*+|\.\.\."
)
# an unlabelled secret beside its key id (the console's credentials CSV, a tuple in code): 40 base64
# characters, both letter cases (a git sha is lowercase hex), within this many characters of the id
AWS_SECRET_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[A-Z])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
NEAR_KEY_ID = 160
DVC_CREDENTIAL = re.compile(rf"^\s*({'|'.join(DVC_CREDENTIAL_OPTIONS)})\s*=\s*\S", re.MULTILINE)


@dataclass(frozen=True)
class Hit:
    """One suspected credential: where it is and what it looks like (never the value itself)."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def tracked_files(repo: Path) -> list[str]:
    """The paths git tracks in ``repo`` (``git ls-files``), relative to it."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def scan_text(path: str, text: str) -> list[Hit]:
    """The suspected credentials in one file's text."""
    hits: list[Hit] = []
    for kind, pattern in PATTERNS.items():
        for match in pattern.finditer(text):
            password = match.groupdict().get("password")
            if password is not None and PLACEHOLDER_PASSWORDS.fullmatch(password):
                continue
            hits.append(Hit(path, text.count("\n", 0, match.start()) + 1, kind))
    for start in secrets_beside_key_ids(text):
        hits.append(Hit(path, text.count("\n", 0, start) + 1, "AWS secret access key"))
    if path == ".dvc/config":
        for match in DVC_CREDENTIAL.finditer(text):
            kind = f"DVC remote credential `{match[1]}` (use dvc remote modify --local)"
            hits.append(Hit(path, text.count("\n", 0, match.start()) + 1, kind))
    return sorted(set(hits), key=lambda h: (h.line, h.kind))  # a labelled secret beside its id: once


def secrets_beside_key_ids(text: str) -> list[int]:
    """Where a string shaped like an AWS secret access key stands near an access key id."""
    starts: set[int] = set()
    for key_id in PATTERNS["AWS access key id"].finditer(text):
        window = (max(0, key_id.start() - NEAR_KEY_ID), min(len(text), key_id.end() + NEAR_KEY_ID))
        starts.update(m.start() for m in AWS_SECRET_CANDIDATE.finditer(text, *window))
    return sorted(starts)


def scan_repository(repo: Path) -> list[Hit]:
    """Every suspected credential in the files git tracks in ``repo``, and every secrets file it tracks."""
    hits: list[Hit] = []
    for path in tracked_files(repo):
        if path in NEVER_TRACKED:
            hits.append(Hit(path, 0, "secrets file under version control (it must stay git-ignored)"))
        file = repo / path
        if not file.is_file():  # deleted in the work tree, or a submodule
            continue
        data = file.read_bytes()
        if b"\0" in data[:8192]:  # binary: images, parquet
            continue
        hits += scan_text(path, data.decode("utf-8", errors="replace"))
    return sorted(hits, key=lambda h: (h.path, h.line))


def main(argv: list[str]) -> int:
    """Print each hit of the repository named in ``argv`` (default: here); 1 when there is any."""
    repo = Path(argv[0]) if argv else Path(".")
    console = Console(soft_wrap=True, highlight=False)
    hits = scan_repository(repo)
    for hit in hits:
        console.print(str(hit), markup=False)
    console.print(f"{len(tracked_files(repo))} tracked files scanned, {len(hits)} suspected credential(s)")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
