"""Turns lambdalet's records into the JSON shapes of botocore's ``lambda`` model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lambdalet.config import Settings
from lambdalet.models import LATEST, Alias, FunctionConfig


def aws_timestamp(unix_ms: int) -> str:
    """A timestamp as Lambda writes LastModified: ``2026-11-23T09:30:00.000+0000``."""
    moment = datetime.fromtimestamp(unix_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def function_configuration(config: FunctionConfig, settings: Settings) -> dict[str, Any]:
    """FunctionConfiguration, as CreateFunction and GetFunctionConfiguration return it."""
    shape: dict[str, Any] = {
        "FunctionName": config.name,
        "FunctionArn": settings.function_arn(
            config.name, None if config.version == LATEST else config.version
        ),
        "Runtime": config.runtime,
        "Role": config.role,
        "Handler": config.handler,
        "CodeSize": config.code_size_bytes,
        "Description": config.description,
        "Timeout": config.timeout_s,
        "MemorySize": config.memory_mb,
        "LastModified": aws_timestamp(config.last_modified_ms),
        "CodeSha256": config.code_sha256_b64,
        "Version": config.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": config.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": list(config.architectures),
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "SnapStart": {
            "ApplyOn": config.snap_start_apply_on,
            "OptimizationStatus": "On"
            if config.snap_start_apply_on == "PublishedVersions" and config.version != LATEST
            else "Off",
        },
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{config.name}"},
    }
    if config.layers:
        shape["Layers"] = [
            {"Arn": ref.arn, "CodeSize": ref.code_size_bytes} for ref in config.layers
        ]
    if config.environment:
        shape["Environment"] = {"Variables": dict(config.environment)}
    if config.dead_letter_target_arn:
        shape["DeadLetterConfig"] = {"TargetArn": config.dead_letter_target_arn}
    return shape


def get_function(config: FunctionConfig, settings: Settings) -> dict[str, Any]:
    """GetFunction's response: configuration, where to download the code, tags."""
    return {
        "Configuration": function_configuration(config, settings),
        "Code": {
            "RepositoryType": "S3",
            "Location": f"{settings.base_url}/_lambdalet/code/{config.code_sha256_hex}.zip",
        },
        "Tags": dict(config.tags),
    }


def alias_configuration(alias: Alias, settings: Settings) -> dict[str, Any]:
    """AliasConfiguration."""
    shape: dict[str, Any] = {
        "AliasArn": settings.function_arn(alias.function_name, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.additional_version_weights:
        shape["RoutingConfig"] = {
            "AdditionalVersionWeights": dict(alias.additional_version_weights)
        }
    return shape
