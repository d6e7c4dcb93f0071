-- Run once by the postgres image on an empty data directory (compose.yaml mounts this file into
-- /docker-entrypoint-initdb.d/), as POSTGRES_USER, who then owns these databases.
-- MLflow and Prefect each keep their own alembic_version table: one database per tool.
-- `predictions`: the API replicas' prediction and feedback logs (compose's `scale` profile).
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
CREATE DATABASE predictions;
