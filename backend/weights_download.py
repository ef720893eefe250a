"""Download weight entries from the Hugging Face Hub into the weights folder (`keydiff3d weights --download`).

The catalogue (`weights.SPECS`) says for each entry which repository and files its publisher hosts on
the Hub (`HubFiles`); SAM and VGG16 are published elsewhere, so they stay files the user supplies.
`download(name)` fetches those files with `huggingface_hub.hf_hub_download` into the weights folder,
where `weights.locate` looks first:

- resumable: a dropped connection is continued with an HTTP Range request (huggingface_hub retries a
  transfer up to 5 times); files already complete are kept and not fetched again, so a cancelled or
  killed download resumes at the file it was in (huggingface_hub 2.x keeps no partial file across calls);
- progress and cancellation through `keydiff3d.progress.Progress` (bytes over all the entry's files);
- checksums: every file is compared with what the Hub declares for it (sha256 for LFS files, the git
  blob sha1 for small ones) and then the entry is validated (`SPECS[name].validate`);
- gated repositories (SV3D-p) need the user's token (`token`, else `HF_TOKEN` / `huggingface-cli login`)
  after accepting the licence on the model page; the error says so.

The Hub's address is huggingface_hub's endpoint setting (`HF_ENDPOINT`, or `endpoint`): the tests point it
at a local server that serves files in the Hub's layout; the real Hub goes through the same code.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from . import weights
from .errors import Cancelled, ConfigError, KeyDiff3DError, MissingWeightsError
from .progress import Progress
from .weights import HubFiles

BytesCallback = Callable[[int, int], None]  # (bytes done, bytes in all the entry's files)
log = logging.getLogger(__name__)


class DownloadError(KeyDiff3DError):
    """The Hub could not be reached or refused a file (one sentence naming what to do)."""

    code = "download_failed"


def _etag_matches(path: Path, etag: str) -> bool:
    """The Hub's ETag of a file is the sha256 of an LFS file, else the git blob sha1 of its bytes."""
    etag = etag.strip('"').removeprefix("W/").strip('"')
    if len(etag) == 64:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest() == etag


def _bar_class(progress: Progress, done_before: int, total: int, label: str, on_bytes: BytesCallback | None = None):
    """A tqdm class for huggingface_hub that reports bytes to `progress` and `on_bytes(done, total)`
    (and draws nothing itself); `progress.update` raising `Cancelled` stops the transfer (the files
    already complete stay)."""
    from tqdm import tqdm

    class ProgressBar(tqdm):
        def __init__(self, *args, **kwargs):
            self._bytes = int(kwargs.get("initial") or 0)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self._bytes += int(n or 0)
            if on_bytes is not None:
                on_bytes(done_before + self._bytes, total)
            progress.update((done_before + self._bytes) / max(total, 1), label)
            return super().update(n)

    return ProgressBar


def _hub_error(error: Exception, source: HubFiles, filename: str) -> KeyDiff3DError:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        return MissingWeightsError(
            f"{source.repo_id} is gated: log in at {source.page}, accept its licence, then pass your Hugging Face "
            "token (`keydiff3d weights --download ... --token hf_...`, $HF_TOKEN, or the add-on preferences)"
        )
    if isinstance(error, RepositoryNotFoundError):
        return DownloadError(
            f"the Hub has no repository {source.repo_id} (or the token may not see it); check {source.page}"
        )
    if isinstance(error, (EntryNotFoundError, RevisionNotFoundError)):
        return DownloadError(
            f"{source.repo_id} has no file {filename} at revision {source.revision}; the repository changed"
        )
    if isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code == 401:
        return MissingWeightsError(
            f"the Hub refused the token for {source.repo_id}; create a read token on huggingface.co"
        )
    if isinstance(error, OfflineModeIsEnabled) or isinstance(error.__cause__, OfflineModeIsEnabled):
        return DownloadError("downloads are switched off (HF_HUB_OFFLINE is set); unset it to download models")
    if isinstance(error, LocalEntryNotFoundError):
        return DownloadError(
            f"cannot reach the Hugging Face Hub for {source.repo_id} ({error.__cause__ or error}); check the connection"
        )
    reason = f"{type(error).__name__}: {error}".splitlines()[0]
    return DownloadError(
        f"downloading {filename} from {source.repo_id} failed ({reason}); run it again (finished files are kept)"
    )


def download(
    name: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    progress: Progress | None = None,
    target_root: Path | None = None,
    on_bytes: BytesCallback | None = None,
) -> Path:
    """Download weight entry `name` into the weights folder (or `target_root`) and validate it;
    returns its path. Files already there with the right checksum are not fetched again.
    on_bytes(done, total): bytes of the entry's files done so far and in all (the service's state)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    if name not in weights.SPECS:
        raise ConfigError(f"unknown weight entry {name!r}; known: {', '.join(weights.SPECS)}")
    spec = weights.SPECS[name]
    source = spec.download
    if source is None:
        raise ConfigError(f"{spec.title} is not published on the Hugging Face Hub; get it from {spec.source}")
    progress = progress or Progress()
    token = token or None  # "" means: use the saved login / $HF_TOKEN
    root = Path(target_root) if target_root is not None else weights.weights_dir()
    local_dir = root / source.folder if source.folder else root
    local_dir.mkdir(parents=True, exist_ok=True)

    progress.update(0.0, f"asking {source.repo_id} for {len(source.files)} files", stage="download")
    metadata = {}
    for filename in source.files:
        url = hf_hub_url(source.repo_id, filename, revision=source.revision, endpoint=endpoint)
        try:
            metadata[filename] = get_hf_file_metadata(url, token=token, endpoint=endpoint)
        except Exception as error:  # Hub answers, OSError, httpx connection errors
            raise _hub_error(error, source, filename) from None
    commits = {m.commit_hash for m in metadata.values()}
    revision = commits.pop() if len(commits) == 1 else source.revision  # every file from one commit
    total = sum(m.size or 0 for m in metadata.values())
    done = 0
    for filename in source.files:
        meta = metadata[filename]
        if on_bytes is not None:
            on_bytes(done, total)
        bar = _bar_class(progress.span(0.0, 0.95, "download"), done, total, filename, on_bytes)
        try:
            fetched = hf_hub_download(
                source.repo_id,
                filename,
                revision=revision,
                local_dir=local_dir,
                token=token,
                endpoint=endpoint,
                tqdm_class=bar,
            )
        except Cancelled:
            raise
        except Exception as error:  # Hub answers, OSError, httpx connection errors
            raise _hub_error(error, source, filename) from None
        path = Path(fetched)
        if meta.etag and not _etag_matches(path, meta.etag):
            _forget(local_dir, filename)
            raise MissingWeightsError(
                f"{path} does not match the checksum {source.repo_id} declares; it was removed, download it again"
            )
        done += meta.size or path.stat().st_size
        if on_bytes is not None:
            on_bytes(done, max(total, done))
        log.info("downloaded %s (%d bytes, checksum ok)", path, path.stat().st_size)
    progress.update(0.97, "validating", stage="download")
    entry = local_dir if source.folder else local_dir / spec.candidates[0]
    detail = spec.validate(entry)
    progress.update(1.0, f"{name}: {detail}", stage="done")
    return entry


def _forget(local_dir: Path, filename: str) -> None:
    """Remove a downloaded file and huggingface_hub's record of it, so the next call fetches it again."""
    (local_dir / filename).unlink(missing_ok=True)
    record = local_dir / ".cache" / "huggingface" / "download" / f"{filename}.metadata"
    record.unlink(missing_ok=True)
