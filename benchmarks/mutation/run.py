"""Mutation check: put one small defect at a time into satflow's core modules and see whether the
test suite notices. Reports the share of mutants caught, per module and overall.

Not part of CI (about 20 minutes on 2 shared cores); run it before resolving an issue that changes
these modules:
    python benchmarks/mutation/run.py [--modules stats store ...] [--max-mutants 8] [--seed 0]
                                      [--rev COMMIT] [--out benchmarks/mutation/results/mutation.json]
    python benchmarks/mutation/run.py --list --modules stats          # the sampled mutants, not run
    python benchmarks/mutation/run.py --only stats:const-plus:f3f7fa87 --tests tests/test_stats.py \
        --out /tmp/check.json                                       # does a new test kill this mutant?

How it works:
1. The repository is copied to a temporary directory: the files of `--rev` (git archive), or the
   working tree's tracked and untracked non-ignored files. Nothing in the repository is touched, so
   other work and test runs there go on undisturbed. PYTHONPATH points at the copy (checked).
2. Mutants (see mutate.py for the operators) are found in each module's AST and sampled per module
   with random.Random(f"{seed}:{module}"): the same seed on the same source gives the same mutants,
   and an edit to one module does not change another module's sample.
3. One baseline run of every test file involved gives each file's duration; tests that fail on the
   unmutated copy are deselected (and listed in the JSON) so they cannot count as kills.
4. For each mutant: write the mutated file into the copy, run pytest (-x, nice, one process at a
   time) on the module's mirror tests, and only if they all pass on the tests that can reach it;
   restore the file. A run that exceeds 3 x the baseline time of its files + 120 s (start-up and
   collection under load are not in the baseline's per-file times) is a timeout.
   Test files slower than --slow seconds in the baseline (test_ingest, test_train) are left out
   unless MIRRORS names them for the module: they cost minutes per surviving mutant.
   killed = a test failed or errored, survived = everything passed, timeout = killed by the limit.

Score = (killed + timeout) / mutants. Mutants judged equivalent (they cannot change behaviour; see
equivalent.json and README.md) are left out of `score_non_equivalent`.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mutate import Mutant, apply, find_mutants  # noqa: E402

REPO = HERE.parents[1]

# The core modules (issue 14). `index` is one group over every file in satflow/index/; its sample is
# twice as large because it holds ~2200 lines against ~150-400 for each of the others.
MODULES = {
    "metrics": ["satflow/metrics.py"],
    "stats": ["satflow/stats.py"],
    "store": ["satflow/store/*.py"],
    "ingest": ["satflow/ingest/*.py"],
    "index": ["satflow/index/*.py", "satflow/cli/index.py"],  # its command line moved to satflow/cli/
    "codecs/container": ["satflow/codecs/container.py"],
    "codecs/errorbound": ["satflow/codecs/errorbound.py", "satflow/codecs/residuals.py"],  # residuals: split out
    "sources/cfvalues": ["satflow/sources/cfvalues.py"],
    "sources/timecodec": ["satflow/sources/timecodec.py"],
}
SAMPLE_WEIGHT = {"index": 2}

# Mirror tests: the files that test a module head-on, run first because they are fast and most
# likely to catch its mutants. Test files that import the module directly are added to these
# automatically (found in the copy, so new test files count). Some modules have no such file:
# cfvalues is reached only through satflow.sources.gridded (the encodings tests decode CF values),
# metrics also through the encode CLI that prints them.
MIRRORS = {
    "satflow/metrics.py": ["tests/codecs/test_metrics.py", "tests/codecs/test_codecs_cli.py"],
    "satflow/stats.py": ["tests/test_stats.py", "tests/test_store.py"],
    **{f"satflow/store/{name}.py": ["tests/test_store.py"] for name in ("__init__", "layout", "read")},
    "satflow/store/write.py": ["tests/test_store.py", "tests/ingest/test_ingest_job.py"],
    **{f"satflow/ingest/{name}.py": ["tests/test_ingest.py"] for name in ("__init__", "facts", "scan", "tasks")},
    **{f"satflow/ingest/{name}.py": ["tests/ingest/test_ingest_job.py", "tests/test_ingest.py"] for name in ("api", "job")},
    "satflow/ingest/inputs.py": ["tests/ingest/test_ingest_scan.py", "tests/cli/test_checks_before_cluster.py"],
    "satflow/ingest/plan.py": ["tests/ingest/test_ingest_plan.py", "tests/test_ingest.py"],
    "satflow/ingest/options.py": ["tests/test_config.py", "tests/sources/test_auxiliary.py", "tests/test_ingest.py"],
    "satflow/ingest/cube.py": ["tests/test_archive.py", "tests/test_ingest.py"],
    "satflow/codecs/container.py": ["tests/codecs/test_codecs_container.py"],
    "satflow/codecs/errorbound.py": ["tests/codecs/test_codecs_errorbound.py"],
    "satflow/codecs/residuals.py": ["tests/codecs/test_codecs_errorbound.py"],
    "satflow/sources/cfvalues.py": ["tests/sources/test_cf_rules.py", "tests/sources/test_sources_gridded_encodings.py",
                                    "tests/sources/test_sources_broken.py"],
    "satflow/sources/timecodec.py": ["tests/sources/test_cf_rules.py", "tests/sources/test_sources_timecodec.py",
                                     "tests/sources/test_sources_gridded_encodings.py"],
    "satflow/cli/index.py": ["tests/index/test_index_cli.py"],
    "satflow/index/api.py": ["tests/index/test_index_cli.py"],
}
# Index files mirror by name: satflow/index/splits.py -> tests/index/test_index_splits.py.


# ------------------------------------------------------------------------------------------------
# The copy
# ------------------------------------------------------------------------------------------------
def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout


def make_copy(rev: str | None) -> tuple[Path, dict]:
    root = Path(tempfile.mkdtemp(prefix="satflow-mutation-"))
    if rev:
        commit = git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        source = {"rev": rev, "commit": commit, "working_tree": False}
    else:
        files = git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
        for name in filter(None, files):
            src = REPO / name
            if src.is_file():
                dst = root / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        source = {"rev": None, "commit": git("rev-parse", "HEAD").strip(), "working_tree": True,
                  "dirty": bool(git("status", "--porcelain", "--untracked-files=no").strip())}
    return root, source


def test_env(root: Path) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env


def check_copy_is_imported(root: Path) -> None:
    """The editable install points at the repository; PYTHONPATH must win, or mutants go untested."""
    out = subprocess.run([sys.executable, "-c", "import satflow; print(satflow.__file__)"], cwd=root,
                         env=test_env(root), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(root.resolve()):
        sys.exit(f"satflow imports from {out}, not from the copy {root}: cannot run mutants")


# ------------------------------------------------------------------------------------------------
# Which tests can see a module: an import graph over satflow/ and tests/
# ------------------------------------------------------------------------------------------------
def module_name(path: str) -> str:
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def import_graph(root: Path) -> dict[str, set[str]]:
    """file -> satflow modules (and test helper files) it imports; string literals naming satflow
    modules count too (lazy `importlib.import_module` tables such as satflow/index/__init__.py)."""
    modules = {module_name(str(p.relative_to(root))) for p in (root / "satflow").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in [*(root / "satflow").rglob("*.py"), *(root / "tests").rglob("*.py")]:
        rel = str(path.relative_to(root))
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        package = module_name(rel).rsplit(".", 1)[0] if not rel.endswith("__init__.py") else module_name(rel)
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("satflow."):
                names.add(node.value.split(":")[0])
        edges = set()
        for name in names:
            if name in modules:
                edges.add(name)
            elif rel.startswith("tests/") and "." not in name:
                helper = path.parent / f"{name}.py"         # tests import helpers by bare name
                if helper.exists():
                    edges.add(str(helper.relative_to(root)))
        # importing satflow.a.b runs satflow/__init__ and satflow/a/__init__ first
        for name in list(edges):
            parts = name.split(".")
            edges.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules)
        graph[rel if rel.startswith("tests/") else module_name(rel)] = edges
    return graph


def test_plan(graph: dict[str, set[str]], path: str) -> tuple[list[str], list[str]]:
    """(mirror tests, reach tests) for one module.

    mirror: MIRRORS, the index file's namesake, and every test file that imports the module itself
    (directly or through a helper module such as tests/sources/sources_helpers.py).
    reach: test files that import a module which imports it (one hop, e.g. stats -> store ->
    tests/test_ingest.py). Longer chains are left out: they cost minutes per surviving mutant and
    rarely pin a module's results (almost every test reaches satflow.store through some chain).
    """
    target = module_name(path)
    test_files = sorted(k for k in graph if Path(k).name.startswith("test_"))

    def direct(test_file):
        names = set(graph[test_file])
        for helper in [n for n in names if n.startswith("tests/")]:
            names |= graph.get(helper, set())
        return {n for n in names if not n.startswith("tests/")}

    mirror = [f for f in MIRRORS.get(path, []) if f in graph]
    if path.startswith("satflow/index/"):
        mirror += [f for f in test_files if f == f"tests/index/test_index_{Path(path).stem}.py"]
    mirror += [f for f in test_files if target in direct(f) and f not in mirror]
    reach = [f for f in test_files if f not in mirror
             and any(target in graph.get(m, ()) for m in direct(f))]
    return mirror, reach


# ------------------------------------------------------------------------------------------------
# Running pytest
# ------------------------------------------------------------------------------------------------
def run_pytest(root: Path, files: list[str], deselect: list[str], timeout: float,
               extra: list[str] = ()) -> tuple[str, float, str]:
    """('passed' | 'failed' | 'error' | 'timeout' | 'empty', seconds, first failing test or '')."""
    shutil.rmtree(root / ".hypothesis", ignore_errors=True)   # no replay of earlier mutants' examples
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
               "--hypothesis-seed=0", *extra, *[f"--deselect={d}" for d in deselect], *files]
    start = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=root, env=test_env(root), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            return "timeout", time.monotonic() - start, ""
        finally:
            kill_tree(process)                              # stray Dask workers or CLI subprocesses
        log.seek(0)
        output = log.read()
    seconds = time.monotonic() - start
    first = next((line.split(" - ")[0].split(" ", 1)[1] for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))), "")
    status = {0: "passed", 1: "failed", 5: "empty"}.get(code, "error")
    if status == "error" and not first:
        first = f"pytest exit {code}: " + " | ".join(output.strip().splitlines()[-3:])
    return status, seconds, first


def kill_tree(process: subprocess.Popen) -> None:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def baseline(root: Path, files: list[str]) -> tuple[dict[str, float], list[str], list[str], float]:
    """Per-file seconds, the failing test ids and the files that do not even collect, from one run
    of every file on the unmutated copy (collection errors do not stop the other files)."""
    junit = root / ".mutation-baseline.xml"
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "--hypothesis-seed=0", f"--junitxml={junit}", *files]
    start = time.monotonic()
    subprocess.run(command, cwd=root, env=test_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    total = time.monotonic() - start
    durations = {f: 0.0 for f in files}
    failing, broken = [], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = (case.get("classname") or case.get("name", "")).split(".")
        # tests.codecs.test_x[.TestClass] -> tests/codecs/test_x.py
        file = next((f for f in ("/".join(parts[:i]) + ".py" for i in range(len(parts), 0, -1)) if f in durations), "")
        if not case.get("classname"):
            broken.append(file)                             # a collection error: the module does not import
            continue
        durations[file] = durations.get(file, 0.0) + float(case.get("time", 0))
        if case.find("failure") is not None or case.find("error") is not None:
            failing.append(f"{file}::{case.get('name')}")
    return durations, failing, broken, total


# ------------------------------------------------------------------------------------------------
# Sampling and reporting
# ------------------------------------------------------------------------------------------------
def module_files(root: Path, module: str) -> list[str]:
    if module.startswith("satflow/") and module.endswith(".py"):
        return [module]
    files = []
    for pattern in MODULES[module]:
        files += sorted(str(p.relative_to(root)) for p in root.glob(pattern))
    return files


def group_of(path: str) -> str:
    for module, patterns in MODULES.items():
        if any(Path(path).match(p) for p in patterns):
            return module
    return path


def sample(root: Path, modules: list[str], max_mutants: int, seed: int) -> list[tuple[str, Mutant]]:
    chosen = []
    for module in modules:
        candidates = [m for path in module_files(root, module) for m in find_mutants((root / path).read_text(), path)]
        count = min(len(candidates), max_mutants * SAMPLE_WEIGHT.get(module, 1))
        picked = random.Random(f"{seed}:{module}").sample(range(len(candidates)), count)
        chosen += [(module, candidates[i]) for i in sorted(picked)]
    return chosen


def summarise(records: list[dict], equivalent: dict[str, str]) -> dict:
    def score(rows):
        caught = sum(r["status"] in ("killed", "timeout") for r in rows)
        equiv = sum(r["status"] == "survived" and r["id"] in equivalent for r in rows)
        counted = len(rows) - equiv
        return {"mutants": len(rows), "killed": sum(r["status"] == "killed" for r in rows),
                "timeout": sum(r["status"] == "timeout" for r in rows),
                "survived": sum(r["status"] == "survived" for r in rows), "equivalent": equiv,
                "score": round(caught / len(rows), 4) if rows else None,
                "score_non_equivalent": round(caught / counted, 4) if counted else None}
    modules = sorted({r["module"] for r in records}, key=lambda m: list(MODULES).index(m) if m in MODULES else 99)
    return {"per_module": {m: score([r for r in records if r["module"] == m]) for m in modules},
            "overall": score(records)}


def table(summary: dict) -> str:
    head = f"{'module':<20} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'equiv':>5} {'score':>6} {'non-eq':>6}"
    lines = [head, "-" * len(head)]
    rows = [*summary["per_module"].items(), ("overall", summary["overall"])]
    for name, s in rows:
        if name == "overall":
            lines.append("-" * len(head))
        pct = lambda v: f"{100 * v:5.1f}%" if v is not None else "   n/a"   # noqa: E731
        lines.append(f"{name:<20} {s['mutants']:>7} {s['killed']:>6} {s['timeout']:>7} {s['survived']:>8} "
                     f"{s['equivalent']:>5} {pct(s['score']):>6} {pct(s['score_non_equivalent']):>6}")
    return "\n".join(lines)


def keep_fast(path: str, mirror: list[str], reach: list[str], durations: dict[str, float],
              slow: float) -> tuple[list[str], list[str]]:
    """Leave out test files slower than `slow` seconds (test_ingest, test_train: minutes per surviving
    mutant on 2 shared cores) unless MIRRORS names them for this module: ingest keeps test_ingest."""
    named = set(MIRRORS.get(path, []))
    fast = lambda files: [f for f in files if f in named or durations.get(f, 0.0) <= slow]  # noqa: E731
    return fast(mirror), fast(reach)


def still_holds(record: dict, plan: tuple[list[str], list[str]]) -> bool:
    """A result from --resume stands if this plan runs a subset of its files and, for a kill, the
    file that killed it."""
    if record["status"] == "survived":
        return True
    if record["status"] == "killed" and record.get("killed_by"):
        return record["killed_by"].split("::")[0] in plan[0] + plan[1]
    return False


def load_equivalent() -> dict[str, str]:
    """Mutant id -> why it cannot change behaviour (judged by reading the code; see README.md)."""
    path = HERE / "equivalent.json"
    equivalent = json.loads(path.read_text()) if path.exists() else {}
    return {k: v for k, v in equivalent.items() if not k.startswith("_")}


def report(result: dict, out: Path) -> None:
    """Score with the current equivalent.json, write the JSON and print the table and survivors."""
    equivalent = load_equivalent()
    records = result["mutants"]
    for r in records:
        r.pop("equivalent", None)
        if r["status"] == "survived" and r["id"] in equivalent:
            r["equivalent"] = equivalent[r["id"]]
    result["summary"] = summarise(records, equivalent)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{result['source']['commit'][:10]}{' (working tree)' if result['source']['working_tree'] else ''}, "
          f"seed {result['seed']}, {result['max_mutants']} mutants per module\n")
    print(table(result["summary"]))
    survivors = [r for r in records if r["status"] == "survived"]
    if survivors:
        print("\nsurvivors (E = judged equivalent in equivalent.json):")
        for r in survivors:
            mark = "E" if r["id"] in equivalent else " "
            print(f" {mark} {r['id']:<40} {r['path']}:{r['line']}  {r['original']!r} -> {r['replacement']!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", default=list(MODULES),
                        help=f"groups ({', '.join(MODULES)}) or files such as satflow/index/splits.py")
    parser.add_argument("--max-mutants", type=int, default=8, help="sampled per module (index: twice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rev", help="mutate this commit's files instead of the working tree")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "mutation.json")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run just these mutant ids (from --list or a JSON)")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and stop")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="run only these test files (e.g. to check that a new test kills --only mutants)")
    parser.add_argument("--timeout-factor", type=float, default=3.0)
    parser.add_argument("--slow", type=float, default=15.0,
                        help="leave reach-stage test files slower than this (baseline seconds) out")
    parser.add_argument("--resume", type=Path, metavar="JSON",
                        help="reuse the baseline and the results of a stopped run of the same commit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--rescore", type=Path, metavar="JSON",
                        help="re-score a finished run with the current equivalent.json (no tests run)")
    args = parser.parse_args(argv)
    for module in args.modules:
        if module not in MODULES and not (module.startswith("satflow/") and module.endswith(".py")):
            parser.error(f"unknown module {module!r}: use one of {', '.join(MODULES)} or a satflow/... .py path")

    if args.rescore:
        report(json.loads(args.rescore.read_text()), args.rescore)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))   # so the copy is removed
    started = time.monotonic()
    root, source = make_copy(args.rev)
    try:
        if args.only:
            every = [(group_of(m.path), m) for module in args.modules for path in module_files(root, module)
                     for m in find_mutants((root / path).read_text(), path)]
            chosen = [(g, m) for g, m in every if m.id in set(args.only)]
            missing = set(args.only) - {m.id for _, m in chosen}
            if missing:
                sys.exit(f"no such mutant in {', '.join(args.modules)}: {', '.join(sorted(missing))}")
        else:
            chosen = sample(root, args.modules, args.max_mutants, args.seed)
        if args.list:
            for module, m in chosen:
                print(f"{m.id:<42} {m.path}:{m.line}  {m.original!r} -> {m.replacement!r}")
            return 0

        check_copy_is_imported(root)
        graph = import_graph(root)
        plans = {path: (args.tests, []) if args.tests else test_plan(graph, path) for path in {m.path for _, m in chosen}}
        every_file = sorted({f for mirror, reach in plans.values() for f in mirror + reach})
        print(f"{len(chosen)} mutants in {len(plans)} files; baseline run of {len(every_file)} test files "
              f"from {source['commit'][:10]}{' (working tree)' if source['working_tree'] else ''} ...", flush=True)
        earlier = json.loads(args.resume.read_text()) if args.resume else None
        if earlier and earlier["source"]["commit"] == source["commit"] and not source["working_tree"] \
                and set(every_file) <= set(earlier["baseline"]["file_seconds"]):
            durations = earlier["baseline"]["file_seconds"]       # same commit: its baseline still holds
            failing, baseline_seconds = earlier["baseline"]["deselected"], earlier["baseline"]["seconds"]
            broken = earlier["baseline"].get("broken_files", [])
        else:
            durations, failing, broken, baseline_seconds = baseline(root, every_file)
        for file in broken:
            print(f"  left out, does not collect on the unmutated copy: {file}")
        print(f"baseline: {baseline_seconds:.0f} s, {len(failing)} failing test(s) deselected", flush=True)
        for test in failing:
            print(f"  deselected: {test}")

        def ordered(files):   # fastest first, so that -x stops a killed mutant early
            return sorted(files, key=lambda f: durations.get(f, 0.0))

        plans = {p: keep_fast(p, [f for f in mirror if f not in broken], [f for f in reach if f not in broken],
                              durations, args.slow) for p, (mirror, reach) in plans.items()}
        same = earlier and (earlier["source"]["commit"], earlier["source"]["working_tree"]) == (source["commit"], source["working_tree"])
        done = {r["id"]: r for r in earlier["mutants"]} if same and not source["working_tree"] else {}
        result = {
            "command": "python benchmarks/mutation/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "source": source, "seed": args.seed, "max_mutants": args.max_mutants, "modules": args.modules,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
            "baseline": {"seconds": round(baseline_seconds, 1), "deselected": failing, "broken_files": broken,
                         "file_seconds": {k: round(v, 2) for k, v in durations.items()}},
            "test_plans": {k: {"mirror": v[0], "reach": v[1]} for k, v in sorted(plans.items())},
            "complete": False, "mutants": [],
        }
        records = result["mutants"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for n, (module, m) in enumerate(chosen, 1):
            previous = done.get(m.id)
            if previous and still_holds(previous, plans[m.path]):
                records.append(previous)
                print(f"[{n:3d}/{len(chosen)}] {previous['status']:<8} (from {args.resume})  {m.id}", flush=True)
                continue
            path = root / m.path
            original = path.read_text()
            mirror, reach = plans[m.path]
            path.write_text(apply(original, m))
            record = {"module": module, **m.as_dict(), "stages": []}
            try:
                status = "survived"
                for stage, files in (("mirror", [*mirror[:1], *ordered(mirror[1:])]), ("reach", ordered(reach))):
                    if not files:
                        continue
                    limit = args.timeout_factor * sum(durations.get(f, 0.0) for f in files) + 120
                    outcome, seconds, first = run_pytest(root, files, failing, limit)
                    record["stages"].append({"stage": stage, "files": len(files), "outcome": outcome,
                                             "seconds": round(seconds, 1), "limit": round(limit), "test": first})
                    if outcome in ("failed", "error"):
                        status, record["killed_by"] = "killed", first
                        break
                    if outcome == "timeout":
                        status = "timeout"
                        break
            finally:
                path.write_text(original)
            record["status"] = status
            records.append(record)
            spent = sum(s["seconds"] for s in record["stages"])
            print(f"[{n:3d}/{len(chosen)}] {status:<8} {spent:5.0f} s  {m.id:<40} {m.path}:{m.line} "
                  f"{m.original!r} -> {m.replacement!r}", flush=True)
            result["seconds"] = round(time.monotonic() - started, 1)
            args.out.write_text(json.dumps(result, indent=1) + "\n")     # partial results survive a stop

        result["complete"] = True
        report(result, args.out)
        print(f"\n{time.monotonic() - started:.0f} s; written to {args.out}")
        return 0
    finally:
        if args.keep:
            print(f"copy kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
