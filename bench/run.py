"""The benchmark suite of issue 4: symgrad against NumPy, Numba, JAX, torch and scikit-learn.

    python -m bench --quick            # a few minutes; smaller sizes, 5 repeats
    python -m bench --full             # the published numbers (BENCHMARKS.md)
    python -m bench --quick --tiny     # minimal sizes, for the test suite
    python bench/run.py --full --only W2,W5 --out BENCHMARKS.md   # re-run some workloads, keep the others

Workloads: W1 seed formula (``bench/bench_formula.py`` + ``bench/w1_formula.py``), W2 logistic
regression full batch, W3 small net minibatch SGD, W4 digits MLP with Adam, W5 build cost, W6 the
NIST StRD nonlinear-regression suite (accuracy against certified values), W7 convolutional networks
(issue 15, which calls them W6): the digits CNN and LeNet-5 against torch and JAX, and their build
cost, W8 symgrad on Dask (the cost of distribution on one machine, and dask-ml's L-BFGS), W9 a
character-level transformer (issue 16) against torch and JAX, and its build cost, W10 practitioner
workloads (issue 18): whole `fit` calls on scikit-learn's data sets and a 100k-row synthetic set at
batch 64, 1024 and 4096 against scikit-learn and torch at one and two threads, with accuracy and
peak memory (each configuration in its own process).
Each writes one section; the file starts with a table of the issue's targets, each judged
from measurements of the same run. Peers that are not installed are skipped with a note.
If two implementations compute different things (trajectories disagree) the run fails and
nothing is written.

Unless ``SYMGRAD_CACHE_DIR`` is set, symgrad builds into a fresh temporary cache, so each
workload's "first call" of symgrad is a cold build.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    SETTLE_S,
    LoadMonitor,
    Section,
    Target,
    flush_print,
    loadavg,
    machine_info,
    make_mode,
    now,
    table,
    verdict,
)

WORKLOADS = {
    "W1": ("bench.w1_formula", "## Seed formula (issue 2)"),
    "W2": ("bench.w2_logreg", "## W2: "),
    "W3": ("bench.w3_small_net", "## W3: "),
    "W4": ("bench.w4_digits", "## W4: "),
    "W5": ("bench.w5_build", "## W5: "),
    "W6": ("bench.w6_nist", "## W6: "),
    "W7": ("bench.w7_cnn", "## W7: "),
    "W8": ("bench.w8_distributed", "## W8: "),
    "W9": ("bench.w9_transformer", "## W9: "),
    "W10": ("bench.w10_practitioner", "## W10: "),
}

INTRO = """# Benchmarks

Measured numbers for symgrad's generated code against hand-written NumPy and Numba and against
PyTorch, JAX and scikit-learn, and the cost of building (deriving, generating and
JIT-compiling) the models. Everything here is written by the suite in `bench/`; each section
says how, where and when it was measured. Numbers from different machines are not comparable,
and on this 2-core machine other processes skew timings (each section reports how much CPU
other processes used while it ran).

    python -m bench --full      # all workloads, the numbers below (about {full_minutes} minutes)
    python -m bench --quick     # a few minutes, smaller sizes, for a smoke test
    python bench/bench_formula.py --write BENCHMARKS.md   # W1 alone, without its JAX/torch rows

