"""report.py - turns the runs of e2e.py into results, tables, targets, SVG.

Kept apart from the driver so a results.json can be re-rendered without a
new run:  python3 tests/bench/report.py build/bench/results.json
prints the tables again and rewrites report.svg and report.md beside it.

Every ratio is taken inside one round (same configuration order slot,
seconds apart), then the median over rounds: machine noise moves both sides
of a ratio alike, so ratios are what the targets are judged on.
"""
import json
import os
import re
import statistics
import sys

MiB, GiB = 1 << 20, 1 << 30
MODE_NAMES = {"cl": "length", "chunked": "chunked", "multipart": "multipart"}


def size_label(n):
    if n % GiB == 0:
        return "%d GiB" % (n // GiB)
    return "%d MiB" % (n // MiB) if n % MiB == 0 else "%.1f MiB" % (n / MiB)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def parse_micro(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"^bench: (\S+) (\S+) (\S+)", line)
                if m:
                    try:
                        out.append({"name": m.group(1), "value": float(m.group(2)), "unit": m.group(3)})
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


# ------------------------------------------------------------- summaries ---

def pick(runs, **kw):
    return [r for r in runs if all(r.get(k) == v for k, v in kw.items())]


def same_round_ratio(runs, field, a, b):
    """Median over rounds of a[field] / b[field]; a and b are dicts of
    selectors, e.g. {"config": "sluice-stream", "mode": "cl"}."""
    ratios = []
    for ra in runs:
        if not ra["ok"] or ra.get(field) is None or not all(ra.get(k) == v for k, v in a.items()):
            continue
        for rb in runs:
            if (rb["ok"] and rb.get("round") == ra.get("round") and rb.get(field)
                    and all(rb.get(k) == v for k, v in b.items())):
                ratios.append(ra[field] / rb[field])
    return median(ratios)


def summarize(runs, status, configs, roster):
    """roster: which configurations each of the phases "conc" and "words"
    runs, so those that could not run are listed there too."""
    single, conc, slow, words = [], [], [], []
    for size in sorted({r["file_bytes"] for r in runs if r["phase"] == "single"}):
        rs = pick(runs, phase="single", file_bytes=size)
        for c, (_, modes, _) in configs.items():
            for m in modes:
                row = {"size": size, "config": c, "mode": m, "status": status.get(c, "not run")}
                mine = pick(rs, config=c, mode=m)
                ok = [r for r in mine if r["ok"]]
                if mine:
                    row.update(runs=len(mine), ok=len(ok),
                               mib_s=median(r.get("mib_s") for r in ok),
                               cpu_s_per_gib=median(r.get("cpu_s_per_gib") for r in ok),
                               peak_rss_mib=max((r["hwm_kib"] / 1024 for r in ok if "hwm_kib" in r), default=None),
                               x_direct=same_round_ratio(rs, "mib_s", {"config": c, "mode": m},
                                                         {"config": "direct", "mode": m}),
                               x_nginx_1m=same_round_ratio(rs, "mib_s", {"config": c, "mode": m},
                                                           {"config": "nginx-1m", "mode": m}))
                if mine or row["status"] != "ok":
                    single.append(row)
    for n in sorted({r["n"] for r in runs if r["phase"] == "conc"}):
        rs = pick(runs, phase="conc", n=n)
        for c in configs:
            mine = pick(rs, config=c)
            row = {"n": n, "config": c, "status": status.get(c, "not run")}
            if mine:
                ok = [r for r in mine if r["ok"]]
                row.update(size=mine[0]["file_bytes"], runs=len(mine), ok=len(ok),
                           mib_s=median(r.get("mib_s") for r in ok),
                           cpu_s_per_gib=median(r.get("cpu_s_per_gib") for r in ok),
                           peak_rss_mib=max((r["hwm_kib"] / 1024 for r in ok if "hwm_kib" in r), default=None),
                           x_direct=same_round_ratio(rs, "mib_s", {"config": c}, {"config": "direct"}))
                conc.append(row)
            elif row["status"] != "ok" and c in roster["conc"]:
                conc.append(row)
    for r in pick(runs, phase="slow"):
        row = {"config": r["config"], "mode": r["mode"], "ok": r["ok"], "seconds": r.get("seconds"),
               "file_bytes": r["file_bytes"],
               "rss_before_mib": r["rss_before_kib"] / 1024 if "rss_before_kib" in r else None,
               "peak_rss_mib": r["hwm_kib"] / 1024 if "hwm_kib" in r else None,
               "rss_samples_mib": [round(s / 1024, 2) for s in r.get("rss_samples_kib", [])]}
        if r["ok"] and row["peak_rss_mib"] is not None:
            row["growth_mib"] = row["peak_rss_mib"] - row["rss_before_mib"]
            row["flat"] = row["growth_mib"] <= roster["flat_mib"]
        slow.append(row)
    ws = pick(runs, phase="words")
    for c in configs:
        mine = pick(ws, config=c)
        if mine:
            ok = [r for r in mine if r["ok"]]
            words.append({"config": c, "file_bytes": mine[0]["file_bytes"], "runs": len(mine), "ok": len(ok),
                          "seconds": median(r.get("seconds") for r in ok),
                          "mib_s": median(r.get("mib_s") for r in ok),
                          "peak_rss_mib": max((r["hwm_kib"] / 1024 for r in ok if "hwm_kib" in r), default=None)})
        elif c in roster["words"] and status.get(c) not in (None, "ok"):
            words.append({"config": c, "status": status[c]})
    return single, conc, slow, words


# --------------------------------------------------------------- targets ---

def targets(runs, single, conc, slow, status, flat_mib):
    """The issue's targets, each a ratio or bound measured in this run."""
    out = []

    def add(name, value, limit, higher_is_better, unit="x", need=()):
        missing = [c for c in need if status.get(c) != "ok"]
        if missing:
            st, v = "n/a", "%s %s" % (missing[0], status.get(missing[0], "not run"))
        elif value is None:
            st, v = "n/a", "not measured"
        else:
            good = value >= limit if higher_is_better else value <= limit
            st, v = ("PASS" if good else "MISS"), value
        out.append({"target": name, "status": st, "value": v, "limit": limit, "unit": unit,
                    "rule": (">= " if higher_is_better else "<= ") + ("%g%s" % (limit, unit))})

    sizes = sorted({r["file_bytes"] for r in runs if r["phase"] == "single"})
    big = sizes[-1] if sizes else None
    rs = pick(runs, phase="single", file_bytes=big)
    lab = size_label(big) if big else "-"
    ss, sc = {"config": "sluice-stream", "mode": "cl"}, {"config": "sluice-stream", "mode": "chunked"}
    add("passthrough CL MiB/s vs nginx-1m (%s)" % lab,
        same_round_ratio(rs, "mib_s", ss, {"config": "nginx-1m", "mode": "cl"}), 1.0, True,
        need=("sluice-stream", "nginx-1m"))
    add("passthrough CL MiB/s vs direct (%s)" % lab,
        same_round_ratio(rs, "mib_s", ss, {"config": "direct", "mode": "cl"}), 0.95, True, need=("sluice-stream",))
    add("chunked CPU/GiB vs relay-copy-1m (%s)" % lab,
        same_round_ratio(rs, "cpu_s_per_gib", sc, {"config": "relay-copy-1m", "mode": "chunked"}), 1.0, False,
        need=("sluice-stream", "relay-copy-1m"))
    add("--extract CPU/GiB vs relay-copy-1m (%s multipart)" % lab,
        same_round_ratio(rs, "cpu_s_per_gib", {"config": "sluice-extract", "mode": "multipart"},
                         {"config": "relay-copy-1m", "mode": "multipart"}), 1.0, False,
        need=("sluice-extract", "relay-copy-1m"))
    add("passthrough CL CPU/GiB vs relay-splice (%s)" % lab,
        same_round_ratio(rs, "cpu_s_per_gib", ss, {"config": "relay-splice", "mode": "cl"}), 1.0, False,
        need=("sluice-stream", "relay-splice"))
    one = [r for r in single if r["config"] == "sluice-stream" and r.get("size") == big]
    add("passthrough peak RSS, one upload (%s)" % lab,
        max((r["peak_rss_mib"] for r in one if r.get("peak_rss_mib")), default=None), 4, False, " MiB",
        need=("sluice-stream",))
    for n, limit in ((16, 8), (256, 32)):
        row = next((r for r in conc if r["config"] == "sluice-stream" and r["n"] == n), None)
        add("passthrough peak RSS, %d concurrent uploads" % n, row.get("peak_rss_mib") if row else None,
            limit, False, " MiB", need=("sluice-stream",))
    ws = pick(runs, phase="words")
    add("word list: --extract faster than --mode buffer",
        same_round_ratio(ws, "seconds", {"config": "sluice-buffer"}, {"config": "sluice-extract"}), 2.0, True,
        need=("sluice-extract", "sluice-buffer"))
    add("word list: --extract less memory than --mode buffer",
        same_round_ratio(ws, "hwm_kib", {"config": "sluice-buffer"}, {"config": "sluice-extract"}), 20.0, True,
        need=("sluice-extract", "sluice-buffer"))
    for c in ("sluice-stream", "sluice-extract"):
        row = next((r for r in slow if r["config"] == c), None)
        add("%s peak RSS growth with a 2 MiB/s upstream" % c, row.get("growth_mib") if row else None,
            flat_mib, False, " MiB", need=(c,))
    return out


def build(args, runs, status, configs, roster, micro, meta):
    single, conc, slow, words = summarize(runs, status, configs, roster)
    failures = ["%s %s %s %s%s: %s" % (r["phase"], r["config"], r["mode"], size_label(r["file_bytes"]),
                                      " x%d" % r["n"] if r["n"] > 1 else "", r.get("error", "?"))
                for r in runs if not r["ok"]]
    failures += ["%s: %s" % (c, s) for c, s in status.items() if s.startswith("failed")]
    meta = dict(meta, flat_mib=roster["flat_mib"],
                args={k: v for k, v in vars(args).items() if k not in ("configs",)})
    return {"meta": meta, "micro": micro,
            "configs": {c: {"description": d, "modes": list(m), "status": status.get(c, "not run")}
                        for c, (_, m, d) in configs.items()},
            "single": single, "concurrency": conc, "slow_upstream": slow, "words": words,
            "targets": targets(runs, single, conc, slow, status, roster["flat_mib"]),
            "failures": failures, "runs": runs}


# ---------------------------------------------------------------- tables ---

def fmt(x, nd=1, suffix=""):
    return "-" if x is None else ("%%.%df%%s" % nd) % (x, suffix)


def table(headers, rows, nleft=1):
    """A markdown table, aligned for reading in a terminal too: the first
    nleft columns are names, the others figures (right-aligned)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    right = [i >= nleft for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)) + " |"
    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else "-" * (w + 2) for w, r in zip(widths, right)) + "|"
    return [line(headers), sep] + [line(r) for r in cells]


def text(res):
    m = res["meta"]
    out = ["", "## sluice end-to-end benchmark, %s" % m.get("time"),
           "%s, %s CPUs, Linux %s; %s; %s; sluice %s" % (
               m.get("cpu"), m.get("ncpu"), m.get("kernel"), " ".join((m.get("curl") or "curl ?").split()[:2]),
               m.get("nginx") or "nginx not installed", m.get("sluice"))]
    if res["micro"]:
        out += ["", "### Micro-benchmarks", ""]
        out += table(["name", "value", "unit"], [[b["name"], "%g" % b["value"], b["unit"]] for b in res["micro"]])
    for size in sorted({r["size"] for r in res["single"]}):
        rows = [r for r in res["single"] if r["size"] == size]
        n = max((r.get("runs", 0) for r in rows), default=0)
        out += ["", "### Single uploads, %s (median of %d round%s; x = same round, same body)"
                % (size_label(size), n, "" if n == 1 else "s"), ""]
        out += table(["config", "body", "MiB/s", "CPU s/GiB", "peak RSS MiB", "x direct", "x nginx-1m", "ok"], nleft=2,
                     rows=
                     [[r["config"], MODE_NAMES[r["mode"]]] + (
                         [fmt(r.get("mib_s"), 0), fmt(r.get("cpu_s_per_gib"), 2), fmt(r.get("peak_rss_mib")),
                          fmt(r.get("x_direct"), 2), fmt(r.get("x_nginx_1m"), 2), "%d/%d" % (r["ok"], r["runs"])]
                         if "runs" in r else [r["status"], "", "", "", "", ""]) for r in rows])
    for n in sorted({r["n"] for r in res["concurrency"]}):
        rows = [r for r in res["concurrency"] if r["n"] == n]
        size = next((r["size"] for r in rows if "size" in r), 0)
        out += ["", "### %d concurrent uploads of %s (aggregate)" % (n, size_label(size)), ""]
        out += table(["config", "MiB/s", "CPU s/GiB", "peak RSS MiB", "x direct", "ok"],
                     [[r["config"]] + ([fmt(r.get("mib_s"), 0), fmt(r.get("cpu_s_per_gib"), 2),
                                        fmt(r.get("peak_rss_mib")), fmt(r.get("x_direct"), 2),
                                        "%d/%d" % (r["ok"], r["runs"])] if "runs" in r else
                                       [r["status"], "", "", "", ""]) for r in rows])
    if res["slow_upstream"]:
        size = res["slow_upstream"][0]["file_bytes"]
        flat = res["meta"].get("flat_mib", 2)
        out += ["", "### Slow upstream: %s upload as fast as curl can, the sink reads 2 MiB/s" % size_label(size),
                "", "Flat: peak RSS at most %g MiB above the RSS before the upload." % flat, ""]
        out += table(["config", "body", "seconds", "RSS before MiB", "peak RSS MiB", "growth MiB",
                      "RSS samples (first..last)", "flat"], nleft=2, rows=
                     [[r["config"], MODE_NAMES[r["mode"]], fmt(r["seconds"]), fmt(r["rss_before_mib"]),
                       fmt(r["peak_rss_mib"]), fmt(r.get("growth_mib")),
                       "%.1f..%.1f" % (r["rss_samples_mib"][0], r["rss_samples_mib"][-1])
                       if r["rss_samples_mib"] else "-",
                       {True: "yes", False: "NO", None: "-"}[r.get("flat")] if r["ok"] else "FAILED"]
                      for r in res["slow_upstream"]])
    if res["words"]:
        size = next((r["file_bytes"] for r in res["words"] if "file_bytes" in r), 0)
        out += ["", "### Streaming vs buffering: %.0f MB word list as a multipart upload" % (size / 1e6), ""]
        out += table(["config", "seconds", "MiB/s", "peak RSS MiB", "ok"],
                     [[r["config"]] + ([fmt(r["seconds"], 3), fmt(r["mib_s"], 0), fmt(r["peak_rss_mib"]),
                                        "%d/%d" % (r["ok"], r["runs"])] if "runs" in r else
                                       [r["status"], "", "", ""]) for r in res["words"]])
    out += ["", "### Targets (ratios from the same run)", ""]
    for t in res["targets"]:
        v = t["value"]
        shown = v if isinstance(v, str) else ("%.2f%s" % (v, t["unit"]))
        out.append("%-4s  %-58s %s (%s)" % (t["status"], t["target"], shown, t["rule"]))
    if res["failures"]:
        out += ["", "### Failures", ""] + ["FAILED " + f for f in res["failures"]]
    return out


# ------------------------------------------------------------------- SVG ---

COLORS = {"direct": "#9e9e9e", "relay": "#616161", "nginx": "#43a047", "sluice": "#1e88e5"}


def color_of(config):
    for k, c in COLORS.items():
        if config.startswith(k):
            return c
    return "#757575"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bar_chart(title, items, unit, y, width=760, label_w=210, bar_h=16):
    """items: [(label, value or None, config)]. Returns (svg parts, height)."""
    parts = ['<text x="10" y="%d" class="t">%s</text>' % (y + 16, esc(title))]
    y += 28
    top = max((v for _, v, _ in items if isinstance(v, (int, float))), default=1) or 1
    span = width - label_w - 90
    for label, v, config in items:
        parts.append('<text x="%d" y="%d" class="l" text-anchor="end">%s</text>'
                     % (label_w - 6, y + bar_h - 4, esc(label)))
        if not isinstance(v, (int, float)):
            parts.append('<text x="%d" y="%d" class="v">%s</text>' % (label_w + 4, y + bar_h - 4,
                                                                     esc(v or "not measured")))
        else:
            w = max(1.0, span * v / top)
            parts.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>'
                         % (label_w, y, w, bar_h, color_of(config)))
            parts.append('<text x="%.1f" y="%d" class="v">%s %s</text>'
                         % (label_w + w + 4, y + bar_h - 4, "%.3g" % v if v < 100 else "%.0f" % v, unit))
        y += bar_h + 4
    return parts, 28 + len(items) * (bar_h + 4) + 12


def svg(res):
    """Bar charts: throughput and peak RSS of one upload of the largest
    size, peak RSS under concurrency, and the word-list replica. A
    configuration that did not run shows why (e.g. "not built")."""
    def val(r, key):
        return r.get(key) if r.get("runs") else r.get("status", "not run")

    charts = []
    sizes = sorted({r["size"] for r in res["single"] if r.get("runs")})
    if sizes:
        rows = [r for r in res["single"] if r["size"] == sizes[-1]]
        label = size_label(sizes[-1])
        charts.append(("Throughput, one %s upload (MiB/s, median)" % label,
                       [("%s %s" % (r["config"], MODE_NAMES[r["mode"]]), val(r, "mib_s"), r["config"])
                        for r in rows], "MiB/s"))
        charts.append(("Proxy peak RSS, one %s upload (MiB)" % label,
                       [("%s %s" % (r["config"], MODE_NAMES[r["mode"]]), val(r, "peak_rss_mib"), r["config"])
                        for r in rows if r["config"] != "direct"], "MiB"))
    for n in sorted({r["n"] for r in res["concurrency"]}):
        rows = [r for r in res["concurrency"] if r["n"] == n and r["config"] != "direct"]
        charts.append(("Proxy peak RSS, %d concurrent uploads (MiB)" % n,
                       [(r["config"], val(r, "peak_rss_mib"), r["config"]) for r in rows], "MiB"))
    if res["words"]:
        charts.append(("Word-list multipart upload: peak RSS (MiB)",
                       [(r["config"], val(r, "peak_rss_mib"), r["config"])
                        for r in res["words"] if r["config"] != "direct"], "MiB"))
        charts.append(("Word-list multipart upload: time (s)",
                       [(r["config"], val(r, "seconds"), r["config"]) for r in res["words"]], "s"))
    parts, y = [], 40
    for title, items, unit in charts:
        p, h = bar_chart(title, items, unit, y)
        parts += p
        y += h
    m = res["meta"]
    head = ('<svg xmlns="http://www.w3.org/2000/svg" width="780" height="%d" viewBox="0 0 780 %d" '
            'font-family="sans-serif">\n<style>.t{font-size:14px;font-weight:bold}.l,.v{font-size:11px}'
            '.s{font-size:11px;fill:#555}</style>\n<rect width="100%%" height="100%%" fill="white"/>\n'
            '<text x="10" y="18" class="t">sluice end-to-end benchmark</text>\n'
            '<text x="10" y="34" class="s">%s, %s CPUs, %s</text>\n' % (
                y + 10, y + 10, esc(m.get("cpu", "")), m.get("ncpu"), esc(m.get("time", ""))))
    return head + "\n".join(parts) + "\n</svg>\n"


def main(argv):
    if len(argv) != 1:
        sys.exit("usage: report.py RESULTS.json")
    with open(argv[0]) as f:
        res = json.load(f)
    lines = text(res)
    print("\n".join(lines))
    d = os.path.dirname(os.path.abspath(argv[0]))
    with open(os.path.join(d, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(d, "report.svg"), "w") as f:
        f.write(svg(res))


if __name__ == "__main__":
    main(sys.argv[1:])
