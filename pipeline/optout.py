"""Opt-out replay: a finished output minus the documents and images whose URL or domain a list names.

Rights holders opt out after a corpus is built (OBELICS removed opted-out images with the Spawning API
before release); rebuilding from the crawl for each list would cost the whole job again. A replay reads
the previous output shard by shard (a row group at a time), drops listed documents, removes listed images
from the documents that keep them (by their source URL, which `image_urls` records per `<img>`), and
writes a new output with the same shard layout (elements an image removal leaves empty go, as in the job)
and a manifest naming the lists' sha256 and the previous
manifest, so `cm3-data verify` checks it like any other output.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from html_minimizer import replace_images_and_prune
from pipeline import counters, shards
from pipeline.doc_steps import all_image_srcs, count_code_images
from pipeline.environment import environment


@dataclass(frozen=True)
class OptOut:
    """URLs (exact) and domains (the host itself or any subdomain) to remove, and the lists' sha256."""

    urls: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    urls_sha256: str | None = None
    domains_sha256: str | None = None

    def listed(self, url: str) -> bool:
        if url in self.urls:
            return True
        if not self.domains:
            return False
        host = (urlsplit(url).hostname or "").rstrip(".")
        while host:
            if host in self.domains:
                return True
            host = host.partition(".")[2]
        return False


def read_list(path: str) -> tuple[list[str], str]:
    """(entries, sha256 of the file's bytes): one entry a line, blank lines and `#` comments skipped."""
    data = shards.read_bytes(path)
    entries = []
    for line in data.decode("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line)
    return entries, hashlib.sha256(data).hexdigest()


def load_optout(urls_path: str | None, domains_path: str | None) -> OptOut:
    urls, urls_sha = read_list(urls_path) if urls_path else ([], None)
    domains, domains_sha = read_list(domains_path) if domains_path else ([], None)
    return OptOut(
        urls=frozenset(urls),
        domains=frozenset(domain.lower().strip(".") for domain in domains),
        urls_sha256=urls_sha,
        domains_sha256=domains_sha,
    )


def apply_optout(rows: Iterable[dict], optout: OptOut, counts: Counter) -> Iterator[dict]:
    """Rows minus listed documents; listed images removed from the rest (every `<img>` with the same codes
    goes too: the same picture under another URL shares them). `counts` gets optout.<what> numbers."""
    for row in rows:
        counts[counters.OPTOUT_DOCUMENTS_READ] += 1
        if optout.listed(row["url"]):
            counts[counters.OPTOUT_DOCUMENTS_REMOVED] += 1
            continue
        image_urls = list(row.get("image_urls") or [])
        srcs = all_image_srcs(row["html"])
        if len(srcs) != len(image_urls):  # an output written before image_urls existed: documents only
            counts[counters.OPTOUT_WITHOUT_IMAGE_URLS] += 1
            yield row
            continue
        removed = {src for src, url in zip(srcs, image_urls, strict=True) if optout.listed(url)}
        if not removed:
            yield row
            continue
        html, n_empty = replace_images_and_prune(row["html"], dict.fromkeys(removed))
        counts[counters.OPTOUT_EMPTY_ELEMENTS_REMOVED] += n_empty  # the final-document rule, as in the job
        kept = [url for src, url in zip(srcs, image_urls, strict=True) if src not in removed]
        counts[counters.OPTOUT_DOCUMENTS_TOUCHED] += 1
        counts[counters.OPTOUT_IMAGE_REFS_REMOVED] += len(image_urls) - len(kept)
        yield {
            **row,
            "html": html,
            "n_images": count_code_images(html),
            "n_chars": len(html),
            "image_urls": kept,
        }


def target_problem(output: str, new_output: str) -> str | None:
    """Why `new_output` cannot receive a replay of `output` (None if it can): the same directory however
    spelt (`SRC/.`, `./SRC`, a symlink), or one inside the other (--overwrite would delete the source, or
    the new output would be written into it). Checked before anything is touched."""
    if shards.inside(new_output, output) and shards.inside(output, new_output):
        return "--output must differ from OUTPUT (the previous output is kept)"
    if shards.inside(new_output, output):
        return f"{new_output} holds the output being replayed; --overwrite would delete it"
    if shards.inside(output, new_output):
        return f"{new_output} lies inside the output being replayed ({output}); choose another --output"
    return None


def check_sources(output: str) -> None:
    """ValueError, one line, unless the shards of `output` pass `verify`'s file checks (sha256, rows,
    schema): a replay of a damaged shard would give the damage a new manifest that verifies."""
    problems = shards.verify(output, check_content=False)
    if problems:
        more = f" (and {len(problems) - 1} more)" if problems[1:] else ""
        raise ValueError(
            f"{output} fails verification, not replayed: {problems[0]}{more}; see cm3-data verify {output}"
        )


def replay(output: str, new_output: str, optout: OptOut, overwrite: bool = False) -> dict[str, int]:
    """Write `new_output` = `output` after the opt-out; returns the counts (also in the new manifest).
    A non-empty `new_output` is refused unless `overwrite`, which replaces it whole (the rule of every CLI).
    As `cm3-data run`, the replay is written beside `new_output` and swapped in when complete, so a failed
    or interrupted replay leaves what was there as it was. `output` must pass `verify` first."""
    manifest = shards.read_manifest(output)  # an unfinished OUTPUT is named first
    problem = target_problem(output, new_output)
    if problem:
        raise ValueError(problem)
    if not overwrite and not shards.is_empty(new_output):
        raise ValueError(
            f"{new_output} is not empty; pass --overwrite to replace it whole, or choose another --output"
        )
    check_sources(output)
    partial = shards.partial_output(new_output)
    if "://" not in new_output:  # a local directory (object stores have none to make), as `cm3-data run`
        os.makedirs(partial)
    try:
        counts: Counter = Counter()
        written, n_shards = [], dict.fromkeys(shards.SPLITS, 0)
        for split, index, n, entry in shards.manifest_shards(manifest):
            n_shards[split] = n
            rows = apply_optout(
                shards.read_shard_rows(shards.shard_path(output, entry["file"], manifest)), optout, counts
            )
            written.append(shards.write_shard(partial, split, index, n, rows))
        new_manifest = dict(manifest)
        new_manifest["splits"] = shards.finish_shards(partial, written, n_shards)
        new_manifest["optout"] = {
            "previous_output": output,
            "previous_manifest_sha256": shards.manifest_sha256(output),
            "urls_sha256": optout.urls_sha256,
            "domains_sha256": optout.domains_sha256,
            "counts": dict(sorted(counts.items())),
            "environment": environment(),  # this replay wrote the new shards
        }
        shards.write_manifest(partial, new_manifest)
        shards.swap_output(partial, new_output)
    finally:
        shards.discard_output(partial)  # gone already when swapped in
    return dict(sorted(counts.items()))
