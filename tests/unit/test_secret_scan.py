"""No credential in a tracked file (fraudops.secret_scan), checked on this checkout and on planted secrets.

The planted values are assembled at run time, so this file itself holds none of the patterns it plants.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudops.secret_scan import Hit, scan_repository, scan_text

ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).with_name("dvc"))
# planted values, assembled so that no line of this file matches a pattern
AWS_KEY_ID = "AKIA" + "Q3EXAMPLE7PLANTED"[:16]
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYPLANTEDSECRET"[:18]
GITHUB_TOKEN = "ghp" + "_" + "P1anted" * 6
DB_PASSWORD = "hunter" + "2planted"
PRIVATE_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEplanted\n-----END RSA PRIVATE KEY-----\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A throwaway git repository with ``files`` staged (``git ls-files`` lists staged files)."""
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "tests@fraudops.invalid")
    git(path, "config", "user.name", "fraudops tests")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    git(path, "add", "--force", *files)  # --force: a .env is git-ignored wherever a template set that up
    return path


def kinds(hits: list[Hit]) -> set[tuple[str, str]]:
    return {(hit.path, hit.kind) for hit in hits}


def test_no_tracked_file_of_this_checkout_holds_a_credential() -> None:
    assert scan_repository(ROOT) == []


def test_the_secrets_files_are_git_ignored_here() -> None:
    """``.env`` (the API keys ``make demo`` writes) and DVC's local config (remote credentials)."""
    for path in (".env", ".dvc/config.local"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    assert not scan_text(".dvc/config", (ROOT / ".dvc" / "config").read_text(encoding="utf-8"))


def test_planted_secrets_are_found_and_placeholders_are_not(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "deploy/id_rsa": PRIVATE_KEY,
            "settings.ini": f"[aws]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n",
            "ci.sh": f"export GH_TOKEN={GITHUB_TOKEN}\n",
            "docs/db.md": f"connect to postgresql://fraudops:{DB_PASSWORD}@db:5432/mlflow\n",
            ".env": "FRAUDOPS_ADMIN_API_KEY=generated\n",
            # what compose.yaml and the docs show: placeholders, not secrets
            "compose.yaml": "url: postgresql+psycopg2://fraudops:${POSTGRES_PASSWORD:-fraudops}@postgres:5432/mlflow\n",
            "README.md": "psql postgresql://fraudops:fraudops@127.0.0.1:5432/mlflow\n",
            "client.py": 'url = f"postgresql://{user}:{password}@{host}/mlflow"\n',
        },
    )
    (repo / "untracked.txt").write_text(f"{GITHUB_TOKEN}\n")  # not in git: not the scan's business
    assert kinds(scan_repository(repo)) == {
        ("deploy/id_rsa", "private key"),
        ("settings.ini", "AWS access key id"),
        ("settings.ini", "AWS secret access key"),
        ("ci.sh", "GitHub token"),
        ("docs/db.md", "password in a URL"),
        (".env", "secrets file under version control (it must stay git-ignored)"),
    }


def test_dvc_credentials_only_through_the_local_config(tmp_path: Path) -> None:
    """``dvc remote modify --local`` keeps the secret out of git; without --local it lands in .dvc/config."""
    repo = make_repo(tmp_path / "repo", {"README.md": "data\n"})
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site")}

    def dvc(*args: str) -> None:
        subprocess.run([DVC, *args], cwd=repo, env=env, check=True, capture_output=True)

    dvc("init", "-q")
    dvc("remote", "add", "-d", "store", "s3://fraudops-data/dvc")
    dvc("remote", "modify", "--local", "store", "secret_access_key", AWS_SECRET)
    git(repo, "add", ".dvc")
    assert AWS_SECRET in (repo / ".dvc" / "config.local").read_text()
    assert scan_repository(repo) == []

    dvc("remote", "modify", "store", "secret_access_key", AWS_SECRET)  # the mistake: no --local
    git(repo, "add", ".dvc")
    [hit] = scan_repository(repo)
    assert (hit.path, hit.kind.split("`")[1]) == (".dvc/config", "secret_access_key")


@pytest.mark.parametrize("planted", [AWS_KEY_ID, GITHUB_TOKEN])
def test_the_command_exits_1_and_never_prints_the_secret(tmp_path: Path, planted: str) -> None:
    repo = make_repo(tmp_path / "repo", {"notes.txt": f"key: {planted}\n"})
    done = subprocess.run(
        [sys.executable, "-m", "fraudops.secret_scan", str(repo)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("notes.txt:1: ")
    assert planted not in done.stdout


def test_aws_secret_keys_are_found_beside_their_key_id_or_under_the_aws_tools_labels(tmp_path: Path) -> None:
    """The shapes AWS hands keys out in: the console's credentials CSV (no label at all), the JSON of
    `aws iam create-access-key`, an environment file; a git sha beside a key id is not a secret."""
    repo = make_repo(
        tmp_path / "repo",
        {
            "credentials.csv": f"Access key ID,Secret access key\n{AWS_KEY_ID},{AWS_SECRET}\n",
            "key.json": f'{{"AccessKey": {{"AccessKeyId": "{AWS_KEY_ID}",\n "SecretAccessKey": "{AWS_SECRET}"}}}}\n',
            "moto.env": f"AWS_SECRET_KEY={AWS_SECRET}\n",
            "pinned.txt": f"{AWS_KEY_ID} was rotated in commit {'0123456789abcdef' * 2}01234567\n",
        },
    )
    hits = scan_repository(repo)
    assert [(h.path, h.line, h.kind) for h in hits if "secret" in h.kind] == [
        ("credentials.csv", 2, "AWS secret access key"),
        ("key.json", 2, "AWS secret access key"),
        ("moto.env", 1, "AWS secret access key"),
    ]
    # a secret both labelled and beside its id is one hit, on its own line
    ini = scan_text("a.ini", f"aws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n")
    assert [(h.line, h.kind) for h in ini] == [(1, "AWS access key id"), (2, "AWS secret access key")]
