"""Funnel report of a run, computed from the counted events (data, not Beam metrics, so every runner
reports it): a text table, report.json and a self-contained report.html with an inline SVG funnel. The
report also says what produced it (inputs, options, code version, duration) and flags what a reader
should not miss (images off, many images failing)."""

from __future__ import annotations

import html as html_lib
import json
import re

from pipeline import counters

# A share of failed images above this is flagged: a dead image host, a proxy, or the wrong --input.
IMAGE_FAILURE_FLAG = 0.2

# Plain-language names of the drop reasons (report.json keeps the counter names, the page shows both).
DROP_REASONS = {
    counters.MINIMIZE_ERROR + "NotHTML": "not HTML (binary data, no markup, or an unreadable charset)",
    counters.MINIMIZE_ERROR + "InputTooLarge": "too large for the minimizer's limits",
    counters.MINIMIZE_ERROR + "BadMarkup": "markup the minimizer cannot handle",
    counters.MINIMIZE_ERROR + "EmptyPage": "nothing left after the minimizer (no text, no image)",
    counters.MINIMIZE_UNEXPECTED: "the minimizer failed unexpectedly (see the log)",
    counters.C4_UNEXPECTED: "the C4 rules failed unexpectedly (see the log)",
    counters.C4_PAGE + "not_english": "not English (C4's language rule)",
    counters.C4_PAGE + "not_selected_language": "not one of the --languages",
    counters.C4_PAGE + "too_few_sentences": "too few sentences left after the line rules",
    counters.C4_PAGE + "bad_words": "a word of the bad-words list",
    counters.C4_PAGE + "lorem_ipsum": "placeholder text (lorem ipsum)",
    counters.C4_PAGE + "curly_bracket": "a curly bracket (code or a template)",
    counters.C4_PAGE + "unparseable": "no text the C4 rules could parse",
    counters.URL_DUPLICATES_DROPPED: "the same URL as a page kept",
    counters.NEAR_DUP_DOCS_DROPPED: "a near-duplicate of a page kept",
    counters.SPAN_DOCS_DROPPED: "too little left after removing repeated three-sentence spans",
}
_NOT_LANGUAGE = re.compile("^" + re.escape(counters.C4_PAGE) + "not_([a-z]{2,3})$")


def drop_reason(name: str) -> str:
    """What a drop counter means, in words; the counter name itself for one not in DROP_REASONS."""
    if name in DROP_REASONS:
        return DROP_REASONS[name]
    match = _NOT_LANGUAGE.match(name)
    if match:
        return f"not in language {match.group(1)} (the language rule)"
    return name


def _sum(counts: dict[str, int], prefix: str) -> int:
    return sum(n for name, n in counts.items() if name.startswith(prefix))


def _by_suffix(counts: dict[str, int], prefix: str) -> dict[str, int]:
    """{what follows `prefix`: n} for the counters under `prefix` (a reason, an outcome)."""
    return {name[len(prefix) :]: n for name, n in counts.items() if name.startswith(prefix)}


