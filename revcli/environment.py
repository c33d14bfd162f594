"""What a shell or a CI job exports to reach the workspace's stores with other tools: MLflow's
own CLI (``mlflow models serve``, ``mlflow runs list``), boto3 scripts, the AWS CLI.

One function, :func:`exports`, read by ``revcli config --env``. Credentials are never part of
it: a password in a URL is left out (the variable then says so), and AWS keys stay where the
AWS chain finds them.
"""

from __future__ import annotations

import shlex
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from revcli.urls import mask

if TYPE_CHECKING:
    from revcli.settings import Settings


@dataclass(frozen=True)
class Export:
    name: str
    value: str
    note: str = ""  # why the value differs from the effective one (a password left out)

    def line(self) -> str:
        text = f"export {self.name}={shlex.quote(self.value)}"
        return text + (f"  # {self.note}" if self.note else "")


def _without_password(url: str, where: str) -> tuple[str, str]:
    """(url, note): the URL with its password removed, and a note when one was."""
    if mask(url) == url:
        return url, ""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{user}@{host}" if user else host
    return (urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query,
                                     parts.fragment)),
            f"password left out: give it {where}")


def exports(settings: Settings) -> list[Export]:
    """The variables that point other tools at the effective stores: the workspace, the
    tracking URI (and registry, the same store), the S3 endpoint, region and profile when set."""
    from revcli.tracking import tracking_uri
    from revcli.workspace import Workspace

    workspace = Workspace(Path(settings.workspace).resolve())  # valid from any directory
    uri, note = _without_password(tracking_uri(settings, workspace),
                                  "as MLFLOW_TRACKING_PASSWORD or in ~/.netrc")
    found = [Export("REVCLI_WORKSPACE", str(workspace.root.resolve())),
             Export("MLFLOW_TRACKING_URI", uri, note)]
    if settings.endpoint_url:
        endpoint, endpoint_note = _without_password(settings.endpoint_url,
                                                    "through the AWS credential chain")
        found.append(Export("AWS_ENDPOINT_URL_S3", endpoint, endpoint_note))
        # MLflow's S3 artifact store reads its own variable.
        found.append(Export("MLFLOW_S3_ENDPOINT_URL", endpoint, endpoint_note))
    if settings.region:
        found.append(Export("AWS_DEFAULT_REGION", settings.region))
    if settings.aws_profile:
        found.append(Export("AWS_PROFILE", settings.aws_profile))
    return found
