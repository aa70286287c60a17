"""The generated documentation pages: ``docs/results.md`` (``compare --out``) and
``docs/performance.md`` (``perf-report``), each written from a small fixture and checked to be
well-formed Markdown that names its runs, their commands and their machines."""
import json
import re
import subprocess
import sys

from benchmark.host import cpu_flags, cpu_model, host_line, vector_units

XEON = {"cpu": "Intel(R) Xeon(R) Processor", "vector_units": ["AMX", "AVX-512 BF16", "AVX-512", "AVX2"], "cores": 2,
        "gpu": None, "torch": "2.14.1"}
H200 = {**XEON, "cores": 16, "gpu": "NVIDIA H200"}


def markdown_tables(text):
    """Each GitHub table in ``text`` as a list of its rows' cells; asserts the separator row and
    that every row has the header's number of cells."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            rows = [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in block]
            assert len(rows) >= 2 and all(re.fullmatch(r":?-+:?", c) for c in rows[1]), block[:2]
            assert all(len(r) == len(rows[0]) for r in rows), block
            tables.append([rows[0]] + rows[2:])
            block = []
    return tables


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def test_host_reads_the_cpu_model_and_the_vector_units_that_pick_kernels():
    cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 fma\n"
    assert cpu_model(cpuinfo) == "AMD EPYC 9R14"
    assert vector_units(cpu_flags(cpuinfo)) == ["AVX-512 BF16", "AVX-512", "AVX2"]  # no amx_bf16 flag: no AMX
    assert host_line(XEON) == "Intel(R) Xeon(R) Processor (AMX, AVX-512 BF16, AVX-512, AVX2), 2 cores, torch 2.14.1"
    assert host_line(H200).startswith("NVIDIA H200, Intel(R) Xeon(R)")
    assert host_line(None) == "machine not recorded"


def _result(run_id, method, seed, top1, host=XEON):
    return {"run_id": run_id, "version": "0.2.0", "method": method, "encoder": "vdim_small", "params_m": 1.0,
            "input": {"frames": 16, "size": 64}, "experiment": None, "host": host,
            "command": f"python -m benchmark run method={method} seed={seed} results_dir=/tmp/somewhere",
            "pretrain": {"dataset": "synthetic", "steps": 400, "seconds": 200.0 + seed},
            "evals": [{"protocol": "linear", "dataset": "synthetic", "metric": "top1",
                       "splits": {"1": top1, "2": top1 + 2, "3": top1 - 2}, "mean": top1,
                       "test_protocol": "4 clips x 1 crops"}],
            "config": {"seed": seed, "method": {"name": method}}}


def test_results_page_holds_the_seed_aggregate_and_every_run_with_its_command(tmp_path):
    runs = tmp_path / "runs"
    for i, (method, seed, top1) in enumerate([("vdim", 0, 50.0), ("vdim", 1, 40.0), ("random", 0, 25.0)]):
        (runs / f"r{i}").mkdir(parents=True)
        (runs / f"r{i}" / "result.json").write_text(json.dumps(_result(f"r{i}", method, seed, top1)))
    page = tmp_path / "results.md"
    cli("compare", "--results", str(runs), "--out", str(page))
    text = page.read_text()
    assert text.startswith("# Results\n")
    assert f"`python -m benchmark compare --results {runs} --out {page}`" in text  # how to regenerate it
    tables = markdown_tables(text)
    measured = next(t for t in tables if t[0][0] == "method")
    vdim = next(r for r in measured if r[0].startswith("vdim"))
    assert vdim[measured[0].index("n")] == "2"
    assert vdim[measured[0].index("top-1 mean ± std [95% CI]")].startswith("45.0 ± 7.1 [")  # std of 50, 40
    listed = next(t for t in tables if t[0][:2] == ["run", "command"])
    assert [r[0] for r in listed[1:]] == ["r0", "r1", "r2"]
    assert listed[1][1] == "`python -m benchmark run method=vdim seed=0`"  # where it wrote is not part of it
    assert all("Xeon" in r[-1] and "AMX" in r[-1] for r in listed[1:])


def _perf(date, host, sections, command):
    rows = []
    for section in sections:
        rows += [{"section": section, "what": f"{section} ours", "clips_per_s": 10.0},
                 {"section": section, "what": f"{section} ours / reference", "ratio": 1.6, "target": 1.5, "met": True}]
    return {"date": date, "device": "cpu (2 threads)", "torch": "2.14.1", "allocator": "retain", "host": host,
            "command": command, "rows": rows}


def test_performance_page_keeps_the_newest_table_of_each_section_per_machine(tmp_path):
    perf = tmp_path / "perf"
    reports = {"2026-12-01T10-00-00_cpu": _perf("2026-12-01T10-00-00", XEON, ["data", "dpc"], "python -m benchmark perf"),
               "2026-12-02T10-00-00_cpu": _perf("2026-12-02T10-00-00", XEON, ["dpc"],
                                                "python -m benchmark perf sections=[dpc]"),
               "2026-11-26T10-00-00_cuda": _perf("2026-11-26T10-00-00", H200, ["train"], "python -m benchmark perf trainer=gpu")}
    for name, report in reports.items():
        (perf / name).mkdir(parents=True)
        (perf / name / "perf.json").write_text(json.dumps(report))
    (perf / "broken").mkdir()
    (perf / "broken" / "perf.json").write_text("{not json")
    page = tmp_path / "performance.md"
    p = cli("perf-report", "--perf", str(perf), "--out", str(page))
    assert "unreadable" in p.stderr  # a broken file is named, not fatal
    text = page.read_text()
    assert text.startswith("# Performance\n")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["NVIDIA H200", "CPU: Intel(R) Xeon(R) Processor (AMX, AVX-512 BF16, AVX-512, AVX2)"]
    cpu = text.split("## CPU")[1]
    assert re.findall(r"^### (\w+)", cpu, flags=re.M) == ["data", "dpc"]
    data_part, dpc_part = cpu.split("### dpc")
    assert "From 2026-12-01T10-00-00, `python -m benchmark perf`;" in data_part
    assert "From 2026-12-02T10-00-00, `python -m benchmark perf sections=[dpc]`;" in dpc_part  # the newer dpc run
    assert "2026-12-01" not in dpc_part
    tables = markdown_tables(text)
    assert len(tables) == 3 and all(t[0][0] == "what" for t in tables)
