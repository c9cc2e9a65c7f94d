"""Settings: the one configuration object, built once in ``main`` and passed down.

Every field can be set from the environment with the ``LAMBDALET_`` prefix, for example
``LAMBDALET_PORT=9100``. Nothing here is read at import time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PYTHON_RUNTIME_IDS = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
NODE_RUNTIME_IDS = ("nodejs18.x", "nodejs20.x", "nodejs22.x")
JAVA_RUNTIME_IDS = ("java17", "java21")
CUSTOM_RUNTIME_IDS = ("provided", "provided.al2", "provided.al2023")


def default_runtimes() -> dict[str, str]:
    """Map each runtime id to a local interpreter, when the machine has one.

    The interpreter running lambdalet serves its own Python version; other versions are looked
    up on PATH (``python3.12`` for ``python3.12``). Every Node.js id maps to the machine's
    ``node`` and every Java id to its ``java`` (whichever version is installed). Custom runtimes
    need no interpreter: they run the zip's ``bootstrap``.
    """
    runtimes: dict[str, str] = {}
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for runtime_id in PYTHON_RUNTIME_IDS:
        if runtime_id == own:
            runtimes[runtime_id] = sys.executable
        else:
            found = shutil.which(runtime_id)
            if found:
                runtimes[runtime_id] = found
    for ids, program in ((NODE_RUNTIME_IDS, "node"), (JAVA_RUNTIME_IDS, "java")):
        found = shutil.which(program)
        if found:
            runtimes.update(dict.fromkeys(ids, found))
    for runtime_id in CUSTOM_RUNTIME_IDS:
        runtimes[runtime_id] = "bootstrap"
    return runtimes


class Settings(BaseSettings):
    """Everything lambdalet can be told, with the defaults of the embedded single node."""

    model_config = SettingsConfigDict(env_prefix="LAMBDALET_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path(".lambdalet")
    store_url: str = Field(
        default="sqlite",
        description="'sqlite' (a file in data_dir), 'sqlite:///path/to.db' or 'memory'",
    )
    region: str = "us-east-1"
    account_id: str = "000000000000"
    billing_increment_ms: int = Field(default=1, description="1 (current AWS) or 100 (classic)")
    price_per_gb_second: float = Field(
        default=0.0000166667, ge=0, description="USD per GB-second of billed compute (AWS x86)"
    )
    price_per_million_requests: float = Field(
        default=0.20, ge=0, description="USD per million invocations"
    )
    free_tier_gb_seconds: float = Field(
        default=400_000, ge=0, description="GB-seconds free each month (AWS's free tier)"
    )
    free_tier_requests: int = Field(
        default=1_000_000, ge=0, description="invocations free each month (AWS's free tier)"
    )
    keep_alive_ms: int = Field(
        default=600_000, description="idle time before a sandbox stops (the fixed policy's)"
    )
    keep_alive_policy: str = Field(
        default="fixed", description="'fixed' or 'hybrid-histogram' (learned per function)"
    )
    sandbox_backend: str = Field(
        default="auto",
        description="'auto' (namespaces where the host allows it, else process), 'namespaces'"
        " or 'process'",
    )
    freeze_idle: bool = Field(
        default=True, description="freeze idle namespaces sandboxes between invocations"
    )
    async_workers: int = Field(default=64, description="async events run at once")
    async_retry_delay_ms: int = Field(
        default=60_000, description="wait before retrying a failed async event (doubles)"
    )
    concurrency_limit: int = Field(default=1000, description="account concurrent executions")
    unreserved_concurrency_minimum: int = Field(
        default=100, description="what reservations must leave to other functions"
    )
    memory_budget_mb: int = Field(
        default=0, description="MemorySize all sandboxes may sum to; 0: 3/4 of the machine"
    )
    burst_sandboxes_per_10s: int = Field(
        default=1000, description="new sandboxes a function may start in 10 s"
    )
    pool_size: int = Field(
        default=2,
        ge=0,
        description="blank namespaces sandboxes kept started per Python runtime in use; 0: none",
    )
    snapshot_spares: int = Field(
        default=1,
        ge=0,
        le=8,
        description="instances forked ahead per SnapStart version, for its next cold start",
    )
    log_level: str = "info"
    public_url: str = Field(
        default="",
        description="public base URL behind a proxy (https://lambda.example.com); builds"
        " function URLs as https://<url-id>.lambda-url.<region>.lambda.example.com/",
    )
    credentials: str = Field(
        default="",
        description="SigV4 keys for AWS_IAM function URLs (and the APIs, with"
        " verify_signatures): 'AKID:secret:account_id,...'; empty: 'test:test:<account_id>'",
    )
    verify_signatures: bool = Field(
        default=False,
        description="require a valid SigV4 signature made with one of the credentials on every"
        " request to the AWS APIs (Lambda, SQS, SNS, Scheduler, API Gateway v2)",
    )
    jwks_min_refetch_ms: int = Field(
        default=60_000,
        ge=0,
        description="HTTP API JWT authorizers: least time between two fetches of an issuer's"
        " keys caused by tokens with an unknown kid",
    )
    runtimes: dict[str, str] = Field(default_factory=default_runtimes)

    @field_validator("keep_alive_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        choices = ("fixed", "hybrid-histogram")
        if value not in choices:
            raise ValueError(f"unknown keep-alive policy {value!r}; choose one of {choices}")
        return value

    @field_validator("credentials")
    @classmethod
    def _credential_triples(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            parts = entry.split(":", 2)
            if len(parts) != 3 or not all(parts):
                raise ValueError(
                    "credentials must be 'ACCESS_KEY_ID:SECRET_KEY:ACCOUNT_ID' entries"
                    " separated by commas"
                )
        return value

    @field_validator("billing_increment_ms")
    @classmethod
    def _positive_increment(cls, value: int) -> int:
        if value < 1:
            raise ValueError("billing_increment_ms must be at least 1")
        return value

    @property
    def base_url(self) -> str:
        """The URL clients use to reach this node."""
        return f"http://{self.host}:{self.port}"

    def signing_keys(self) -> dict[str, tuple[str, str]]:
        """Access key id → (secret key, account id), from ``credentials``."""
        keys: dict[str, tuple[str, str]] = {}
        for entry in (self.credentials or f"test:test:{self.account_id}").split(","):
            if entry.strip():
                access_key, secret, account_id = entry.strip().split(":", 2)
                keys[access_key] = (secret, account_id)
        return keys

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        """The ARN of a function, qualified when a version or alias is given."""
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn
