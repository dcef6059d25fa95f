"""Publish a cloud assembly's assets the way `cdk deploy` would, onto the twin.

File assets go to the bootstrap bucket under their content-hash keys; image assets become an
ECR image tagged with the asset hash in the bootstrap container repository. The twin never
builds images: a Lambda's image URI is mapped back to the staged `asset.<hash>` build context
(see `ImageFolders`), and the twin runs its handler from there with the current interpreter.
An object already holding the same bytes, or an image tag already pushed, is not sent again.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from driftline.errors import UsageError

LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class AssetError(UsageError):
    """An asset manifest the twin cannot publish: missing source, unknown packaging."""


@dataclass(frozen=True)
class FileAsset:
    asset_hash: str
    source: Path
    packaging: str
    bucket: str
    key: str


@dataclass(frozen=True)
class ImageAsset:
    asset_hash: str
    directory: Path
    repository: str
    tag: str

    @property
    def uri(self) -> str:
        return f"{LOCAL_ACCOUNT}.dkr.ecr.{LOCAL_REGION}.amazonaws.com/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class PublishReport:
    uploaded_files: tuple[str, ...]
    pushed_images: tuple[str, ...]
    unchanged: int


def asset_manifest_paths(cdk_out: Path) -> list[Path]:
    """The `*.assets.json` files the assembly's manifest lists, in manifest order."""
    manifest = read_json(cdk_out / "manifest.json")
    paths = []
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") == "cdk:asset-manifest":
            paths.append(cdk_out / artifact["properties"]["file"])
    return paths


def read_assets(manifest_path: Path) -> tuple[list[FileAsset], list[ImageAsset]]:
    """Parse one asset manifest; sources resolve against the assembly directory."""
    cdk_out = manifest_path.parent
    document = read_json(manifest_path)
    files: list[FileAsset] = []
    for asset_hash, entry in document.get("files", {}).items():
        source = entry.get("source", {})
        if "path" not in source:
            raise AssetError(f"{manifest_path.name}: file asset {asset_hash} has no source.path")
        for destination in entry.get("destinations", {}).values():
            files.append(
                FileAsset(
                    asset_hash=asset_hash,
                    source=cdk_out / source["path"],
                    packaging=source.get("packaging", "file"),
                    bucket=_substitute(destination["bucketName"]),
                    key=_substitute(destination["objectKey"]),
                )
            )
    images: list[ImageAsset] = []
    for asset_hash, entry in document.get("dockerImages", {}).items():
        source = entry.get("source", {})
        if "directory" not in source:
            raise AssetError(
                f"{manifest_path.name}: image asset {asset_hash} has no source.directory "
                "(executable image assets are not supported by the twin)"
            )
        for destination in entry.get("destinations", {}).values():
            images.append(
                ImageAsset(
                    asset_hash=asset_hash,
                    directory=cdk_out / source["directory"],
                    repository=_substitute(destination["repositoryName"]),
                    tag=_substitute(destination["imageTag"]),
                )
            )
    return files, images


def all_assets(cdk_out: Path) -> tuple[list[FileAsset], list[ImageAsset]]:
    """Every destination once: stacks sharing one synthesizer repeat each other's assets."""
    files: dict[tuple[str, str], FileAsset] = {}
    images: dict[tuple[str, str], ImageAsset] = {}
    for path in asset_manifest_paths(cdk_out):
        more_files, more_images = read_assets(path)
        for file in more_files:
            files.setdefault((file.bucket, file.key), file)
        for image in more_images:
            images.setdefault((image.repository, image.tag), image)
    return list(files.values()), list(images.values())


def publish(cdk_out: Path, *, s3: Any, ecr: Any) -> PublishReport:
    """Upload missing file assets and push missing image assets of the whole assembly."""
    files, images = all_assets(cdk_out)
    uploaded: list[str] = []
    pushed: list[str] = []
    unchanged = 0
    buckets: set[str] = set()
    for asset in files:
        if asset.bucket not in buckets:
            _ensure_bucket(s3, asset.bucket)
            buckets.add(asset.bucket)
        body = _file_body(asset)
        if _object_etag(s3, asset.bucket, asset.key) == f'"{hashlib.md5(body).hexdigest()}"':  # noqa: S324
            unchanged += 1
            continue
        s3.put_object(Bucket=asset.bucket, Key=asset.key, Body=body)
        uploaded.append(asset.key)
    repositories: set[str] = set()
    for image in images:
        if not image.directory.is_dir():
            raise AssetError(
                f"image asset {image.asset_hash}: build context {image.directory} is missing"
            )
        if image.repository not in repositories:
            _ensure_repository(ecr, image.repository)
            repositories.add(image.repository)
        if _image_exists(ecr, image.repository, image.tag):
            unchanged += 1
            continue
        ecr.put_image(
            repositoryName=image.repository,
            imageManifest=_image_manifest(image),
            imageTag=image.tag,
        )
        pushed.append(image.uri)
    return PublishReport(
        uploaded_files=tuple(uploaded), pushed_images=tuple(pushed), unchanged=unchanged
    )