Peers come from the `[bench]` extra: `torch==2.13.0` (CPU wheel), `jax`, `scikit-learn`,
`threadpoolctl`. Missing ones are skipped with a note. Every workload (but W10, whose section says
how it differs) runs all implementations in one process, interleaved, with medians of at least 5
repeats, the same math, data, initial
weights and shuffles; in `--full`, each timed call starts after a {settle} s pause, so that the
previous implementation's idle worker threads (OpenMP, OpenBLAS) have stopped spinning on the
other core (measured: a spinning thread there slows a single-threaded kernel by 30%);
compile/trace time is reported apart from steady-state time; ratios are time / symgrad time
(> 1 means symgrad is faster); and each implementation's loss trajectory over the first steps
is compared with symgrad's, the run failing loudly on disagreement.
"""


def targets_table(targets: list[Target], kept_rows: list[str]) -> str:
    rows = [[t.workload, t.text, t.measured, verdict(t.met), t.evidence or ""] for t in targets]
    header, rule, *lines = table(["workload", "target", "measured (same run)", "verdict", "evidence"], rows,
                                 "lllll").split("\n")
    # rows kept from the previous file go back in workload order (the sort is stable within one)
    lines = sorted(lines + kept_rows, key=lambda ln: int(re.match(r"^\| W(\d+)", ln).group(1)))
    return "\n".join([header, rule, *lines])


def _split_sections(text: str) -> dict[str, str]:
    """'## ...' header line -> the section text (up to the next '## ')."""
    out = {}
    for m in re.finditer(r"^(## [^\n]*)\n.*?(?=^## |\Z)", text, re.S | re.M):
        out[m.group(1)] = m.group(0).rstrip("\n") + "\n"
    return out


def _run_blocks(machine: str) -> list[str]:
    """The runs a previous 'Machine and settings' section describes, newest first: its file's
    own run, then the earlier runs it kept."""
    body = machine.split("\n", 1)[-1]
    # the previous file's own note on runs it had no record of is written anew below
    body = re.sub(r"^No machine record is left[^\n]*\n?", "", body, flags=re.M)
    blocks = re.split(r"^### The run that measured[^\n]*\n", body, flags=re.M)
    return [b.strip("\n") for b in blocks if b.strip()]


def _measured(block: str) -> set[str] | None:
    """The workloads a run block's command ran (None: all of them)."""
    command = re.search(r"^Command: `python -m bench[^`]*`", block, re.M)
    only = re.search(r"--only ([\w,]+)", command.group(0)) if command else None
    return set(only.group(1).split(",")) if only else None


def _earlier_runs(machine: str, kept: list[str]) -> list[str]:
    """One block per earlier run that measured a kept section: each section belongs to the
    newest run that ran its workload (a run replaces the sections it measures)."""
    L = []
    for block in _run_blocks(machine) if machine else []:
        did = _measured(block)
        mine = [k for k in kept if did is None or k in did]
        if mine:
            L += [f"### The run that measured the kept sections {', '.join(mine)}", "", block, ""]
            kept = [k for k in kept if k not in mine]
    if kept:
        L += [f"No machine record is left for the runs that measured {', '.join(kept)}: earlier versions "
              "of this file kept only one earlier run (`git log -p BENCHMARKS.md` has them).", ""]
    return L


def assemble(sections: dict[str, Section], targets: list[Target], info: dict, args, elapsed: float,
             old_text: str) -> str:
    old = _split_sections(old_text) if old_text else {}
    kept_rows = []
    if args.only and old:
        tab = old.get("## Targets (issue 4)", "")
        for line in tab.splitlines():
            m = re.match(r"^\| (W\d+)", line)
            if m and m.group(1) not in sections:
                kept_rows.append(line)
    minutes = max(1, round(elapsed / 60)) if args.mode == "full" else "20-30"
    previous = re.search(r"the numbers below \(about (\d+) minutes\)", old_text or "")
    if args.only and previous:  # a partial run says nothing about the whole suite's time
        minutes = previous.group(1)
    L = [INTRO.format(full_minutes=minutes, settle=SETTLE_S)]
    L.append("## Targets (issue 4)")
    L.append("")
    ran = ", ".join(sections)
    kept_w = sorted({re.match(r"^\| (W\d+)", r).group(1) for r in kept_rows}, key=lambda w: int(w[1:]))
    kept = (f" Rows of other workloads ({', '.join(kept_w)}) are kept from the "
            "previous version of this file." if kept_rows else "")
    L.append(f"Each target of issue 4 (and the performance targets of issue 3, marked so; W7's are issue 15's, "
             "W9's issue 16's), judged from the "
             f"`--{args.mode}` run of {now()} ({ran}; {elapsed / 60:.1f} minutes).{kept} 'not measured' means the "
             "peer is not installed or the mode skips it. Where a target is missed, the evidence column and the "
             "workload's section give the measurement that shows why.")
    L.append("")
    L.append(targets_table(targets, kept_rows))
    L.append("")
    L.append("## Machine and settings")
    L.append("")
    L.append(f"Command: `python -m bench {'--quick --tiny' if args.tiny else '--' + args.mode}"
             f"{' --only ' + args.only if args.only else ''}`; started {info.pop('_started')}, "
             f"load average at the end {loadavg()}.")
    L.append("")
    L += [f"- {k}: {v}" for k, v in info.items()]
    L.append("")
    # kept sections were measured by earlier runs: each one's machine and peers stay stated
    L += _earlier_runs(old.get("## Machine and settings", ""),
                       [k for k, (_, h) in WORKLOADS.items() if k not in sections and any(o.startswith(h) for o in old)])
    for key, (_, header) in WORKLOADS.items():
        if key in sections:
            L.append(sections[key].markdown.rstrip("\n"))
            L.append("")
        else:
            prev = [v for h, v in old.items() if h.startswith(header)]
            if prev:
                L.append(prev[0].rstrip("\n"))
                L.append("")
    return "\n".join(L).rstrip("\n") + "\n"


