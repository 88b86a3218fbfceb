"""Funnel report of a run, computed from the counted events (data, not Beam metrics, so every runner
reports it): a text table, report.json and a self-contained report.html with an inline SVG funnel."""

from __future__ import annotations

import html as html_lib
import json


def _sum(counts: dict[str, int], prefix: str) -> int:
    return sum(n for name, n in counts.items() if name.startswith(prefix))


def build_report(counts: dict[str, int], splits: dict) -> dict:
    """The funnel (documents per stage), drops per rule and image outcomes, from the job's counts."""
    written = {split: info["rows"] for split, info in splits.items()}
    read = _sum(counts, "read.pages.")
    minimized = counts.get("minimize.ok", 0)
    c4_kept = counts.get("c4.kept", 0)
    url_unique = c4_kept - counts.get("dedup.url_duplicates_dropped", 0)
    near_kept = url_unique - counts.get("dedup.near_dup_docs_dropped", 0)
    span_kept = near_kept - counts.get("dedup.span_docs_dropped", 0)
    funnel = [
        {"stage": "pages read", "docs": read},
        {"stage": "minimized", "docs": minimized},
        {"stage": "kept by C4", "docs": c4_kept},
        {"stage": "unique URL", "docs": url_unique},
        {"stage": "after near-dup dedup", "docs": near_kept},
        {"stage": "after span dedup", "docs": span_kept},
        {"stage": "written", "docs": sum(written.values())},
    ]
    dropped = {name: n for name, n in counts.items() if name.startswith("minimize.error.")}
    dropped.update(
        {
            name: n
            for name, n in counts.items()
            if name.startswith("c4.page:") and not name.endswith((":kept", ":read"))
        }
    )
    for name in (
        "c4.error.unexpected",
        "dedup.url_duplicates_dropped",
        "dedup.near_dup_docs_dropped",
        "dedup.span_docs_dropped",
    ):
        if counts.get(name):
            dropped[name] = counts[name]
    images = {
        "unique": counts.get("images.unique", 0),
        "from_input": counts.get("images.source.from_input", 0),
        "fetched": counts.get("images.source.fetched", 0),
        "data_uri": counts.get("images.source.data_uri", 0),
        "failed": {
            name[len("images.failed.") :]: n
            for name, n in counts.items()
            if name.startswith("images.failed.")
        },
        "filtered": {
            name[len("images.filtered.") :]: n
            for name, n in counts.items()
            if name.startswith("images.filtered.")
        },
        "fetch": {
            name[len("images.fetch.") :]: n for name, n in counts.items() if name.startswith("images.fetch.")
        },
        "codes_written": counts.get("images.encoded", 0),
        "near_duplicate_urls": counts.get("images.near_duplicate_urls", 0),
        "refs_kept": counts.get("images.refs_kept", 0),
        "refs_removed": counts.get("images.refs_removed", 0),
        "refs_over_doc_cap": counts.get("images.refs_over_doc_cap", 0),
    }
    return {
        "funnel": funnel,
        "dropped": dict(sorted(dropped.items())),
        "languages": languages(counts),
        "images": images,
        "written": written,
        "counts": dict(sorted(counts.items())),
    }


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
    for name, n in counts.items():
        if name.startswith("c4.language:"):
            code, outcome = name[len("c4.language:") :].rsplit(":", 1)
            table.setdefault(code, {"kept": 0, "dropped": 0})[outcome] = n
    return dict(sorted(table.items(), key=lambda item: (-item[1]["kept"], -item[1]["dropped"], item[0])))


def report_table(report: dict) -> str:
    """Plain-text summary table printed at the end of `cm3-data run`."""
    lines = []
    top = max([row["docs"] for row in report["funnel"]] + [1])
    lines.append(f"{'stage':<28}{'documents':>10}  ")
    lines.append("-" * 60)
    for row in report["funnel"]:
        bar = "#" * round(20 * row["docs"] / top)
        lines.append(f"{row['stage']:<28}{row['docs']:>10}  {bar}")
    lines.append("")
    lines.append(f"{'dropped by rule':<44}{'documents':>10}")
    lines.append("-" * 60)
    for name, n in report["dropped"].items():
        lines.append(f"{name:<44}{n:>10}")
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
    page = (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>cm3-data run report</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td{border-bottom:1px solid #ddd;padding:3px 12px}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "</style></head><body><h1>cm3-data run report</h1><h2>Document funnel</h2>"
        + svg
        + table("Dropped by rule", list(report["dropped"].items()))
        + language_table(report.get("languages", {}))
        + table("Images", image_rows)
        + table("Written", list(report["written"].items()))
        + table("All counters", list(report["counts"].items()))
        + "</body></html>\n"
    )
    return page.encode("utf-8")


# Below this many fetch attempts the failure rate is not judged: a handful of dead links is no outage.
MIN_FETCH_ATTEMPTS = 20


def fetch_failure(
    counts: dict[str, int], max_rate: float, min_attempts: int = MIN_FETCH_ATTEMPTS
) -> str | None:
    """One line for the console when more than `max_rate` of the image fetches failed, else None.

    Names the main failure and what to do: a job whose fetches all fail (no network, a proxy needed) would
    otherwise finish "successfully" with no image codes."""
    outcomes = {
        name[len("images.fetch.") :]: n for name, n in counts.items() if name.startswith("images.fetch.")
    }
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