def build_report(counts: dict[str, int], splits: dict, run: dict | None = None) -> dict:
    """The funnel (documents per stage), drops per rule and image outcomes, from the job's counts; `run`
    (inputs, options, code_version, duration_s) says what produced it, and `flags` what stands out."""
    written = {split: info["rows"] for split, info in splits.items()}
    read = _sum(counts, counters.READ_PAGES)
    minimized = counts.get(counters.MINIMIZE_OK, 0)
    c4_kept = counts.get(counters.C4_KEPT, 0)
    url_unique = c4_kept - counts.get(counters.URL_DUPLICATES_DROPPED, 0)
    near_kept = url_unique - counts.get(counters.NEAR_DUP_DOCS_DROPPED, 0)
    span_kept = near_kept - counts.get(counters.SPAN_DOCS_DROPPED, 0)
    funnel = [
        {"stage": "pages read", "docs": read},
        {"stage": "minimized", "docs": minimized},
        {"stage": "kept by C4", "docs": c4_kept},
        {"stage": "unique URL", "docs": url_unique},
        {"stage": "after near-dup dedup", "docs": near_kept},
        {"stage": "after span dedup", "docs": span_kept},
        {"stage": "written", "docs": sum(written.values())},
    ]
    dropped = {name: n for name, n in counts.items() if name.startswith(counters.MINIMIZE_ERROR)}
    dropped.update(
        {
            name: n
            for name, n in counts.items()
            if name.startswith(counters.C4_PAGE) and not name.endswith(counters.C4_PAGE_TALLIES)
        }
    )
    for name in (
        counters.C4_UNEXPECTED,
        counters.URL_DUPLICATES_DROPPED,
        counters.NEAR_DUP_DOCS_DROPPED,
        counters.SPAN_DOCS_DROPPED,
    ):
        if counts.get(name):
            dropped[name] = counts[name]
    images = {
        "unique": counts.get(counters.IMAGES_UNIQUE, 0),
        "from_input": counts.get(counters.IMAGES_FROM_INPUT, 0),
        "fetched": counts.get(counters.IMAGES_FETCHED, 0),
        "data_uri": counts.get(counters.IMAGES_DATA_URI, 0),
        "failed": _by_suffix(counts, counters.IMAGES_FAILED),
        "filtered": _by_suffix(counts, counters.IMAGES_FILTERED),
        "fetch": fetch_outcomes(counts),
        "codes_written": counts.get(counters.IMAGES_ENCODED, 0),
        "near_duplicate_urls": counts.get(counters.IMAGES_NEAR_DUPLICATE_URLS, 0),
        "refs_kept": counts.get(counters.IMAGES_REFS_KEPT, 0),
        "refs_removed": counts.get(counters.IMAGES_REFS_REMOVED, 0),
        "refs_over_doc_cap": counts.get(counters.IMAGES_REFS_OVER_DOC_CAP, 0),
    }
    report = {
        "funnel": funnel,
        "dropped": dict(sorted(dropped.items())),
        "languages": languages(counts),
        "images": images,
        "written": written,
        "counts": dict(sorted(counts.items())),
    }
    if run is not None:
        report["run"] = run
    report["flags"] = flags(report)
    return report


def flags(report: dict) -> list[str]:
    """Sentences on what a reader of the numbers must not miss: images off, a high image-failure share."""
    out = []
    if not report.get("run", {}).get("options", {}).get("images", True):
        out.append(
            "Images were off (--no-images): every <img> was removed, so these shards hold no image codes "
            "and a model trained on them never sees an image."
        )
    images = report["images"]
    failed = sum(images["failed"].values())
    if images["unique"] and failed / images["unique"] > IMAGE_FAILURE_FLAG:
        worst = max(images["failed"].items(), key=lambda item: (item[1], item[0]))[0]
        out.append(
            f"{failed} of {images['unique']} images ({failed / images['unique']:.0%}) failed to load or decode "
            f"(most: {worst}); their <img> elements were removed."
        )
    return out


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


IMAGE_ROWS = (
    "unique",
    "from_input",
    "fetched",
    "data_uri",
    "codes_written",
    "near_duplicate_urls",
    "refs_kept",
    "refs_removed",
    "refs_over_doc_cap",
)