def wait_quiet(limit: float, threshold: float = 0.15) -> None:
    """Wait (up to ``limit`` seconds) until other processes use less than ``threshold`` cores for 5 s."""
    t0 = time.perf_counter()
    while True:
        mon = LoadMonitor()
        time.sleep(5.0)
        busy = mon.others()
        if busy < threshold:
            return
        if time.perf_counter() - t0 > limit:
            flush_print(f"bench: other processes still use {busy:.2f} cores; going ahead after {limit:.0f} s")
            return
        flush_print(f"bench: other processes use {busy:.2f} cores; waiting for a quiet machine ...")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes, 5 repeats: a few minutes (default)")
    g.add_argument("--full", action="store_true", help="the published sizes and repeats")
    ap.add_argument("--tiny", action="store_true", help="minimal sizes (with --quick), for the test suite")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"), help="Markdown file to write (default: %(default)s)")
    ap.add_argument("--only", help="comma-separated workloads to run (W1..W10); other sections are kept from --out")
    ap.add_argument("--json", help="also write the raw measurements to this JSON file")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each workload, wait up to SECONDS for other processes to leave the CPUs idle")
    args = ap.parse_args(argv)
    if args.tiny and args.full:
        ap.error("--tiny goes with --quick, not --full")
    args.mode = "tiny" if args.tiny else ("full" if args.full else "quick")
    mode = make_mode(args.mode)
    todo = [w.strip().upper() for w in args.only.split(",")] if args.only else list(WORKLOADS)
    unknown = [w for w in todo if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")

    # no background compile of a row-block loop (symgrad/runtime/prewarm.py) beside a measurement:
    # a detached compiler outliving one build child would slow the next; here and in every child
    os.environ.setdefault("SYMGRAD_PREWARM", "0")
    own_cache = None
    if not os.environ.get("SYMGRAD_CACHE_DIR"):
        own_cache = tempfile.mkdtemp(prefix="symgrad-bench-")
        os.environ["SYMGRAD_CACHE_DIR"] = own_cache
    started = time.perf_counter()
    try:
        info = machine_info()
        info["_started"] = now()
        flush_print(f"bench: mode {args.mode}, workloads {todo}, symgrad cache {os.environ['SYMGRAD_CACHE_DIR']}")
        sections: dict[str, Section] = {}
        targets: list[Target] = []
        for key in todo:
            module = __import__(WORKLOADS[key][0], fromlist=["run"])
            if args.wait_quiet > 0:
                wait_quiet(args.wait_quiet)
            t0 = time.perf_counter()
            flush_print(f"bench: {key} ...")
            sec = module.run(mode)
            flush_print(f"bench: {key} done in {time.perf_counter() - t0:.1f} s")
            for t in sec.targets:
                if mode.tiny and t.met is not None:  # tiny sizes say nothing about the targets
                    t.met, t.measured = None, f"{t.measured} (tiny sizes: not judged)"
                flush_print(f"    [{verdict(t.met)}] {t.workload}: {t.text}: {t.measured}")
            sections[key] = sec
            targets += sec.targets
        elapsed = time.perf_counter() - started
        import symgrad.jit as sgjit

        if sgjit._code_fingerprint() != sgjit._FINGERPRINT:
            info["WARNING"] = ("symgrad's sources changed while this run was in progress (code fingerprint "
                               f"{sgjit._FINGERPRINT[:12]} at start, {sgjit._code_fingerprint()[:12]} at the end): "
                               "in-process workloads used the code imported at the start, later W5 subprocesses "
                               "may have used newer code")
        out = Path(args.out)
        old = out.read_text() if out.exists() else ""
        out.write_text(assemble(sections, targets, info, args, elapsed, old))
        flush_print(f"bench: wrote {out} ({elapsed:.0f} s)")
        if args.json:
            Path(args.json).write_text(json.dumps({k: s.data for k, s in sections.items()}, indent=1, default=str))
    finally:
        if own_cache:
            shutil.rmtree(own_cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