class ImageFolders:
    """`image_uri -> staged build context` for the adapters, read lazily from the assembly.

    Lazy because `driftline local deploy` re-synthesizes into the same directory from another
    process: the running server must see image assets that did not exist when it started.
    """

    def __init__(self, cdk_out: Path) -> None:
        self.cdk_out = cdk_out

    def __call__(self, image_uri: str) -> Path | None:
        repository, tag = _split_image_uri(image_uri)
        if tag is None:
            return None
        for image in self._images():
            if image.repository == repository and image.tag == tag and image.directory.is_dir():
                return image.directory
        return None

    def _images(self) -> Iterator[ImageAsset]:
        if not (self.cdk_out / "manifest.json").is_file():
            return
        try:
            paths = asset_manifest_paths(self.cdk_out)
        except AssetError:
            return
        for path in paths:
            try:
                yield from read_assets(path)[1]
            except (AssetError, KeyError):
                continue


def read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise AssetError(f"{path} does not exist: synthesize first") from None
    except (OSError, json.JSONDecodeError) as error:
        raise AssetError(f"cannot read {path}: {error}") from None
    if not isinstance(document, dict):
        raise AssetError(f"{path}: expected a JSON object")
    return document


def _split_image_uri(image_uri: str) -> tuple[str, str | None]:
    """`<registry>/<repo>:<tag>` → (repo, tag); a digest reference has no tag to match."""
    path = image_uri.split("/", 1)[1] if "/" in image_uri else image_uri
    if "@" in path:
        return path.split("@", 1)[0], None
    repository, _, tag = path.rpartition(":")
    return (repository, tag) if repository else (path, None)


def _substitute(value: str) -> str:
    """Resolve the pseudo parameters the default synthesizer leaves in asset destinations."""
    return (
        value.replace("${AWS::AccountId}", LOCAL_ACCOUNT)
        .replace("${AWS::Region}", LOCAL_REGION)
        .replace("${AWS::Partition}", "aws")
    )


def _file_body(asset: FileAsset) -> bytes:
    if not asset.source.exists():
        raise AssetError(f"file asset {asset.asset_hash}: source {asset.source} is missing")
    if asset.packaging == "file":
        if asset.source.is_dir():
            raise AssetError(
                f"file asset {asset.asset_hash}: {asset.source} is a directory, packaging 'file'"
            )
        return asset.source.read_bytes()
    if asset.packaging == "zip":
        return asset.source.read_bytes() if asset.source.is_file() else zip_directory(asset.source)
    raise AssetError(f"file asset {asset.asset_hash}: unknown packaging {asset.packaging!r}")


def zip_directory(directory: Path) -> bytes:
    """A reproducible zip (sorted entries, fixed timestamps) of everything under `directory`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=_ZIP_EPOCH)
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _image_manifest(image: ImageAsset) -> str:
    """A minimal Docker v2 manifest; its config digest is the asset hash, so each asset differs."""
    digest = hashlib.sha256(image.asset_hash.encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 0,
                "digest": f"sha256:{digest}",
            },
            "layers": [],
        }
    )


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)


def _object_etag(s3: Any, bucket: str, key: str) -> str | None:
    """The object's ETag (the MD5 of a single-part upload), None when there is no object.

    Compared with the local content rather than trusting the content-hash key alone, so an
    assembly edited by hand (or a reused key) is never deployed from a stale upload.
    """
    try:
        etag: str = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError:
        return None
    return etag


def _ensure_repository(ecr: Any, repository: str) -> None:
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        return


def _image_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError:
        return False
    return bool(found.get("imageDetails"))