def languages(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Pages per detected language: kept by C4, dropped by the language rule (not selected, or below the
    threshold; "und": no language found), from the "c4.language:<code>:kept|dropped" counters."""
    table: dict[str, dict[str, int]] = {}
    for name, n in _by_suffix(counts, counters.C4_LANGUAGE).items():
        code, outcome = name.rsplit(":", 1)
        table.setdefault(code, {"kept": 0, "dropped": 0})[outcome] = n
    return dict(sorted(table.items(), key=lambda item: (-item[1]["kept"], -item[1]["dropped"], item[0])))


def read_losses(counts: dict[str, int]) -> dict[str, int]:
    """Why records or files gave no page: the read.* counters other than tallies (unreadable files,
    broken records, unknown file types, non-HTML records, pages over --limit ...)."""
    return {
        name: n
        for name, n in sorted(counts.items())
        if name.startswith(counters.READ) and not name.startswith(counters.READ_TALLIES) and n
    }


def report_table(report: dict) -> str:
    """Plain-text summary table printed at the end of `cm3-data run`."""
    lines = [f"NOTE: {flag}" for flag in report.get("flags", [])] + ([""] if report.get("flags") else [])
    top = max([row["docs"] for row in report["funnel"]] + [1])
    lines.append(f"{'stage':<28}{'documents':>10}  ")
    lines.append("-" * 60)
    for row in report["funnel"]:
        bar = "#" * round(20 * row["docs"] / top)
        lines.append(f"{row['stage']:<28}{row['docs']:>10}  {bar}")
    losses = read_losses(report.get("counts", {}))
    if losses:
        lines.append("")
        lines.append(f"{'not read (files or records)':<44}{'count':>10}")
        lines.append("-" * 60)
        for name, n in losses.items():
            lines.append(f"{name:<44}{n:>10}")
    lines.append("")
    reasons = {name: drop_reason(name) for name in report["dropped"]}
    width = max([44, *(len(reason) + 2 for reason in reasons.values())])  # a reason is never cut short
    lines.append(f"{'dropped by rule':<{width}}{'documents':>10}")
    lines.append("-" * (width + 16))
    for name, n in report["dropped"].items():
        lines.append(f"{reasons[name]:<{width}}{n:>10}")
    if report.get("languages"):
        lines.append("")
        lines.append(f"{'language (kept by C4 / dropped by language)':<44}{'kept':>8}{'dropped':>8}")
        lines.append("-" * 60)
        for code, n in report["languages"].items():
            lines.append(f"{code:<44}{n['kept']:>8}{n['dropped']:>8}")
    images = report["images"]
    lines.append("")
    lines.append(f"{'images':<44}{'count':>10}")
    lines.append("-" * 60)
    for key in IMAGE_ROWS:
        lines.append(f"{key:<44}{images.get(key, 0):>10}")
    for reason, n in sorted(images.get("filtered", {}).items()):
        lines.append(f"{'filtered: ' + reason:<44}{n:>10}")
    for reason, n in sorted(images["failed"].items()):
        lines.append(f"{'failed: ' + reason:<44}{n:>10}")
    attempts = sum(images.get("fetch", {}).values())
    if attempts:
        ok = images["fetch"].get("ok", 0)
        lines.append(f"{'fetch attempts (ok ' + format(ok / attempts, '.0%') + ')':<44}{attempts:>10}")
    lines.append("")
    lines.append("written: " + ", ".join(f"{split} {n}" for split, n in report["written"].items()))
    return "\n".join(lines)


def report_json(report: dict) -> bytes:
    return (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8")


def report_html(report: dict) -> bytes:
    """Self-contained HTML page (inline CSS + SVG, no external assets) with the funnel chart and tables."""
    esc = html_lib.escape
    funnel = report["funnel"]
    top = max([row["docs"] for row in funnel] + [1])
    bar_h, gap, label_w, chart_w = 26, 8, 170, 420
    height = len(funnel) * (bar_h + gap) + gap
    bars = []
    for i, row in enumerate(funnel):
        y = gap + i * (bar_h + gap)
        width = max(1, round(chart_w * row["docs"] / top))
        bars.append(
            f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end">{esc(row["stage"])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{width}" height="{bar_h}" rx="3" fill="#3b7dd8"/>'
            f'<text x="{label_w + width + 6}" y="{y + 18}">{row["docs"]}</text>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 80}" height="{height}" '
        f'font-family="sans-serif" font-size="13">{"".join(bars)}</svg>'
    )

    def table(title: str, rows: list[tuple[str, int]]) -> str:
        body = "".join(f"<tr><td>{esc(name)}</td><td class=n>{n}</td></tr>" for name, n in rows)
        return f"<h2>{esc(title)}</h2><table>{body}</table>"

    def dropped_table(dropped: dict[str, int]) -> str:
        body = "".join(
            f"<tr><td>{esc(drop_reason(name))}</td><td class=c>{esc(name)}</td><td class=n>{n}</td></tr>"
            for name, n in dropped.items()
        )
        return (
            "<h2>Dropped by rule</h2><table><tr><th>reason</th><th>counter</th><th>documents</th></tr>"
            f"{body}</table>"
        )

    def run_table(run: dict) -> str:
        """What produced the report: every option as the manifest records it (nested ones as JSON)."""
        if not run:
            return ""
        rows = [("inputs", "\n".join(run.get("inputs", [])))]
        rows += [
            ("code version", run.get("code_version", "")),
            ("duration", duration_text(run["duration_s"])),
        ]
        rows += [
            (f"option {key}", value if isinstance(value, str) else json.dumps(value, sort_keys=True))
            for key, value in sorted(run.get("options", {}).items())
            if key != "inputs"
        ]
        body = "".join(
            f"<tr><td>{esc(name)}</td><td class=v>{esc(str(value))}</td></tr>" for name, value in rows
        )
        return f"<h2>Run</h2><table>{body}</table>"

    def language_table(rows: dict[str, dict[str, int]]) -> str:
        if not rows:
            return ""
        body = "".join(
            f"<tr><td>{esc(code)}</td><td class=n>{n['kept']}</td><td class=n>{n['dropped']}</td></tr>"
            for code, n in rows.items()
        )
        return (
            "<h2>Languages</h2><table><tr><th>detected language</th><th>kept by C4</th>"
            f"<th>dropped by the language rule</th></tr>{body}</table>"
        )

    images = report["images"]
    image_rows = [("unique image URLs", images["unique"])]
    image_rows += [
        (key, images.get(key, 0))
        for key in ("from_input", "fetched", "data_uri", "codes_written", "near_duplicate_urls")
    ]
    image_rows += [("filtered: " + reason, n) for reason, n in sorted(images.get("filtered", {}).items())]
    image_rows += [("failed: " + reason, n) for reason, n in sorted(images["failed"].items())]
    image_rows += [("references kept", images["refs_kept"]), ("references removed", images["refs_removed"])]
    image_rows += [("references past the per-document cap", images.get("refs_over_doc_cap", 0))]
    notes = "".join(f"<p class=flag>{esc(flag)}</p>" for flag in report.get("flags", []))
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>cm3-data run report</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border-bottom:1px solid #ddd;padding:3px 12px}th{text-align:left;background:#f3f3f3}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}td.c{color:#777;font-size:90%}"
        "td.v{white-space:pre-wrap;font-family:monospace;font-size:90%;max-width:60em;overflow-wrap:anywhere}"
        "p.flag{background:#fff3cd;border-left:4px solid #d89b00;padding:8px 12px;max-width:60em}"
        "</style></head><body><h1>cm3-data run report</h1>"
        + notes
        + run_table(report.get("run", {}))
        + "<h2>Document funnel</h2>"
        + svg
        + dropped_table(report["dropped"])
        + language_table(report.get("languages", {}))
        + table("Images", image_rows)
        + table("Written", list(report["written"].items()))
        + table("All counters", list(report["counts"].items()))
        + "</body></html>\n"
    )
    return page.encode("utf-8")


def fetch_outcomes(counts: dict[str, int]) -> dict[str, int]:
    """Image fetch attempts by the fetcher's outcome ("ok", "timeout" ...), from the images.fetch.* counters."""
    return _by_suffix(counts, counters.IMAGES_FETCH)


# Below this many fetch attempts the failure rate is not judged: a handful of dead links is no outage.
MIN_FETCH_ATTEMPTS = 20


def fetch_failure(
    counts: dict[str, int], max_rate: float, min_attempts: int = MIN_FETCH_ATTEMPTS
) -> str | None:
    """One line for the console when more than `max_rate` of the image fetches failed, else None.

    Names the main failure and what to do: a job whose fetches all fail (no network, a proxy needed) would
    otherwise finish "successfully" with no image codes."""
    outcomes = fetch_outcomes(counts)
    attempts = sum(outcomes.values())
    failed = attempts - outcomes.get("ok", 0)
    if attempts < min_attempts or failed <= max_rate * attempts:
        return None
    main, n_main = max(
        ((o, n) for o, n in outcomes.items() if o != "ok"), key=lambda item: (item[1], item[0])
    )
    return (
        f"{failed} of {attempts} image fetches failed ({failed / attempts:.0%}, over --max-image-failure-rate "
        f"{max_rate:g}), mostly {main} ({n_main}): check the network or proxy (--fetch-proxy URL), or run with "
        "--no-fetch to use only the images found in the input"
    )
